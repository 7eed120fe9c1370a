"""CogVideoXRepVideoPipeline on the tiny model: official defaults, input checks, switch, save/load, FasterCache, FreeInit."""

import inspect
import json

import pytest
import torch
from diffusers import CogVideoXDPMScheduler, CogVideoXPipeline, CogVideoXTransformer3DModel, DiffusionPipeline

from video_diffusion_pack import (
    CogVideoXRepVideoPipeline,
    CogVideoXRepVideoTransformer3DModel,
    build_tiny_cogvideox_repvideo_pipeline,
)
from video_diffusion_pack.diffusers_pipelines.repvideo import OFFICIAL_FPS
from video_diffusion_pack.diffusers_pipelines.repvideo.tiny import TINY_REPVIDEO_PROMPT
from video_diffusion_pack.hooks.faster_cache import FasterCacheConfig, apply_faster_cache, remove_faster_cache
from video_diffusion_pack.hooks.free_init import FreeInitConfig, apply_free_init, remove_free_init

SIZE = dict(height=32, width=32, num_frames=9, max_sequence_length=16)


@pytest.fixture(scope="module")
def pipe():
    pipeline = build_tiny_cogvideox_repvideo_pipeline(seed=0)
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


def run(pipeline, steps=3, seed=0, **overrides):
    arguments = dict(prompt=TINY_REPVIDEO_PROMPT, num_inference_steps=steps, output_type="latent", **SIZE)
    arguments.update(overrides)
    return pipeline(**arguments, generator=torch.Generator().manual_seed(seed)).frames


def test_defaults_are_the_official_inference_settings(pipe):
    parameters = inspect.signature(CogVideoXRepVideoPipeline.__call__).parameters
    defaults = {name: parameters[name].default for name in
                ("height", "width", "num_frames", "num_inference_steps", "guidance_scale", "use_dynamic_cfg")}
    assert defaults == dict(height=480, width=720, num_frames=49, num_inference_steps=50, guidance_scale=6.0,
                            use_dynamic_cfg=True)
    assert OFFICIAL_FPS == 8
    scheduler = pipe.scheduler
    assert isinstance(scheduler, CogVideoXDPMScheduler)
    assert (scheduler.config.snr_shift_scale, scheduler.config.prediction_type, scheduler.config.timestep_spacing,
            scheduler.config.rescale_betas_zero_snr) == (3.0, "v_prediction", "trailing", True)


def test_generates_frames_of_the_requested_shape_deterministically(pipe):
    frames = pipe(prompt=TINY_REPVIDEO_PROMPT, num_inference_steps=2, generator=torch.Generator().manual_seed(1),
                  **SIZE).frames
    again = pipe(prompt=TINY_REPVIDEO_PROMPT, num_inference_steps=2, generator=torch.Generator().manual_seed(1),
                 **SIZE).frames
    assert frames.shape == (1, 9, 32, 32, 3) and frames.min() >= 0 and frames.max() <= 1
    assert (frames == again).all()


def test_num_videos_per_prompt_gives_that_many_videos_per_prompt(pipe):
    latents = run(pipe, steps=2, prompt=["a cat", "a dog"], num_videos_per_prompt=2, negative_prompt="blurry")
    assert latents.shape == (4, 3, 4, 4, 4)
    assert not torch.equal(latents[0], latents[1])


def test_disabled_aggregation_equals_the_stock_cogvideox_pipeline_bit_for_bit():
    pipeline = build_tiny_cogvideox_repvideo_pipeline(seed=0)
    pipeline.set_progress_bar_config(disable=True)
    with_aggregation = run(pipeline)
    pipeline.disable_repvideo()
    without = run(pipeline)
    stock_transformer = CogVideoXTransformer3DModel.from_config(
        {k: v for k, v in pipeline.transformer.config.items() if not k.startswith("repvideo")}
    )
    # the same tensors (same addresses, so the same CPU kernels) in a stock diffusers transformer
    stock_transformer.load_state_dict(pipeline.transformer.state_dict(), strict=True, assign=True)
    stock = CogVideoXPipeline(pipeline.tokenizer, pipeline.text_encoder, pipeline.vae, stock_transformer.eval(),
                              pipeline.scheduler)
    stock.set_progress_bar_config(disable=True)
    # diffusers' defaults differ from the official ones: give the stock pipeline ours
    assert torch.equal(without, run(stock, guidance_scale=6.0, use_dynamic_cfg=True))
    assert not torch.allclose(with_aggregation, without)
    pipeline.enable_repvideo()
    assert pipeline.transformer.repvideo is not None and pipeline.transformer.config.repvideo_aggregation


def test_stock_transformer_is_refused_with_the_way_to_wrap_it(pipe):
    stock = CogVideoXTransformer3DModel.from_config(
        {k: v for k, v in pipe.transformer.config.items() if not k.startswith("repvideo")}
    )
    with pytest.raises(TypeError, match="from_cogvideox"):
        CogVideoXRepVideoPipeline(pipe.tokenizer, pipe.text_encoder, pipe.vae, stock, pipe.scheduler)


def test_save_and_load_round_trip_is_exact(pipe, tmp_path):
    pipe.save_pretrained(tmp_path)
    index = json.loads((tmp_path / "model_index.json").read_text())
    assert index["_class_name"] == "CogVideoXRepVideoPipeline"
    assert index["transformer"][1] == "CogVideoXRepVideoTransformer3DModel"
    for loaded in (CogVideoXRepVideoPipeline.from_pretrained(tmp_path), DiffusionPipeline.from_pretrained(tmp_path)):
        assert isinstance(loaded, CogVideoXRepVideoPipeline)
        assert isinstance(loaded.transformer, CogVideoXRepVideoTransformer3DModel)
        assert isinstance(loaded.scheduler, CogVideoXDPMScheduler)
        assert dict(loaded.scheduler.config) == dict(pipe.scheduler.config)
        for name in ("transformer", "vae", "text_encoder"):
            ours, theirs = getattr(pipe, name).state_dict(), getattr(loaded, name).state_dict()
            assert ours.keys() == theirs.keys() and all(torch.equal(ours[key], theirs[key]) for key in ours), name
        assert loaded.tokenizer(TINY_REPVIDEO_PROMPT).input_ids == pipe.tokenizer(TINY_REPVIDEO_PROMPT).input_ids


@pytest.mark.parametrize("change, message", [
    (dict(height=40), "height=40 must be a positive multiple of 16"),
    (dict(width=0), "width=0 must be a positive multiple of 16"),
    (dict(num_frames=10), "num_frames=10 must be 1 + a multiple of 4"),
    (dict(num_inference_steps=0), "num_inference_steps=0 must be an integer >= 1"),
    (dict(num_videos_per_prompt=0), "num_videos_per_prompt=0 must be an integer >= 1"),
    (dict(guidance_scale=float("nan")), "guidance_scale=nan must be a finite number"),
    (dict(output_type="gif"), "output_type='gif' must be one of"),
    (dict(max_sequence_length=226), "max_sequence_length=226 must equal the transformer's max_text_seq_length=16"),
    (dict(prompt=None), "prompt=None must be a string or a non-empty list of strings"),
    (dict(negative_prompt=["a", "b"]), "negative_prompt has 2 entries for 1 prompts"),
    (dict(latents=torch.zeros(1, 2, 4, 4, 4)), "latents has shape (1, 2, 4, 4, 4); expected (1, 3, 4, 4, 4)"),
    (dict(callback_on_step_end_tensor_inputs=["noise"]), "callback_on_step_end_tensor_inputs=['noise'] not allowed"),
])
def test_bad_input_is_refused_before_any_model_runs(pipe, change, message):
    arguments = dict(prompt=TINY_REPVIDEO_PROMPT, num_inference_steps=1, **SIZE)
    arguments.update(change)
    calls = []
    hooks = [module.register_forward_pre_hook(lambda *args: calls.append(1)) for module in (pipe.text_encoder, pipe.transformer)]
    try:
        with pytest.raises(ValueError) as error:
            pipe(**arguments)
    finally:
        for hook in hooks:
            hook.remove()
    assert message in str(error.value)
    assert calls == []


def test_composes_with_faster_cache_and_removing_it_restores_the_output():
    pipeline = build_tiny_cogvideox_repvideo_pipeline(seed=0)
    pipeline.set_progress_bar_config(disable=True)
    uncached = run(pipeline, steps=12)
    calls = []
    handles = [block.attn1.to_q.register_forward_hook(lambda m, a, o: calls.append(a[0].shape[0]))
               for block in pipeline.transformer.transformer_blocks]
    config = FasterCacheConfig.preset("cogvideox")
    apply_faster_cache(pipeline, config)
    cached = run(pipeline, steps=12)
    for handle in handles:
        handle.remove()
    plan = config.plan(12)
    assert sum(plan.attention_reuse) > 0 and sum(plan.uncond_skip) > 0
    # fewer attention calls than the 12 steps x 7 blocks x 2 branches of the uncached run
    assert sum(calls) < 2 * 12 * len(pipeline.transformer.transformer_blocks)
    # random tiny weights extrapolate poorly; the cached run still stays nearer than a sample of another seed
    relative_error = ((cached - uncached).norm() / uncached.norm()).item()
    other_seed = ((run(pipeline, steps=12, seed=1) - uncached).norm() / uncached.norm()).item()
    assert 0 < relative_error < other_seed
    remove_faster_cache(pipeline)
    assert torch.equal(run(pipeline, steps=12), uncached)


def test_composes_with_free_init():
    pipeline = build_tiny_cogvideox_repvideo_pipeline(seed=0)
    pipeline.set_progress_bar_config(disable=True)
    single = run(pipeline, steps=2)
    apply_free_init(pipeline, FreeInitConfig(num_iters=2))
    twice = run(pipeline, steps=2)
    assert twice.shape == single.shape and not torch.allclose(twice, single)
    remove_free_init(pipeline)
    assert torch.equal(run(pipeline, steps=2), single)
