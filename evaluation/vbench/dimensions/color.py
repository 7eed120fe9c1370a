"""VBench color: whether GRiT's dense captions of the prompt's object name the prompt's colour, over each video's
middle 16 frames.

As the official code: the object is the prompt without 'a ', 'an ' and the colour; each caption is paired with the
frame's first object-detection name; an object frame has a caption paired with the object that holds any of 12
colour words, a colour frame one that holds the prompt's colour (substring matches: 'bored' holds 'red'). Per video colour frames /
object frames; videos without object frames are skipped (no entry); the aggregate is the mean over the videos
kept. The dense captioner runs in the backend (`backend_python`, frames above 768 pixels resized there with cv2 as
the official code does) or its outputs come from a file (`model_outputs`).
"""

from typing import Dict, List, Tuple

from . import _grit

NAME = "color"
TASK = "grit_densecap"
CHECKPOINTS = _grit.CHECKPOINTS
needs_checkpoints = _grit.needs_checkpoints
needs_frames = _grit.needs_frames
# the per-video list holds only the videos with object frames
SKIPS_VIDEOS = True


def check_options(video_paths, **options) -> None:
    _grit.check_options(video_paths, TASK, NAME, **options)


def compute(videos, *, checkpoints: Dict[str, str], device="cpu", batch_size: int = 16, video_paths=None,
            prompts=None, auxiliary_info=None, backend_python=None, model_outputs=None, save_model_outputs=None,
            **info) -> Tuple[float, List[Dict]]:
    """(mean over the kept videos, entries {'video_path', 'video_results', 'cur_success_frame_rate'} of the kept
    videos); ValueError when no video has an object frame (the official code divides by zero there)."""
    colors = [_grit.auxiliary(auxiliary_info, index, "color", NAME) for index in range(len(videos))]
    if prompts is None or len(prompts) != len(videos):
        raise ValueError(f"{NAME}: prompts must give each video's prompt (the object is read from it)")
    outputs = _grit.detections(NAME, TASK, videos, checkpoints=checkpoints, device=device, video_paths=video_paths,
                               backend_python=backend_python, model_outputs=model_outputs,
                               save_model_outputs=save_model_outputs)
    total, entries = 0, []
    for index, (records, color, prompt) in enumerate(zip(outputs, colors, prompts)):
        object_frames, color_frames = _grit.color_counts(
            records, color, _grit.color_object(prompt, color), NAME, f"videos[{index}]"
        )
        if object_frames > 0:
            rate = color_frames / object_frames
            total += rate
            entries.append({"video_path": video_paths[index], "video_results": rate, "cur_success_frame_rate": rate})
    if not entries:
        raise ValueError(
            f"{NAME}: no video has a frame where the prompt's object is captioned with a colour, so there is no "
            f"score (the official code divides by zero)"
        )
    return total / len(entries), entries
