"""VBench imaging_quality: MUSIQ (SPAQ weights, `musiq_spaq_ckpt-358bb6af.pth`) on every frame.

As the official code: float frames, preprocessing mode 'longer' by default (a frame whose longer side is above 512
is resized to 512 on that side, bilinear without antialias, sizes truncated), /255, MUSIQ per frame. Each video's
score is its mean MUSIQ score on the 0..100 scale (stored unscaled, as the official results file has it); the
aggregate is the mean over videos / 100. Frames go through MUSIQ `batch_size` at a time, across videos of one size.
"""

from typing import Dict, List, Tuple

from ._common import check_batch_size, check_videos, checkpoint_file, row_batches, rows_by_owner

NAME = "imaging_quality"
CHECKPOINTS = {"musiq_spaq": ("musiq_spaq_ckpt-358bb6af.pth", "vbench-musiq-spaq")}
PREPROCESSING_MODES = ("longer", "shorter", "shorter_centercrop", "None")


def preprocess(frames, mode: str = "longer"):
    """VBench's imaging_quality `transform`: float frames 0..255 [T,3,H,W] -> 0..1, resized as `mode` says."""
    from torchvision.transforms import functional as TF

    h, w = frames.shape[-2:]
    if mode.startswith("shorter") and min(h, w) > 512:
        scale = 512.0 / min(h, w)
        frames = TF.resize(frames, [int(scale * h), int(scale * w)], antialias=False)
        if mode == "shorter_centercrop":
            frames = TF.center_crop(frames, 512)
    elif mode == "longer" and max(h, w) > 512:
        scale = 512.0 / max(h, w)
        frames = TF.resize(frames, [int(scale * h), int(scale * w)], antialias=False)
    return frames / 255.0


def load_musiq(path: str, device="cpu", **architecture):
    """The pack's MUSIQ holding the official state dict file `path` (strict; mismatches named with the file)."""
    import torch

    from ._common import check_keys, load_torch_checkpoint
    from ._musiq import MUSIQ

    state_dict = load_torch_checkpoint(path, NAME)
    if isinstance(state_dict, dict) and "params" in state_dict and isinstance(state_dict["params"], dict):
        state_dict = state_dict["params"]
    state_dict = {key.removeprefix("module."): value for key, value in state_dict.items()}
    model = MUSIQ(**architecture)
    check_keys(model.state_dict(), state_dict, path, NAME)
    model.load_state_dict(state_dict, strict=True)
    return model.to(device=device, dtype=torch.float32).eval()


def compute(videos, *, checkpoints: Dict[str, str], device="cpu", batch_size: int = 32, **info) -> Tuple[float, List]:
    """(mean over videos / 100, per-video mean MUSIQ scores on 0..100).

    `info` may hold `imaging_quality_preprocessing_mode` (one of PREPROCESSING_MODES, default 'longer') and
    `musiq_architecture` (MUSIQ keyword arguments, for checkpoints of other sizes)."""
    videos = check_videos(videos, NAME)
    check_batch_size(batch_size, NAME)
    mode = info.get("imaging_quality_preprocessing_mode", "longer")
    if mode not in PREPROCESSING_MODES:
        raise ValueError(f"{NAME}: imaging_quality_preprocessing_mode={mode!r}; allowed: {PREPROCESSING_MODES}")
    path = checkpoint_file(checkpoints, "musiq_spaq", NAME, CHECKPOINTS["musiq_spaq"][1])

    import torch

    model = load_musiq(path, device, **info.get("musiq_architecture", {}))
    frames = (preprocess(torch.from_numpy(video).permute(0, 3, 1, 2).float(), mode) for video in videos)
    scores, owners = [], []
    with torch.no_grad():
        for batch, batch_owners in row_batches(frames, batch_size):
            scores.append(model(batch.to(device)).float().cpu())
            owners += batch_owners
    per_video = [sum(float(score) for score in video) / len(video)
                 for video in rows_by_owner(torch.cat(scores), owners, len(videos))]
    return sum(per_video) / len(per_video) / 100.0, per_video
