"""LGVI-I through InpaintByInstructionPipeline: the tiny pipeline end to end, loading the three released layouts,
save/load round trip, loader errors."""

import pytest
import torch

from video_diffusion_pack import InpaintByInstructionPipeline
from video_diffusion_pack.diffusers_pipelines.lgvi.lgvi_i import (
    build_tiny_lgvi_i_pipeline,
    load_lgvi_i_pipeline,
    save_tiny_lgvi_i_official_layout,
)
from video_diffusion_pack.models.lgvi_instruction_encoder import LGVIInstructionEncoder

REQUEST = ("I have this incredible shot of a pelican gliding in the sky, but there's another bird also captured in the "
           "frame. Can you help me make the picture solely about the pelican?")
HEIGHT, WIDTH, FRAMES = 32, 48, 3


def tiny_video():
    return torch.rand(FRAMES, HEIGHT, WIDTH, 3, generator=torch.Generator().manual_seed(0))


def run(pipeline, seed=0, **kwargs):
    return pipeline(
        tiny_video(), prompt=REQUEST, height=HEIGHT, width=WIDTH, num_inference_steps=2, output_type="pt",
        generator=torch.Generator().manual_seed(seed), **kwargs,
    )


@pytest.fixture(scope="module")
def tiny_pipeline():
    return build_tiny_lgvi_i_pipeline(seed=0)


def test_tiny_lgvi_i_pipeline_writes_an_instruction_and_edits_the_video(tiny_pipeline):
    seen = {}

    def keep_embeds(pipeline, step, timestep, callback_kwargs):
        seen.setdefault("prompt_embeds", callback_kwargs["prompt_embeds"])
        return callback_kwargs

    output = run(tiny_pipeline, callback_on_step_end=keep_embeds, callback_on_step_end_tensor_inputs=["prompt_embeds"])
    assert output.frames.shape == (1, FRAMES, 3, HEIGHT, WIDTH)
    assert torch.isfinite(output.frames).all()
    assert isinstance(output.instructions, list) and len(output.instructions) == 1
    assert isinstance(output.instructions[0], str) and output.instructions[0]
    embeds = seen["prompt_embeds"]
    # the encoder's tokens (at most max_new_tokens), not the CLIP text encoder's 77
    assert embeds.shape[0] == 1 and 1 <= embeds.shape[1] <= 8 and embeds.shape[2] == 32
    assert isinstance(tiny_pipeline.instruction_encoder, LGVIInstructionEncoder)


def test_tiny_lgvi_i_pipeline_is_seeded(tiny_pipeline):
    first, again, other = run(tiny_pipeline, seed=1), run(tiny_pipeline, seed=1), run(tiny_pipeline, seed=2)
    assert first.instructions == again.instructions
    torch.testing.assert_close(first.frames, again.frames, rtol=0, atol=0)
    assert not torch.equal(first.frames, other.frames)


def test_load_lgvi_i_pipeline_from_the_released_layouts(tiny_pipeline, tmp_path):
    root = save_tiny_lgvi_i_official_layout(tmp_path / "weights", seed=0)
    assert (root / "lgvi-i" / "llava" / "llava_weights.pth").is_file()
    assert (root / "llava-v1.5-7b" / "tokenizer.model").is_file()
    loaded = load_lgvi_i_pipeline(
        root / "lgvi-i", root / "llava-v1.5-7b", root / "clip-vit-large-patch14-336", max_new_tokens=8
    )
    expected, got = run(tiny_pipeline, seed=3), run(loaded, seed=3)
    assert got.instructions == expected.instructions
    torch.testing.assert_close(got.frames, expected.frames, rtol=1e-5, atol=1e-5)


def test_save_pretrained_round_trip_keeps_the_instruction_encoder(tiny_pipeline, tmp_path):
    tiny_pipeline.save_pretrained(tmp_path / "saved")
    assert (tmp_path / "saved" / "instruction_encoder" / "tokenizer").is_dir()
    loaded = InpaintByInstructionPipeline.from_pretrained(tmp_path / "saved")
    assert isinstance(loaded.instruction_encoder, LGVIInstructionEncoder)
    expected, got = run(tiny_pipeline, seed=4), run(loaded, seed=4)
    assert got.instructions == expected.instructions
    torch.testing.assert_close(got.frames, expected.frames, rtol=1e-5, atol=1e-5)


def test_load_lgvi_i_pipeline_reports_bad_folders(tmp_path):
    root = save_tiny_lgvi_i_official_layout(tmp_path / "weights", seed=0)
    llava_dir, clip_dir = root / "llava-v1.5-7b", root / "clip-vit-large-patch14-336"
    with pytest.raises(FileNotFoundError, match="lgvi_i_dir=.*is not a folder"):
        load_lgvi_i_pipeline(tmp_path / "missing", llava_dir, clip_dir)
    with pytest.raises(ValueError, match="torch_dtype=torch.int8"):
        load_lgvi_i_pipeline(root / "lgvi-i", llava_dir, clip_dir, torch_dtype=torch.int8)
    overlay_path = root / "lgvi-i" / "llava" / "llava_weights.pth"
    overlay = torch.load(overlay_path, weights_only=True)
    overlay["transfer_layer"]["2.weight"] = overlay["transfer_layer"]["2.weight"][:16]
    torch.save(overlay, overlay_path)
    with pytest.raises(ValueError, match="transfer head outputs 16 features but the UNet .* attends to 32"):
        load_lgvi_i_pipeline(root / "lgvi-i", llava_dir, clip_dir)
    overlay_path.unlink()
    with pytest.raises(FileNotFoundError, match="has no llava/llava_weights.pth"):
        load_lgvi_i_pipeline(root / "lgvi-i", llava_dir, clip_dir)
