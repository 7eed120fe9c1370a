"""LoRAs the trainer writes load into every pipeline of the pack, change its output, and come off without a trace.

Each family trains a LoRA for a few steps at a high learning rate on its embedded model (the specification's
contract, as the trainer drives it), saves it in diffusers' format, and loads it into a fresh pipeline of the same
model with diffusers' API: ``load_lora_weights``, ``set_adapters``, ``fuse_lora`` / ``unfuse_lora``,
``unload_lora_weights``, ``get_active_adapters``.
"""

import dataclasses
import json
import math

import pytest
import torch
from helpers.lora_training import ALPHA, RANK, lora_batch, train_lora
from safetensors import safe_open
from safetensors.torch import save_file

from video_diffusion_pack.diffusers_pipelines.lora import loras_applied
from video_diffusion_pack.training.specifications import get_specification

# the part of the model each family's LoRA keys are prefixed with (diffusers' format)
PREFIX = {"vchitect": "transformer.", "repvideo": "transformer.", "das": "transformer.", "lgvi": "unet."}


def generate(family: str, pipeline, batch) -> torch.Tensor:
    """Frames [B, F, 3, H, W] of a 2-step run with a fixed seed."""
    common = dict(num_inference_steps=2, generator=torch.Generator().manual_seed(0), output_type="pt")
    with torch.no_grad():
        if family == "vchitect":
            return pipeline(prompt="a red panda", height=32, width=32, num_frames=2, **common).frames
        if family == "repvideo":
            return pipeline(prompt="a corgi running", height=32, width=32, num_frames=9, **common).frames
        if family == "das":
            tracking = (batch["tracking_video"][0] + 1) / 2
            return pipeline(image=(batch["video"][0, 0] + 1) / 2, prompt="a red panda", negative_prompt="",
                            tracking_video=tracking.permute(0, 2, 3, 1), height=32, width=32, num_frames=9,
                            **common).frames
        video = (batch["input_video"][0] + 1) / 2
        return pipeline(video=video.permute(0, 2, 3, 1), prompt="remove the red panda", height=32, width=48,
                        **common).frames


@dataclasses.dataclass
class Trained:
    family: str
    lora: str  # the LoRA file the specification saved
    pipeline: object  # a fresh pipeline of the embedded model, without adapters
    batch: dict
    baseline: torch.Tensor

    def run(self) -> torch.Tensor:
        return generate(self.family, self.pipeline, self.batch)


def mean_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a - b).abs().mean().item()


@pytest.fixture(scope="module", params=sorted(PREFIX))
def trained(request, tmp_path_factory):
    family = request.param
    lora = train_lora(family, tmp_path_factory.mktemp(f"{family}_lora"))
    pipeline = get_specification(family)._pipeline(get_specification(family).load_components(None))
    batch = lora_batch(family)
    return Trained(family, str(lora), pipeline, batch, generate(family, pipeline, batch))


def test_saved_lora_has_the_pipeline_prefix_and_its_adapter_config(trained):
    with safe_open(trained.lora, "pt") as f:
        keys, metadata = list(f.keys()), f.metadata()
    prefix = PREFIX[trained.family]
    assert keys and all(key.startswith(prefix) and ".lora_" in key for key in keys)
    adapter = json.loads(metadata["lora_adapter_metadata"])
    assert (adapter[prefix + "r"], adapter[prefix + "lora_alpha"]) == (RANK, ALPHA)


def test_trained_lora_changes_the_output_and_unloading_restores_it_exactly(trained):
    pipeline = trained.pipeline
    pipeline.load_lora_weights(trained.lora, adapter_name="trained")
    try:
        assert pipeline.get_active_adapters() == ["trained"]
        with_lora = trained.run()
    finally:
        pipeline.unload_lora_weights()
    assert mean_distance(with_lora, trained.baseline) > 1e-2
    assert not any(pipeline.get_list_adapters().values())
    assert torch.equal(trained.run(), trained.baseline)


def test_adapter_weight_one_half_gives_an_output_between(trained):
    pipeline = trained.pipeline
    pipeline.load_lora_weights(trained.lora, adapter_name="trained")
    try:
        full = trained.run()
        pipeline.set_adapters("trained", 0.5)
        half = trained.run()
    finally:
        pipeline.unload_lora_weights()
    whole_way = mean_distance(full, trained.baseline)
    assert 0 < mean_distance(half, trained.baseline) < whole_way
    assert 0 < mean_distance(half, full) < whole_way


def test_fuse_then_unfuse_restores_the_weights_within_fp32_rounding(trained):
    pipeline = trained.pipeline
    denoiser = getattr(pipeline, PREFIX[trained.family].rstrip("."))
    weights = {name: tensor.clone() for name, tensor in denoiser.state_dict().items()}
    pipeline.load_lora_weights(trained.lora, adapter_name="trained")
    try:
        with_lora = trained.run()
        pipeline.fuse_lora()
        fused = trained.run()
        pipeline.unfuse_lora()
        unfused = trained.run()
    finally:
        pipeline.unload_lora_weights()
    after = trained.run()
    torch.testing.assert_close(fused, with_lora, rtol=0, atol=1e-4)
    torch.testing.assert_close(unfused, with_lora, rtol=0, atol=1e-4)
    torch.testing.assert_close(after, trained.baseline, rtol=0, atol=1e-4)
    # the round trip moved the base weights by rounding only; put them back for the tests that follow
    denoiser.load_state_dict(weights)
    assert torch.equal(trained.run(), trained.baseline)


def test_lora_applied_for_a_block_is_removed_after_it(trained):
    pipeline = trained.pipeline
    with loras_applied(pipeline, [(trained.lora, 1.0)]):
        assert pipeline.get_active_adapters() == ["vdp_lora_0"]
        inside = trained.run()
    assert mean_distance(inside, trained.baseline) > 1e-2
    assert not any(pipeline.get_list_adapters().values())
    assert torch.equal(trained.run(), trained.baseline)


def test_lora_applied_refuses_a_pipeline_that_already_holds_adapters(trained):
    trained.pipeline.load_lora_weights(trained.lora, adapter_name="mine")
    try:
        with pytest.raises(ValueError, match=r"already holds LoRA adapters.*'mine'"):
            with loras_applied(trained.pipeline, [(trained.lora, 1.0)]):
                pass
        assert trained.pipeline.get_active_adapters() == ["mine"]
    finally:
        trained.pipeline.unload_lora_weights()


def test_lora_at_strength_zero_leaves_the_output_bit_identical(trained):
    with loras_applied(trained.pipeline, [(trained.lora, 0.0)]):
        assert not any(trained.pipeline.get_list_adapters().values())
        assert torch.equal(trained.run(), trained.baseline)


def test_lora_works_under_the_fp8_memory_preset_and_comes_off_exactly(trained):
    """The adapters compute in bf16 while the base weights are stored in fp8 (diffusers' layerwise casting)."""
    from video_diffusion_pack.diffusers_pipelines.memory import apply_memory

    spec = get_specification(trained.family)
    pipeline = apply_memory(spec._pipeline(spec.load_components(None)), "low", device="cpu")
    baseline = generate(trained.family, pipeline, trained.batch)
    with loras_applied(pipeline, [(trained.lora, 1.0)]):
        adapters = {p.dtype for n, p in getattr(pipeline, PREFIX[trained.family].rstrip(".")).named_parameters()
                    if ".lora_" in n}
        styled = generate(trained.family, pipeline, trained.batch)
    assert adapters == {torch.bfloat16}
    assert mean_distance(styled, baseline) > 1e-2
    assert torch.equal(generate(trained.family, pipeline, trained.batch), baseline)


# -- bad input (on the RepVideo pipeline: the checks are the shared mixin's) ------------------------------------------
@pytest.fixture(scope="module")
def repvideo_pipeline():
    from video_diffusion_pack.diffusers_pipelines.repvideo.tiny import build_tiny_cogvideox_repvideo_pipeline

    return build_tiny_cogvideox_repvideo_pipeline()


def _write(path, tensors):
    save_file(tensors, str(path))
    return str(path)


def _lora_pair(prefix: str, layer: str, rank: int = 2, in_features: int = 8, out_features: int = 8):
    return {f"{prefix}{layer}.lora_A.weight": torch.zeros(rank, in_features),
            f"{prefix}{layer}.lora_B.weight": torch.zeros(out_features, rank)}


def _a_linear(pipeline, name_end="attn1.to_q"):
    return next((n, m) for n, m in pipeline.transformer.named_modules() if n.endswith(name_end))


def test_lora_without_keys_for_the_model_names_the_file_and_the_prefix_expected(repvideo_pipeline, tmp_path):
    path = _write(tmp_path / "unet_style.safetensors",
                  _lora_pair("unet.", "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q"))
    with pytest.raises(ValueError, match=r"unet_style\.safetensors.*no keys for CogVideoXRepVideoPipeline.*"
                                         r"'transformer\.'.*\['unet\.'\]"):
        repvideo_pipeline.load_lora_weights(path)
    assert not any(repvideo_pipeline.get_list_adapters().values())


def test_lora_naming_a_layer_the_model_lacks_is_refused(repvideo_pipeline, tmp_path):
    path = _write(tmp_path / "other.safetensors", _lora_pair("transformer.", "transformer_blocks.99.attn1.to_q"))
    with pytest.raises(ValueError, match=r"other\.safetensors.*transformer_blocks\.99\.attn1\.to_q.*does not have"):
        repvideo_pipeline.load_lora_weights(path)


def test_lora_of_another_model_size_is_refused(repvideo_pipeline, tmp_path):
    name, layer = _a_linear(repvideo_pipeline)
    path = _write(tmp_path / "wide.safetensors",
                  _lora_pair("transformer.", name, in_features=layer.in_features + 1, out_features=layer.out_features))
    with pytest.raises(ValueError, match=rf"wide\.safetensors.*input size {layer.in_features}"):
        repvideo_pipeline.load_lora_weights(path)


def test_lora_with_non_finite_values_is_refused(repvideo_pipeline, tmp_path):
    name, layer = _a_linear(repvideo_pipeline)
    tensors = _lora_pair("transformer.", name, in_features=layer.in_features, out_features=layer.out_features)
    tensors[f"transformer.{name}.lora_B.weight"][0, 0] = math.nan
    path = _write(tmp_path / "nan.safetensors", tensors)
    with pytest.raises(ValueError, match=r"nan\.safetensors.*non-finite"):
        repvideo_pipeline.load_lora_weights(path)


def test_missing_and_corrupt_lora_files_are_named(repvideo_pipeline, tmp_path):
    missing = tmp_path / "nowhere" / "style.safetensors"
    with pytest.raises(FileNotFoundError, match="nowhere/style.safetensors"):
        repvideo_pipeline.load_lora_weights(str(missing))
    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes(b"not a safetensors file at all")
    with pytest.raises(ValueError, match=r"corrupt\.safetensors.*cannot be read as a LoRA"):
        repvideo_pipeline.load_lora_weights(str(corrupt))
    with pytest.raises(FileNotFoundError, match="nowhere"):
        with loras_applied(repvideo_pipeline, [(str(missing), 1.0)]):
            pass


@pytest.mark.parametrize("strength", [math.nan, math.inf, -math.inf, "1", True])
def test_non_finite_or_non_numeric_strengths_are_refused(repvideo_pipeline, tmp_path, strength):
    name, layer = _a_linear(repvideo_pipeline)
    path = _write(tmp_path / "ok.safetensors",
                  _lora_pair("transformer.", name, in_features=layer.in_features, out_features=layer.out_features))
    with pytest.raises(ValueError, match="must be a finite number"):
        with loras_applied(repvideo_pipeline, [(path, strength)]):
            pass
    repvideo_pipeline.load_lora_weights(path, adapter_name="ok")
    try:
        with pytest.raises(ValueError, match=r"adapter_weights=.* must be a finite number"):
            repvideo_pipeline.set_adapters("ok", strength)
        with pytest.raises(ValueError, match=r"lora_scale=.* must be a finite number"):
            repvideo_pipeline.fuse_lora(lora_scale=strength)
    finally:
        repvideo_pipeline.unload_lora_weights()
