"""Training data: the three folder formats, clips cut to the frame rule and bucket, bad data named before training,
the cache key, the family rules against the specifications, and `vdp train`'s argument errors."""

import json
import subprocess
import sys

import numpy as np
import pytest
from helpers.training_data import write_training_folder

from video_diffusion_pack.cli import main
from video_diffusion_pack.training.data import ClipSettings, DataError, TrainingData, cache_key, folder_identity
from video_diffusion_pack.training.families import FAMILIES
from video_diffusion_pack.video_io import write_video

DAS_CLIP = dict(frame_multiple=4, frame_remainder=1, size_multiple=16)


@pytest.mark.parametrize("index", ["metadata.jsonl", "metadata.csv", "prompts.txt"])
def test_each_format_gives_clips_in_the_bucket(tmp_path, index):
    folder = write_training_folder(tmp_path / "data", "das", frames=10, size=(40, 36), index=index)
    required = () if index == "prompts.txt" else ("tracking_video",)
    data = TrainingData(folder, ClipSettings(9, 32, 32, **DAS_CLIP), required).check()
    assert len(data) == 2
    sample = data[1]
    assert sample["caption"] == "a gradient drifting right, sample 1"
    assert sample["video"].shape == (9, 3, 32, 32) and sample["video"].dtype == np.float32
    assert -1 <= sample["video"].min() < 0 < sample["video"].max() <= 1
    if index != "prompts.txt":
        assert sample["tracking_video"].shape == (9, 3, 32, 32)


def test_clip_takes_strided_frames_covered_and_centre_cropped(tmp_path):
    # frame i is uniformly grey 10 * i; left half of every frame black, so a centre crop keeps both halves
    frames = np.stack([np.full((16, 64, 3), 10 * i, np.uint8) for i in range(9)])
    frames[:, :, :32] = 0
    write_video(tmp_path / "v.mp4", frames, quality=100)
    (tmp_path / "metadata.jsonl").write_text(json.dumps({"file_name": "v.mp4", "caption": "grey"}) + "\n")
    data = TrainingData(tmp_path, ClipSettings(3, 32, 32, frame_stride=4)).check()
    video = (data[0]["video"] + 1) * 127.5
    assert video.shape == (3, 3, 32, 32)
    # cover: 16x64 -> 32x128, centre crop keeps columns 48..80 of the cover: black left, grey right
    assert np.allclose(video[:, :, :, :12].mean(), 0, atol=3)
    assert np.allclose(video[:, :, :, 20:].mean(axis=(1, 2, 3)), [0, 40, 80], atol=3)


def test_buckets_round_each_video_down_to_the_size_multiple(tmp_path):
    folder = write_training_folder(tmp_path, "das", frames=9, size=(40, 56))
    data = TrainingData(folder, ClipSettings(9, **DAS_CLIP), ("tracking_video",)).check()
    assert data.buckets == [(32, 48), (32, 48)]
    assert data[0]["video"].shape == (9, 3, 32, 48)


def test_lgvi_columns_mask_in_zero_one(tmp_path):
    folder = write_training_folder(tmp_path, "lgvi", frames=3, size=(32, 48))
    sample = TrainingData(folder, ClipSettings(3, 32, 48), ("input_video",), "instruction").check()[0]
    assert sample["instruction"] == "remove the square 0"
    assert sample["input_video"].shape == sample["video"].shape == (3, 3, 32, 48)
    mask = sample["mask"]
    assert mask.shape == (3, 1, 32, 48) and mask.min() >= 0 and mask.max() <= 1
    assert mask[:, 0, 12, 18].min() > 0.9 and mask[:, 0, 28, 40].max() < 0.1


def test_missing_folder_and_counts_that_differ_are_named(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        TrainingData(tmp_path / "nothing", ClipSettings(1))
    folder = write_training_folder(tmp_path / "d", "das", index="prompts.txt")
    (folder / "prompts.txt").write_text("one\ntwo\nthree\n")
    with pytest.raises(DataError, match="has 3 prompts and .*videos.txt' 2 videos"):
        TrainingData(folder, ClipSettings(9, **DAS_CLIP))


def test_a_missing_caption_or_family_column_is_named(tmp_path):
    folder = write_training_folder(tmp_path, "das")
    rows = [json.loads(line) for line in (folder / "metadata.jsonl").read_text().splitlines()]
    del rows[1]["caption"], rows[0]["tracking_video"]
    (folder / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(DataError, match="row 1: tracking_video; row 2: caption"):
        TrainingData(folder, ClipSettings(9, **DAS_CLIP), ("tracking_video",))


def test_short_and_unreadable_videos_are_all_named_in_one_error(tmp_path):
    folder = write_training_folder(tmp_path, "das", count=3, frames=9)
    write_video(folder / "clip1.mp4", np.zeros((5, 32, 32, 3), np.uint8))
    (folder / "tracks2.mp4").write_bytes(b"not a video at all")
    with pytest.raises(DataError) as raised:
        TrainingData(folder, ClipSettings(9, 32, 32, **DAS_CLIP), ("tracking_video",)).check()
    message = str(raised.value)
    assert message.startswith("2 problem(s)")
    assert "clip1.mp4' is too short: a clip of 9 frames at stride 1 needs 9 frames" in message
    assert "tracks2.mp4" in message and "clip0.mp4" not in message


def test_a_path_outside_the_data_folder_is_refused(tmp_path):
    folder = write_training_folder(tmp_path / "d", "das")
    (folder / "metadata.jsonl").write_text(json.dumps({"file_name": "../secret.mp4", "caption": "x",
                                                       "tracking_video": "tracks0.mp4"}) + "\n")
    with pytest.raises(DataError, match="outside the data folder"):
        TrainingData(folder, ClipSettings(9, **DAS_CLIP), ("tracking_video",)).check()


def test_cache_key_changes_with_data_and_settings(tmp_path):
    folder = write_training_folder(tmp_path, "das")
    data = TrainingData(folder, ClipSettings(9, 32, 32, **DAS_CLIP), ("tracking_video",)).check()
    key = cache_key(data, "das", None, {"seed": 0})
    assert key == cache_key(data, "das", None, {"seed": 0})
    assert key != cache_key(data, "das", None, {"seed": 1})
    assert key != cache_key(data, "lgvi", None, {"seed": 0})
    smaller = TrainingData(folder, ClipSettings(5, 32, 32, **DAS_CLIP), ("tracking_video",)).check()
    assert key != cache_key(smaller, "das", None, {"seed": 0})
    write_video(folder / "clip0.mp4", np.zeros((9, 32, 32, 3), np.uint8))
    assert key != cache_key(data, "das", None, {"seed": 0})


def test_family_rules_equal_the_specifications():
    from video_diffusion_pack.training.specifications import get_specification

    for name, rules in FAMILIES.items():
        spec = get_specification(name)
        assert (rules.frame_multiple, rules.frame_remainder, rules.size_multiple) == (
            spec.frame_multiple, spec.frame_remainder, spec.size_multiple), name
        assert set(rules.required_columns) <= set(spec.data_columns), name


@pytest.mark.parametrize("arguments, message", [
    (["--lr", "0"], "argument --lr: learning_rate=0.0 must be a finite number > 0"),
    (["--lr", "nan"], "argument --lr: learning_rate=nan must be a finite number"),
    (["--gradient-accumulation-steps", "0"], "gradient_accumulation_steps=0 must be an integer >= 1"),
    (["--type", "lora", "--lora-rank", "0"], "argument --lora-rank: lora_rank=0 must be an integer >= 1"),
    (["--num-frames", "8"], "num_frames=8 is not allowed by model 'das'; it needs 4k+1 frames"),
    (["--height", "40"], "height=40 is not allowed by model 'das'; it must be a positive multiple of 16"),
    (["--model", "nope"], "model='nope' is not a family the trainer knows"),
    (["--type", "half"], "training_type='half' is not allowed; use one of full, lora"),
])
def test_argument_errors_exit_2_naming_the_value(tmp_path, capsys, arguments, message):
    folder = write_training_folder(tmp_path / "data", "das", count=1)
    base = ["train", "--model", "das", "--data", str(folder), "--output", str(tmp_path / "out")]
    with pytest.raises(SystemExit) as raised:
        main(base + arguments)
    assert raised.value.code == 2
    assert message in capsys.readouterr().err


def test_output_folder_of_another_run_is_refused_and_no_data_folder_named(tmp_path, capsys):
    folder = write_training_folder(tmp_path / "data", "das", count=1)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "notes.txt").write_text("mine")
    for arguments, message in (
        (["--data", str(folder), "--output", str(tmp_path / "out")], "exists and is not empty; pass"),
        (["--data", str(tmp_path / "none"), "--output", str(tmp_path / "o")], "the data folder does not exist"),
    ):
        with pytest.raises(SystemExit) as raised:
            main(["train", "--model", "das", *arguments])
        assert raised.value.code == 2
        assert message in capsys.readouterr().err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["notes.txt"]


def test_config_file_fills_options_and_the_command_line_wins(tmp_path, capsys):
    folder = write_training_folder(tmp_path / "data", "das", count=1)
    config = tmp_path / "train.yaml"
    config.write_text(f"model: das\ndata: {folder}\noutput: {tmp_path / 'out'}\nlora-rank: 0\ntype: lora\n")
    with pytest.raises(SystemExit):
        main(["train", "--config", str(config)])
    assert "lora_rank=0" in capsys.readouterr().err
    config.write_text(config.read_text() + "no_such_option: 1\n")
    with pytest.raises(SystemExit):
        main(["train", "--config", str(config), "--lora-rank", "4"])
    assert "unknown option 'no_such_option'" in capsys.readouterr().err


def test_help_and_argument_errors_import_neither_torch_nor_diffusers(tmp_path):
    probe = ("import sys\nfrom video_diffusion_pack.cli import main\n"
             "for argv in ({!r}, {!r}):\n"
             "    try:\n        main(argv)\n    except SystemExit:\n        pass\n"
             "print('heavy:' + ','.join(m for m in ('torch', 'diffusers') if m in sys.modules))")
    script = probe.format(["train", "--help"], ["train", "--model", "das", "--data", str(tmp_path), "--output",
                                                str(tmp_path / "o"), "--num-frames", "8"])
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.stdout.strip().splitlines()[-1] == "heavy:", result.stderr


def test_a_model_folder_s_identity_ignores_its_model_card_and_pictures(tmp_path):
    folder = tmp_path / "model"
    (folder / "transformer").mkdir(parents=True)
    (folder / "model_index.json").write_text('{"_class_name": "VchitectRepVideoPipeline"}')
    (folder / "transformer" / "diffusion_pytorch_model.safetensors").write_bytes(b"\0" * 64)
    (folder / "MODEL_CARD.md").write_text("# a card")
    (folder / "examples.png").write_bytes(b"\x89PNG")
    first = folder_identity(str(folder))
    (folder / "MODEL_CARD.md").write_text("# a card, with the scores of a new evaluation")
    (folder / "examples.png").write_bytes(b"\x89PNG and another picture")
    assert folder_identity(str(folder)) == first
    (folder / "model_index.json").write_text('{"_class_name": "VchitectRepVideoPipeline", "x": 1}')
    assert folder_identity(str(folder)) != first
    second = folder_identity(str(folder))
    (folder / "transformer" / "diffusion_pytorch_model.safetensors").write_bytes(b"\0" * 65)
    assert folder_identity(str(folder)) != second
