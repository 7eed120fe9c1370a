"""VDPVBenchScore in a real ComfyUI: IMAGE batches from core nodes scored with checkpoints from a folder."""

import numpy as np

from tests.vbench.dimension_fixtures import official_result, write_seeded_checkpoint
from video_diffusion_pack.evaluation.vbench.dimensions import aesthetic_quality


def graph(folder, dimension="aesthetic_quality", second_colour=0x336699):
    """Two 224x160 frames: a 0x336699 one, then one of `second_colour`."""
    frame = {"width": 224, "height": 160, "batch_size": 1}
    return {
        "1": {"class_type": "EmptyImage", "inputs": {**frame, "color": 0x336699}},
        "2": {"class_type": "EmptyImage", "inputs": {**frame, "color": second_colour}},
        "3": {"class_type": "ImageBatch", "inputs": {"image1": ["1", 0], "image2": ["2", 0]}},
        "4": {"class_type": "VDPVBenchScore",
              "inputs": {"images": ["3", 0], "dimension": dimension, "checkpoint_folder": str(folder),
                         "batch_size": 2}},
    }


def test_temporal_flickering_of_two_frames_is_the_hand_computed_value(comfyui):
    # 0x33 0x66 0x99 -> 0x51 0x84 0xB7: each channel up by 30 -> (255 - 30) / 255
    history = comfyui.client.run(graph("", "temporal_flickering", second_colour=0x5184B7), timeout_s=120)
    assert history["status"]["status_str"] == "success", comfyui.client.execution_errors(history)
    assert history["outputs"]["4"]["text"] == [f"temporal_flickering: {225 / 255:.6f} (2 frames)"]


def test_node_scores_an_image_batch_as_the_dimension_module_does(comfyui, tmp_path):
    entries = official_result("aesthetic_quality")["checkpoints"]
    checkpoints = {
        "clip_vit_l_14": write_seeded_checkpoint(entries["clip_vit_l_14"], tmp_path / "ViT-L-14.pt"),
        "aesthetic_head": write_seeded_checkpoint(entries["aesthetic_head"], tmp_path / "sa_0_4_vit_l_14_linear.pth"),
    }
    history = comfyui.client.run(graph(tmp_path), timeout_s=300)
    assert history["status"]["status_str"] == "success", comfyui.client.execution_errors(history)
    (report,) = history["outputs"]["4"]["text"]
    frames = np.zeros((2, 160, 224, 3), np.uint8)
    frames[...] = (0x33, 0x66, 0x99)
    expected, _ = aesthetic_quality.compute([frames], checkpoints=checkpoints)
    assert report == f"aesthetic_quality: {expected:.6f} (2 frames)"


def test_a_folder_without_the_checkpoints_is_refused_at_validation_naming_the_download(comfyui, tmp_path):
    status, body = comfyui.client.post_prompt(graph(tmp_path, "motion_smoothness"))
    assert status == 400
    details = " ".join(error["details"] for error in body["node_errors"]["4"]["errors"])
    assert "amt-s.pth" in details and "vdp download vbench-amt-s" in details
