"""VBench-I2V i2v_background: how alike DreamSim sees each frame to the input image and to the frame before it; an
optional extra that needs the `dreamsim` package and its downloaded weights (never a dependency of the pack, and the
pack never downloads them).

As the official `vbench2_beta_i2v/i2v_background.py`: DreamSim 'ensemble' (`dreamsim(pretrained=True)`: DINO,
CLIP and OpenCLIP ViT-B/16 with DreamSim's LoRA, embeddings normalised by DreamSim) from the user's DreamSim cache
folder; the input image (PIL) resized to 224x224 (bicubic), /255, no normalisation; every frame as float 0..255
resized to 224x224 with torchvision's bicubic and its default antialias, /255; L2-normalised embeddings. The score is
i2v_subject's: 0.4 max(conf) + 0.3 mean(consec) + 0.3 min(consec) per video, the mean over videos. Input images as
for i2v_subject (`image_folder` + `resolution`, or `images`); `dreamsim_cache` the folder holding DreamSim's
'ensemble' files (`dino_vitb16_pretrain.pth`, `clip_vitb16_pretrain.pth.tar`, `open_clip_vitb16_pretrain.pth.tar`,
`ensemble_lora/`), checked before anything is decoded so that DreamSim never downloads.
"""

import os
from typing import Dict, List, Optional, Sequence, Tuple

NAME = "i2v_background"
CHECKPOINTS: Dict[str, tuple] = {}  # DreamSim's own cache folder, not a pack checkpoint (see dreamsim_cache)
SIZE = 224
DREAMSIM_FILES = ("dino_vitb16_pretrain.pth", "clip_vitb16_pretrain.pth.tar", "open_clip_vitb16_pretrain.pth.tar",
                  os.path.join("ensemble_lora", "adapter_config.json"))


def check_dreamsim_cache(dreamsim_cache) -> str:
    """The DreamSim cache folder, checked to hold the 'ensemble' files; an error naming what is missing."""
    if dreamsim_cache is None:
        raise ValueError(
            f"{NAME}: dreamsim_cache is needed: the folder holding DreamSim's 'ensemble' weights "
            f"({', '.join(DREAMSIM_FILES)}), as `dreamsim(cache_dir=...)` downloads them"
        )
    folder = os.fspath(dreamsim_cache)
    missing = [name for name in DREAMSIM_FILES if not os.path.exists(os.path.join(folder, name))]
    if missing:
        raise FileNotFoundError(
            f"{NAME}: dreamsim_cache={folder!r} lacks {', '.join(missing)}; unzip DreamSim's 'ensemble' release "
            f"weights there (the pack does not download them)"
        )
    return folder


def check_inputs(video_paths=None, prompts=None, auxiliary_info=None, *, images=None, image_folder=None,
                 resolution: str = "1-1", dreamsim_cache=None, **options) -> List[str]:
    """The input image file of each video, after checking the DreamSim cache; runs before any video is decoded."""
    from ..i2v_suite import resolve_input_images

    check_dreamsim_cache(dreamsim_cache)
    return resolve_input_images(NAME, video_paths, prompts, auxiliary_info, images, image_folder, resolution)


def load_dreamsim(dreamsim_cache: str, device):
    """DreamSim 'ensemble' from the user's cache folder, as the official code builds it; ValueError with the install
    command when the dreamsim package is missing."""
    try:
        from dreamsim import dreamsim
    except ImportError as error:
        raise ValueError(
            f"{NAME} needs the optional dreamsim package ({error}); install it with `pip install dreamsim`"
        ) from None
    model, _ = dreamsim(pretrained=True, device=str(device), cache_dir=check_dreamsim_cache(dreamsim_cache))
    return model


def image_transform(path: str):
    """The official `dreamsim_transform_Image(224)`: PIL image -> [3, 224, 224] float32 in 0..1."""
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms import functional as TF

    from .i2v_subject import open_rgb

    image = open_rgb(path, NAME)
    return TF.to_tensor(TF.resize(image, [SIZE, SIZE], interpolation=InterpolationMode.BICUBIC))


def frames_transform(frames):
    """The official `dreamsim_transform(224)`: float frames 0..255 [T,3,H,W] -> [T,3,224,224] in 0..1."""
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms import functional as TF

    return TF.resize(frames, [SIZE, SIZE], interpolation=InterpolationMode.BICUBIC, antialias=True).div(255.0)


def compute(
    videos,
    *,
    checkpoints: Optional[Dict[str, str]] = None,
    device="cpu",
    batch_size: int = 16,
    video_paths: Optional[Sequence[str]] = None,
    prompts: Optional[Sequence[str]] = None,
    auxiliary_info: Optional[Sequence] = None,
    images: Optional[Sequence] = None,
    image_folder=None,
    resolution: str = "1-1",
    dreamsim_cache=None,
    **info,
) -> Tuple[float, List]:
    """(mean over videos, per-video {'image_path', 'video_results'}) of i2v_background; each video needs at least 2
    frames. Input images as for i2v_subject; `dreamsim_cache` the DreamSim weights folder."""
    from .i2v_subject import checked_videos_and_images, score_videos

    videos, image_paths = checked_videos_and_images(
        NAME, videos, batch_size, prompts,
        lambda: check_inputs(video_paths, prompts, auxiliary_info, images=images, image_folder=image_folder,
                             resolution=resolution, dreamsim_cache=dreamsim_cache))
    image_tensors = {image: image_transform(image) for image in dict.fromkeys(image_paths)}
    model = load_dreamsim(dreamsim_cache, device)
    return score_videos(model.embed, videos, image_paths, image_tensors, frames_transform, batch_size, device)
