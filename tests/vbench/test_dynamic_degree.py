"""dynamic_degree and the static filter equal the official vbench 0.1.5 on a full-size RAFT with seeded random
weights in the official raft-things.pth layout (`module.` keys), loaded into torchvision's raft_large."""

import numpy as np
import pytest
import torch

from tests.helpers.vbench_weights import arrays_sha256, raft_float_table, raft_official_arrays, seeded_arrays
from tests.vbench.dimension_fixtures import FIXTURES, fixture_clips, official_result
from video_diffusion_pack.evaluation.vbench import evaluate
from video_diffusion_pack.evaluation.vbench.dimensions import dynamic_degree

OFFICIAL = official_result("dynamic_degree")
OFFICIAL_STATIC = official_result("static_filter")


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    entry = OFFICIAL["checkpoints"]["raft_things"]
    gains = (entry["seed"], entry["gain"], entry["key_gains"])
    assert arrays_sha256(seeded_arrays(raft_float_table(entry["keys"]), *gains)) == entry["sha256"]
    arrays = raft_official_arrays(entry["keys"], *gains)
    path = tmp_path_factory.mktemp("raft") / "raft-things.pth"
    torch.save({"module." + key: torch.from_numpy(value) for key, value in arrays.items()}, path)
    return {"raft_things": path}


@pytest.fixture(scope="module")
def model(checkpoints):
    return dynamic_degree.load_raft(str(checkpoints["raft_things"]))


def test_pair_scores_and_verdicts_equal_the_official_code(model):
    for row in OFFICIAL["per_video"]:
        frames = fixture_clips()[row["clip"]]
        fps = 24 if row["clip"] == "pan_24fps.mp4" else 8
        kept = frames[:: dynamic_degree.frame_interval(fps)]
        pairs = [(i, i + 1) for i in range(len(kept) - 1)]
        scores = dynamic_degree.pair_scores(model, kept, pairs, 0.05, batch_size=3)
        np.testing.assert_allclose(scores, row["pair_scores"], rtol=1e-5, atol=0, err_msg=row["clip"])
        assert dynamic_degree.video_moves(row["pair_scores"], len(kept), *frames.shape[1:3]) is row["score"]
    # the official thresholds the fixture recorded are the ones the pack derives
    for row in OFFICIAL["per_video"]:
        height, width = fixture_clips()[row["clip"]].shape[1:3]
        assert row["thres"] == 6.0 * min(height, width) / 256.0


def test_evaluate_reads_the_frame_rate_and_matches_the_official_results(checkpoints):
    # at 24 fps every third frame is kept: 4 frames, 3 pairs; at 8 fps all 10 frames would be 9 pairs
    row = next(row for row in OFFICIAL["per_video"] if row["clip"] == "pan_24fps.mp4")
    assert len(row["pair_scores"]) == 3
    results = evaluate([str(FIXTURES / row["clip"])], ["dynamic_degree"], mode="custom", checkpoints=checkpoints)
    aggregate, per_video = results["dynamic_degree"]
    assert per_video[0]["video_results"] is row["score"] and aggregate == float(row["score"])


def test_static_filter_equals_the_official_code(checkpoints, tmp_path):
    import json
    import shutil

    from video_diffusion_pack.evaluation.vbench import suite
    from video_diffusion_pack.evaluation.vbench.static_filter import static_filter

    prompt = suite.prompts("temporal_flickering")[0]
    videos = tmp_path / "videos"
    videos.mkdir()
    rows = OFFICIAL_STATIC["per_video"]
    for index, row in enumerate(rows):
        shutil.copyfile(FIXTURES / row["clip"], videos / f"{prompt}-{index}.mp4")
    shutil.copyfile(FIXTURES / "wide_noise.mp4", videos / "not a suite prompt-0.mp4")  # not judged (too small)
    results = static_filter(videos, tmp_path / "out", checkpoints=checkpoints, batch_size=6)
    kept = [str(videos / f"{prompt}-{index}.mp4") for index, row in enumerate(rows) if row["score"]]
    assert results[prompt] == {"static_count": len(kept), "static_path": kept}
    assert len(results) == len(suite.prompts("temporal_flickering"))
    assert json.loads((tmp_path / "out" / "filtered_static_video.json").read_text()) == results
    copied = sorted(p.name for p in (tmp_path / "out" / "filtered_videos").iterdir())
    assert copied == [f"{prompt}-{index}.mp4" for index in range(len(kept))]
    for row in rows:
        frames = fixture_clips()[row["clip"]]
        assert dynamic_degree.video_is_static(row["pair_scores"], len(frames), *frames.shape[1:3]) is row["score"]


def test_the_official_rules_by_hand():
    # 16 kept frames of 256 px: threshold 6, at least 4 of the 15 pairs above it
    assert dynamic_degree.video_moves([6.1] * 4 + [1.0] * 11, 16, 256, 320)
    assert not dynamic_degree.video_moves([6.1] * 3 + [6.0] * 12, 16, 256, 320)
    # two kept frames: round(0.5) == 0 pairs needed, so any pair moves (as the official loop returns at once)
    assert dynamic_degree.video_moves([0.0], 2, 256, 256)
    # static filter, 16 frames of 256 px: threshold 3, at most 2 consecutive scores above it, first-last <= 12
    assert dynamic_degree.video_is_static([3.5, 3.5] + [0.0] * 13 + [12.0, 12.0], 16, 256, 256)
    assert not dynamic_degree.video_is_static([3.5] * 3 + [0.0] * 12 + [1.0, 1.0], 16, 256, 256)
    assert not dynamic_degree.video_is_static([0.0] * 15 + [1.0, 12.5], 16, 256, 256)
    assert [dynamic_degree.frame_interval(fps) for fps in (None, 8, 12, 13, 24, 30, 60)] == [1, 1, 2, 2, 3, 4, 8]


@pytest.mark.parametrize("batch_size", [1, 2, 3, 8])
def test_the_settled_verdict_equals_the_full_one_and_stops_where_the_rest_cannot_change_it(batch_size):
    import itertools

    for kept in range(2, 11):
        threshold, needed = dynamic_degree.move_rule(kept, 256, 256)
        pair_count = kept - 1
        for pattern in itertools.product([False, True], repeat=pair_count):
            scores = [threshold + 1.0 if moving else threshold for moving in pattern]
            asked = []

            def score_pairs(start, stop, asked=asked, scores=scores):
                asked.append((start, stop))
                return scores[start:stop]

            verdict = dynamic_degree.settled_verdict(score_pairs, pair_count, threshold, needed, batch_size)
            assert verdict is dynamic_degree.video_moves(scores, kept, 256, 256)
            # the pairs are asked for in order, each once, at most batch_size a call
            flat = [index for start, stop in asked for index in range(start, stop)]
            assert flat == list(range(len(flat))) and all(0 < stop - start <= batch_size for start, stop in asked)
            # the shortest prefix after which every way the other pairs could score gives the same verdict
            settled = next(k for k in range(1, pair_count + 1) if len({
                dynamic_degree.video_moves(scores[:k] + list(rest), kept, 256, 256)
                for rest in itertools.product([threshold, threshold + 1.0], repeat=pair_count - k)}) == 1)
            assert len(flat) >= settled
            if batch_size == 1:
                assert len(flat) == settled, (kept, pattern)


def test_the_key_map_covers_the_official_layout(model):
    assert sum(p.numel() for p in model.parameters()) == 5_257_536
    assert dynamic_degree.torchvision_key("update_block.gru.convq2.weight") == (
        "update_block.recurrent_block.convgru2.convq.weight"
    )
    assert dynamic_degree.torchvision_key("cnet.layer3.0.norm3.bias") is None


def test_a_wrong_checkpoint_is_refused_naming_the_keys(checkpoints, tmp_path):
    state = torch.load(checkpoints["raft_things"], weights_only=True)
    state.pop("module.update_block.mask.2.bias")
    broken = tmp_path / "raft-things.pth"
    torch.save(state, broken)
    with pytest.raises(ValueError, match="update_block.mask.2.bias"):
        dynamic_degree.load_raft(str(broken))


@pytest.mark.parametrize(
    "shape, message",
    [((1, 128, 128, 3), "has 1 frames; this dimension needs at least 2"), ((3, 96, 544, 3), "96x544")],
)
def test_too_short_or_too_small_videos_are_named(checkpoints, shape, message):
    with pytest.raises(ValueError, match=message):
        dynamic_degree.compute([np.zeros(shape, np.uint8)], checkpoints=checkpoints)
