"""VBench-I2V i2v_subject: how alike DINO ViT-B/16 (`dino_vitbase16_pretrain.pth`) sees each frame to the input image
and to the frame before it.

As the official `vbench2_beta_i2v/i2v_subject.py`: the input image (PIL) resized so that its shorter side is 256
(PIL bicubic), centre-cropped to 224, /255, ImageNet mean/std; every frame as float 0..255 resized the same way with
torchvision's bicubic and its default antialias (on, since torchvision 0.17), not re-quantised, centre-cropped, /255,
ImageNet mean/std; L2-normalised CLS features. conf_t = max(0, cos(image, f_t)) for every frame,
consec_t = max(0, cos(f_t-1, f_t)) for t >= 1; per video 0.4 max(conf) + 0.3 mean(consec) + 0.3 min(consec), the
aggregate the mean over videos. Each video's input image is its prompt's in the I2V suite, read from the image suite
folder the user gives (`image_folder`, the `resolution` crops), or given per video (`images`). Images that are not
RGB are converted to RGB (the official code fails on them). Frames run `batch_size` at a time (the official code
runs one).
"""

from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ._common import check_batch_size, check_videos, checkpoint_file

NAME = "i2v_subject"
CHECKPOINTS = {"dino_vitb16": ("dino_vitbase16_pretrain.pth", "vbench-dino-vitb16")}
RESIZE = 256
CROP = 224
WEIGHTS = (0.4, 0.3, 0.3)  # max of conformity, mean and min of consecutive similarity
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def check_inputs(video_paths=None, prompts=None, auxiliary_info=None, *, images=None, image_folder=None,
                 resolution: str = "1-1", **options) -> List[str]:
    """The input image file of each video (see `i2v_suite.resolve_input_images`); runs before any video is
    decoded."""
    from ..i2v_suite import resolve_input_images

    return resolve_input_images(NAME, video_paths, prompts, auxiliary_info, images, image_folder, resolution)


def open_rgb(path: str, name: str):
    """The input image `path` as an RGB PIL image; ValueError naming the dimension and the file when unreadable."""
    from PIL import Image

    try:
        with Image.open(path) as opened:
            return opened.convert("RGB")
    except OSError as error:
        raise ValueError(f"{name}: input image {path!r} cannot be read: {error}") from None


def image_transform(path: str):
    """The official `dino_transform_Image_internet`: PIL image -> [3, 224, 224] float32."""
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms import functional as TF

    image = open_rgb(path, NAME)
    image = TF.center_crop(TF.resize(image, RESIZE, interpolation=InterpolationMode.BICUBIC), CROP)
    return TF.normalize(TF.to_tensor(image), IMAGENET_MEAN, IMAGENET_STD)


def frames_transform(frames):
    """The official `dino_transform_internet`: float frames 0..255 [T,3,H,W] -> [T,3,224,224]."""
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms import functional as TF

    frames = TF.resize(frames, RESIZE, interpolation=InterpolationMode.BICUBIC, antialias=True)
    return TF.normalize(TF.center_crop(frames, CROP).float().div(255.0), IMAGENET_MEAN, IMAGENET_STD)


def video_score(image_feature, frame_features) -> float:
    """0.4 max(conf) + 0.3 mean(consec) + 0.3 min(consec) of one video's L2-normalised features, the similarities
    taken as Python floats as the official code does."""
    import torch.nn.functional as F

    conformity = F.cosine_similarity(image_feature[None], frame_features).clamp(min=0.0).tolist()
    consecutive = F.cosine_similarity(frame_features[:-1], frame_features[1:]).clamp(min=0.0).tolist()
    return float(WEIGHTS[0] * np.max(conformity) + WEIGHTS[1] * np.mean(consecutive) + WEIGHTS[2] * np.min(consecutive))


def compute(
    videos,
    *,
    checkpoints: Dict[str, str],
    device="cpu",
    batch_size: int = 16,
    video_paths: Optional[Sequence[str]] = None,
    prompts: Optional[Sequence[str]] = None,
    auxiliary_info: Optional[Sequence] = None,
    images: Optional[Sequence] = None,
    image_folder=None,
    resolution: str = "1-1",
    **info,
) -> Tuple[float, List]:
    """(mean over videos, per-video {'image_path', 'video_results'}) of i2v_subject; each video needs at least 2
    frames. The input images: `images` (one file per video) or `image_folder` (the I2V image suite: its data
    folder holding `crop/<resolution>/` or its crop folder) with `resolution` one of 1-1, 8-5, 7-4, 16-9
    (default 1-1, as the official code), each video's image the one of its prompt in the I2V suite."""
    videos, image_paths = checked_videos_and_images(
        NAME, videos, batch_size, prompts,
        lambda: check_inputs(video_paths, prompts, auxiliary_info, images=images, image_folder=image_folder,
                             resolution=resolution))
    path = checkpoint_file(checkpoints, "dino_vitb16", NAME, CHECKPOINTS["dino_vitb16"][1])
    image_tensors = {image: image_transform(image) for image in dict.fromkeys(image_paths)}

    from ._dino import load_dino_vit

    model = load_dino_vit(path, NAME, device)
    return score_videos(lambda pixels: model(pixel_values=pixels).last_hidden_state[:, 0], videos, image_paths,
                        image_tensors, frames_transform, batch_size, device)


def checked_videos_and_images(name: str, videos, batch_size, prompts, resolve_images):
    """(videos, one input image file a video) of an I2V dimension, every argument checked (`resolve_images()` gives
    the image files) before a model loads. Shared by i2v_subject and i2v_background."""
    videos = check_videos(videos, name, min_frames=2)
    check_batch_size(batch_size, name)
    if prompts is not None and len(prompts) != len(videos):
        raise ValueError(f"{name}: prompts gives {len(prompts)} prompts for {len(videos)} videos")
    image_paths = resolve_images()
    if len(image_paths) != len(videos):
        raise ValueError(f"{name}: images gives {len(image_paths)} files for {len(videos)} videos")
    return videos, image_paths


def score_videos(embed, videos, image_paths, image_tensors, transform, batch_size: int, device):
    """(mean over videos, per-video {'image_path', 'video_results'}) of the I2V consistency score, `embed` mapping
    preprocessed pixels [B,3,224,224] to features, `transform` the uint8 frames (as float [T,3,H,W]) to pixels and
    `image_tensors` each input image's pixels. Shared by i2v_subject and i2v_background."""
    import torch
    import torch.nn.functional as F

    def features(pixels):
        out = [embed(batch.to(device)).float().cpu() for batch in pixels.split(batch_size)]
        return F.normalize(torch.cat(out), dim=-1, p=2)

    per_video = []
    with torch.no_grad():
        image_features = dict(zip(image_tensors, features(torch.stack(list(image_tensors.values())))))
        for video, image in zip(videos, image_paths):
            frames = transform(torch.from_numpy(video).permute(0, 3, 1, 2).float())
            per_video.append({"image_path": image, "video_results": video_score(image_features[image], features(frames))})
    return float(np.mean([result["video_results"] for result in per_video])), per_video
