"""VBench dynamic_degree: the fraction of videos that move, by RAFT optical flow (`raft-things.pth`).

As the official code: every `max(1, round(fps / 8))`-th frame as float 0..255, each consecutive pair padded by
replication (centred) to multiples of 8, RAFT with 20 updates (test mode: the last flow, upsampled), the pair score
the mean of the largest `int(0.05 * H * W)` flow magnitudes (H, W padded); a video moves when at least
`round(4 * N / 16)` of its pair scores exceed `6 * min(H, W) / 256` (N kept frames; H, W unpadded). Per video a
bool, the aggregate the fraction of moving videos.

RAFT is torchvision's `raft_large` holding the official checkpoint through a key map (the same network: its flows
equal the official RAFT's); the pairs of a video run `batch_size` at a time, each frame's features computed once
a call.
A video's verdict is all the official results keep, so the pairs run in order only until it is settled: once enough
pair scores exceed the threshold (the video moves) or too few pairs are left to get there (it does not); a moving
video of 16 kept frames takes 4 of its 15 pairs. `pair_scores` computes any pairs in full.
The official static filter (which videos temporal_flickering scores) shares the network: `static_videos`.
"""

import re
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ._common import check_batch_size, check_keys, check_videos, checkpoint_file, load_torch_checkpoint

NAME = "dynamic_degree"
CHECKPOINTS = {"raft_things": ("raft-things.pth", "vbench-raft-things")}
ITERATIONS = 20
MIN_PADDED_SIZE = 128

# official RAFT key (without `module.`) -> torchvision raft_large key, applied in order
_KEY_RULES = [
    (r"^fnet\.", "feature_encoder."),
    (r"^cnet\.", "context_encoder."),
    (r"^(feature_encoder|context_encoder)\.conv1\.", r"\1.convnormrelu.0."),
    (r"^(feature_encoder|context_encoder)\.norm1\.", r"\1.convnormrelu.1."),
    (r"^(feature_encoder|context_encoder)\.conv2\.", r"\1.conv."),
    (r"\.(layer\d\.\d)\.conv([12])\.", r".\1.convnormrelu\2.0."),
    (r"\.(layer\d\.\d)\.norm([12])\.", r".\1.convnormrelu\2.1."),
    (r"^update_block\.encoder\.convc([12])\.", r"update_block.motion_encoder.convcorr\1.0."),
    (r"^update_block\.encoder\.convf([12])\.", r"update_block.motion_encoder.convflow\1.0."),
    (r"^update_block\.encoder\.conv\.", "update_block.motion_encoder.conv.0."),
    (r"^update_block\.gru\.conv([zrq])([12])\.", r"update_block.recurrent_block.convgru\2.conv\1."),
    (r"^update_block\.mask\.0\.", "mask_predictor.convrelu.0."),
    (r"^update_block\.mask\.2\.", "mask_predictor.conv."),
]


def torchvision_key(official_key: str) -> Optional[str]:
    """The torchvision raft_large key of an official RAFT key (without `module.`); None for a block's `norm3`,
    which the official ResidualBlock registers a second time as `downsample.1` (loading gives that one's values)."""
    if re.search(r"\.layer\d\.\d\.norm3\.", official_key):
        return None
    key = official_key
    for pattern, replacement in _KEY_RULES:
        key = re.sub(pattern, replacement, key)
    return key


def _official_state(model) -> Dict:
    """The official RAFT's keys holding the tensors of a torchvision raft_large (the inverse of the key map)."""
    inverse = {}
    for key, value in model.state_dict().items():
        official = key
        for pattern, replacement in [
            (r"^feature_encoder\.", "fnet."),
            (r"^context_encoder\.", "cnet."),
            (r"^(fnet|cnet)\.convnormrelu\.0\.", r"\1.conv1."),
            (r"^(fnet|cnet)\.convnormrelu\.1\.", r"\1.norm1."),
            (r"^(fnet|cnet)\.conv\.", r"\1.conv2."),
            (r"\.(layer\d\.\d)\.convnormrelu([12])\.0\.", r".\1.conv\2."),
            (r"\.(layer\d\.\d)\.convnormrelu([12])\.1\.", r".\1.norm\2."),
            (r"^update_block\.motion_encoder\.convcorr([12])\.0\.", r"update_block.encoder.convc\1."),
            (r"^update_block\.motion_encoder\.convflow([12])\.0\.", r"update_block.encoder.convf\1."),
            (r"^update_block\.motion_encoder\.conv\.0\.", "update_block.encoder.conv."),
            (r"^update_block\.recurrent_block\.convgru([12])\.conv([zrq])\.", r"update_block.gru.conv\2\1."),
            (r"^mask_predictor\.convrelu\.0\.", "update_block.mask.0."),
            (r"^mask_predictor\.conv\.", "update_block.mask.2."),
        ]:
            official = re.sub(pattern, replacement, official)
        inverse[official] = value
        if ".downsample.1." in official:
            inverse[official.replace(".downsample.1.", ".norm3.")] = value
    return inverse


def load_raft(path: str, device="cpu"):
    """torchvision's raft_large holding the official checkpoint `path` (the official `module.`-prefixed state
    dict, or the same without the prefix), every official key required."""
    import torch
    from torchvision.models.optical_flow import raft_large

    state = load_torch_checkpoint(path, NAME)
    if not isinstance(state, dict) or not all(isinstance(value, torch.Tensor) for value in state.values()):
        raise ValueError(f"{NAME}: {path!r} is not a RAFT state dict (official raft-things.pth layout)")
    state = {key[len("module.") :] if key.startswith("module.") else key: value for key, value in state.items()}
    model = raft_large(weights=None, progress=False)
    check_keys(_official_state(model), state, path, NAME)
    mapped = {torchvision_key(key): value for key, value in state.items()}
    mapped.pop(None, None)
    model.load_state_dict(mapped, strict=True)
    return model.to(device=device, dtype=torch.float32).eval()


def _padding(height: int, width: int) -> List[int]:
    """The official InputPadder ('sintel' mode): [left, right, top, bottom] to multiples of 8, centred."""
    pad_h = (((height // 8) + 1) * 8 - height) % 8
    pad_w = (((width // 8) + 1) * 8 - width) % 8
    return [pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2]


def _final_flows(model, first, second, first_features, second_features):
    """RAFT's last upsampled flow for image pairs (inputs in [-1, 1]), torchvision's forward with the mask and
    the upsampling computed only after the last update (as the official test mode returns)."""
    import torch
    import torch.nn.functional as F
    from torchvision.models.optical_flow._utils import make_coords_grid, upsample_flow

    batch, _, h, w = first.shape
    model.corr_block.build_pyramid(first_features, second_features)
    context = model.context_encoder(first)
    hidden_size = model.update_block.hidden_state_size
    hidden, context = torch.split(context, [hidden_size, context.shape[1] - hidden_size], dim=1)
    hidden, context = torch.tanh(hidden), F.relu(context)
    coords0 = make_coords_grid(batch, h // 8, w // 8).to(first.device)
    coords1 = make_coords_grid(batch, h // 8, w // 8).to(first.device)
    for _ in range(ITERATIONS):
        corr = model.corr_block.index_pyramid(centroids_coords=coords1)
        hidden, delta = model.update_block(hidden, context, corr, coords1 - coords0)
        coords1 = coords1 + delta
    return upsample_flow(flow=coords1 - coords0, up_mask=model.mask_predictor(hidden))


def pair_scores(model, frames, pairs: Sequence[Tuple[int, int]], fraction: float, device="cpu", batch_size=8):
    """The official pair scores: the mean of the largest `int(fraction * H * W)` flow magnitudes of RAFT from
    frame i to frame j for each (i, j) of `pairs`; `frames` uint8 [F,H,W,3]."""
    import torch
    import torch.nn.functional as F

    images = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float()
    images = F.pad(images, _padding(*images.shape[-2:]), mode="replicate")
    h, w = images.shape[-2:]
    count = int(h * w * fraction)
    scores = []
    with torch.no_grad():
        for start in range(0, len(pairs), batch_size):
            chunk = pairs[start : start + batch_size]
            used = sorted({index for pair in chunk for index in pair})
            where = {index: position for position, index in enumerate(used)}
            normalised = 2 * (images[used].to(device) / 255.0) - 1.0
            features = model.feature_encoder(normalised)
            first = [where[i] for i, _ in chunk]
            second = [where[j] for _, j in chunk]
            flows = _final_flows(model, normalised[first], normalised[second], features[first], features[second])
            magnitude = torch.sqrt(flows[:, 0] ** 2 + flows[:, 1] ** 2).flatten(1)
            largest = torch.topk(magnitude, count, dim=1, sorted=True).values.cpu().numpy()
            scores.extend(float(np.mean(row)) for row in largest)
    return scores


def _check_sizes(videos, name):
    for index, video in enumerate(videos):
        padded = [size + sum(_padding(size, size)[:2]) for size in video.shape[1:3]]
        if min(padded) < MIN_PADDED_SIZE:
            raise ValueError(
                f"{name}: videos[{index}] frames are {video.shape[1]}x{video.shape[2]}; RAFT needs both sides at "
                f"least {MIN_PADDED_SIZE} after padding to multiples of 8 (its correlation pyramid is otherwise "
                "too small)"
            )


def _check_batch_size(batch_size, name):
    check_batch_size(batch_size, name)


def frame_interval(fps) -> int:
    """The official sampling step: every `max(1, round(fps / 8))`-th frame (1 when the rate is not known)."""
    return 1 if fps is None else max(1, round(float(fps) / 8))


def move_rule(kept_frames: int, height: int, width: int) -> Tuple[float, int]:
    """(threshold, count): the official check_move asks for at least `count` pair scores above `threshold`."""
    return 6.0 * (min(height, width) / 256.0), round(4 * (kept_frames / 16.0))


def video_moves(scores: Sequence[float], kept_frames: int, height: int, width: int) -> bool:
    """The official check_move: at least round(4 N / 16) pair scores above 6 min(H, W) / 256."""
    threshold, needed = move_rule(kept_frames, height, width)
    return bool(scores) and sum(score > threshold for score in scores) >= needed


def settled_verdict(score_pairs: Callable[[int, int], Sequence[float]], pair_count: int, threshold: float,
                    needed: int, batch_size: int) -> bool:
    """`video_moves` over `pair_count` pairs, asking `score_pairs(start, stop)` for the scores of pairs start..stop-1
    in order and only until the verdict cannot change: at least `needed` scores above `threshold` (True), or fewer
    pairs left than scores still needed (False). At most `batch_size` pairs a call, and no more than still needed."""
    above = done = 0
    while done < pair_count and (done == 0 or above < needed) and above + pair_count - done >= needed:
        take = min(batch_size, max(1, needed - above), pair_count - done)
        above += sum(score > threshold for score in score_pairs(done, done + take))
        done += take
    return done > 0 and above >= needed


def compute(videos, *, checkpoints: Dict[str, str], device="cpu", batch_size: int = 8, fps=None,
            **info) -> Tuple[float, List]:
    """(fraction of moving videos, per-video bools) of dynamic degree; `fps` the frame rate of each video (as
    `evaluate` passes it from the files; None takes every frame). Each video needs at least 2 frames of at least
    128 px a side (after padding)."""
    videos = check_videos(videos, NAME, min_frames=2)
    _check_sizes(videos, NAME)
    _check_batch_size(batch_size, NAME)
    rates = list(fps) if isinstance(fps, (list, tuple)) else [fps] * len(videos)
    if len(rates) != len(videos):
        raise ValueError(f"{NAME}: fps has {len(rates)} values for {len(videos)} videos")
    model = load_raft(checkpoint_file(checkpoints, "raft_things", NAME, CHECKPOINTS["raft_things"][1]), device)
    per_video = []
    for video, rate in zip(videos, rates):
        kept = video[:: frame_interval(rate)]
        pairs = [(i, i + 1) for i in range(len(kept) - 1)]
        threshold, needed = move_rule(len(kept), *video.shape[1:3])
        per_video.append(settled_verdict(
            lambda start, stop, kept=kept, pairs=pairs: pair_scores(model, kept, pairs[start:stop], 0.05, device,
                                                                    batch_size),
            len(pairs), threshold, needed, batch_size,
        ))
    return float(np.mean(per_video)), per_video


def static_rule(frames: int, height: int, width: int) -> Tuple[float, int]:
    """(threshold, allowed): the official check_static allows at most `allowed` consecutive pair scores above
    `threshold`, and first-last scores up to `2 * threshold * allowed`."""
    return 3.0 * (min(height, width) / 256.0), round(2 * (frames / 16.0))


def video_is_static(scores: Sequence[float], frames: int, height: int, width: int) -> bool:
    """The official static filter's check_static on the consecutive pair scores followed by (first, last) and
    (last, first): at most round(2 F / 16) consecutive scores above 3 min(H, W) / 256, and both first-last
    scores at most twice the threshold times that count."""
    threshold, allowed = static_rule(frames, height, width)
    if sum(score > threshold for score in scores[:-2]) > allowed:
        return False
    return _ends_static(scores[-2:], threshold, allowed)


def _ends_static(end_scores: Sequence[float], threshold: float, allowed: int) -> bool:
    """check_static's last test: both first-last scores at most twice the threshold times the allowed count."""
    return all(score <= threshold * allowed * 2 for score in end_scores)


def video_static(model, video, device="cpu", batch_size: int = 8) -> bool:
    """The official static filter's verdict on one uint8 video [F,H,W,3] (all frames, no sampling): RAFT over the
    consecutive pairs and first-last both ways, the mean of the largest 2% of flow magnitudes per pair. The pairs
    run only until the verdict is settled (`settled_verdict`): a video with too many moving pairs is not static
    whatever the rest score, and its first-last pairs are not computed."""
    last = len(video) - 1
    consecutive = [(i, i + 1) for i in range(last)]
    threshold, allowed = static_rule(len(video), *video.shape[1:3])
    moves = settled_verdict(
        lambda start, stop: pair_scores(model, video, consecutive[start:stop], 0.02, device, batch_size),
        len(consecutive), threshold, allowed + 1, batch_size,
    )
    if moves:
        return False
    ends = pair_scores(model, video, [(0, last), (last, 0)], 0.02, device, batch_size)
    return _ends_static(ends, threshold, allowed)


def static_videos(videos, *, checkpoints: Dict[str, str], device="cpu", batch_size: int = 8) -> List[bool]:
    """Which videos the official static filter keeps (True: static); see `video_static`."""
    name = "static_filter"
    videos = check_videos(videos, name, min_frames=1)
    _check_sizes(videos, name)
    _check_batch_size(batch_size, name)
    model = load_raft(checkpoint_file(checkpoints, "raft_things", name, CHECKPOINTS["raft_things"][1]), device)
    return [video_static(model, video, device, batch_size) for video in videos]
