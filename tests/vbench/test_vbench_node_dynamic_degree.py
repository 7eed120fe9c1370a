"""VDPVBenchScore in a real ComfyUI on dynamic_degree: frames of a parity clip loaded by core LoadImage nodes,
scored with the seeded full-size RAFT in the official `raft-things.pth` layout, the verdict the official vbench
0.1.5 pair scores give."""

import torch
from PIL import Image

from tests.helpers.vbench_weights import arrays_sha256, raft_float_table, raft_official_arrays, seeded_arrays
from tests.vbench.dimension_fixtures import fixture_clips, official_result
from video_diffusion_pack.evaluation.vbench.dimensions import dynamic_degree

FRAMES = 3


def test_dynamic_degree_of_three_frames_is_the_official_verdict(comfyui, tmp_path):
    official = official_result("dynamic_degree")
    entry = official["checkpoints"]["raft_things"]
    gains = (entry["seed"], entry["gain"], entry["key_gains"])
    assert arrays_sha256(seeded_arrays(raft_float_table(entry["keys"]), *gains)) == entry["sha256"]
    checkpoint = tmp_path / "raft-things.pth"  # the official layout: `module.` keys
    torch.save({"module." + key: torch.from_numpy(value) for key, value in raft_official_arrays(
        entry["keys"], *gains).items()}, checkpoint)
    frames = fixture_clips()["moving_gradient.mp4"][:FRAMES]
    graph = {}
    for index, frame in enumerate(frames):
        Image.fromarray(frame).save(comfyui.input_dir / f"dd_{index}.png")
        graph[f"load{index}"] = {"class_type": "LoadImage", "inputs": {"image": f"dd_{index}.png"}}
    previous = ["load0", 0]
    for index in range(1, FRAMES):
        graph[f"batch{index}"] = {"class_type": "ImageBatch", "inputs": {"image1": previous,
                                                                          "image2": [f"load{index}", 0]}}
        previous = [f"batch{index}", 0]
    graph["score"] = {"class_type": "VDPVBenchScore", "inputs": {
        "images": previous, "dimension": "dynamic_degree", "checkpoint_folder": str(tmp_path), "batch_size": 2}}

    history = comfyui.client.run(graph, timeout_s=600)

    assert history["status"]["status_str"] == "success", comfyui.client.execution_errors(history)
    (report,) = history["outputs"]["score"]["text"]
    # the official pair scores of this clip's first pairs against the official threshold and count (every frame
    # kept: the node has no frame rate)
    clip = next(item for item in official["per_video"] if item["clip"] == "moving_gradient.mp4")
    scores = clip["pair_scores"][: FRAMES - 1]
    threshold, needed = 6.0 * min(frames.shape[1:3]) / 256.0, round(4 * FRAMES / 16)
    expected = float(sum(score > threshold for score in scores) >= needed)
    assert report == f"dynamic_degree: {expected:.6f} ({FRAMES} frames)"
    moving, _ = dynamic_degree.compute([frames], checkpoints={"raft_things": str(checkpoint)})
    assert moving == expected
