"""Specification of FasterCache: the plan, the arithmetic, branch separation, skipped work, memory, removal."""

import dataclasses
import math

import pytest
import torch
from diffusers.models.cache_utils import CacheMixin
from torch import nn

from video_diffusion_pack import FasterCacheConfig, apply_faster_cache, remove_faster_cache, reset_faster_cache
from video_diffusion_pack.diffusers_pipelines.vchitect.tiny import (
    TINY_TEXT_PROMPT,
    build_tiny_vchitect_pipeline,
)
from video_diffusion_pack.hooks.faster_cache import (
    FASTER_CACHE_PRESETS,
    cfg_cache_residuals,
    faster_cache_applied,
    faster_cache_of,
    register_faster_cache_attention,
)

# 32x32 pixels -> 4x4 latent -> 2x2 patches; 3 frames
TINY_RUN = dict(prompt=TINY_TEXT_PROMPT, height=32, width=32, num_frames=3, output_type="latent")


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny models run fastest on one thread (two threads on two shared cores mostly wait on each other)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def pipe():
    pipe = build_tiny_vchitect_pipeline(seed=0, weights="random")
    pipe.set_progress_bar_config(disable=True)
    return pipe


def sample(pipe, steps=20, **kwargs):
    return pipe(**TINY_RUN, num_inference_steps=steps, generator=torch.Generator().manual_seed(0), **kwargs).frames


@pytest.fixture(scope="module")
def uncached(pipe):
    return sample(pipe)


# ------------------------------------------------------------------------------------------------ plan


def test_vchitect_preset_at_100_steps_is_the_official_schedule():
    plan = FasterCacheConfig.preset("vchitect-2.0").plan(100)
    counters = range(1, 101)  # the official loop counts steps from 1
    assert plan.attention_reuse == tuple(c > 30 and c % 2 == 0 for c in counters)
    assert plan.uncond_skip == tuple(c > 30 and c % 5 != 0 for c in counters)
    assert plan.residual_record == tuple(c >= 30 and c % 5 == 0 and c < 100 for c in counters)
    assert_official_residual_scales(plan, counters, 1.05, lambda c: c < 80, 1.1, lambda c: c > 60)


def test_cogvideox_preset_at_50_steps_is_the_official_sat_schedule():
    plan = FasterCacheConfig.preset("cogvideox").plan(50)
    counters = range(1, 51)
    assert plan.uncond_skip == tuple(c >= 18 and c % 5 != 0 for c in counters)
    # the SAT script, too, computes attention on its full steps after the start (its cache then holds one branch)
    assert plan.residual_record == tuple(c in (17, 20, 25, 30, 35, 40, 45) for c in counters)
    assert plan.attention_reuse == tuple(
        c >= 18 and c % 3 != 0 and not measured for c, measured in zip(counters, plan.residual_record))
    assert_official_residual_scales(plan, counters, 1.1, lambda c: c <= 40, 1.1, lambda c: c >= 30)


def test_few_steps_preset_at_20_steps_rebuilds_each_unconditional_step_from_a_residual_at_most_two_steps_old():
    plan = FasterCacheConfig.preset("few-steps").plan(20)
    skipped = (9, 10, 12, 13, 15, 16, 18, 19)  # from step 8 (40%), every step whose 1-based number is not 3k
    assert plan.uncond_skip == tuple(i in skipped for i in range(20))
    assert plan.residual_record == tuple(i in (8, 11, 14, 17) for i in range(20))
    # every other step from step 8, except the full steps whose residual feeds the skipped ones (11 and 17)
    assert plan.attention_reuse == tuple(i in (9, 13, 15, 19) for i in range(20))
    assert set(plan.low_frequency_scale) == set(plan.high_frequency_scale) == {1.0}


def test_attention_is_computed_where_the_cfg_residual_is_measured_unless_told_otherwise():
    config = FasterCacheConfig()
    exact, official_vchitect_way = config.plan(50), dataclasses.replace(
        config, recompute_attention_on_residual_steps=False).plan(50)
    assert any(exact.residual_record)
    assert not any(reuse and measured for reuse, measured in zip(exact.attention_reuse, exact.residual_record))
    assert any(reuse and measured for reuse, measured in zip(official_vchitect_way.attention_reuse,
                                                             official_vchitect_way.residual_record))


def test_without_unconditional_skipping_attention_follows_its_interval_alone():
    plan = FasterCacheConfig(start_fraction=0.3, attention_interval=2, uncond_interval=1).plan(20)
    assert plan.attention_reuse == tuple(i >= 6 and (i - 6) % 2 == 1 for i in range(20))
    assert not any(plan.uncond_skip)


def assert_official_residual_scales(plan, counters, low_factor, low_window, high_factor, high_window):
    """The official loops multiply the stored residuals in place on every skipped step inside each window."""
    low = high = 1.0
    for index, counter in enumerate(counters):
        if not plan.uncond_skip[index]:
            low = high = 1.0
            continue
        low *= low_factor if low_window(counter) else 1.0
        high *= high_factor if high_window(counter) else 1.0
        assert plan.low_frequency_scale[index] == pytest.approx(low, rel=1e-12)
        assert plan.high_frequency_scale[index] == pytest.approx(high, rel=1e-12)


@pytest.mark.parametrize("preset", sorted(FASTER_CACHE_PRESETS))
def test_plans_at_20_50_100_steps_land_on_the_same_fractions(preset):
    config = FasterCacheConfig.preset(preset)
    shares = []
    for steps in (20, 50, 100):
        plan = config.plan(steps)
        cached = [i for i in range(steps) if plan.attention_reuse[i] or plan.uncond_skip[i]]
        assert config.start_fraction <= cached[0] / steps < config.start_fraction + 2 / steps
        after_start = range(math.ceil(config.start_fraction * steps - 1e-9), steps)
        shares.append([sum(flags[i] for i in after_start) / len(after_start)
                       for flags in (plan.attention_reuse, plan.uncond_skip)])
        for i in range(1, steps):
            if not plan.uncond_skip[i]:
                continue
            previous_low = plan.low_frequency_scale[i - 1] if plan.uncond_skip[i - 1] else 1.0
            previous_high = plan.high_frequency_scale[i - 1] if plan.uncond_skip[i - 1] else 1.0
            in_low = i / steps < config.low_frequency_end_fraction
            in_high = i / steps >= config.high_frequency_start_fraction
            assert plan.low_frequency_scale[i] == pytest.approx(
                previous_low * (config.low_frequency_factor if in_low else 1.0))
            assert plan.high_frequency_scale[i] == pytest.approx(
                previous_high * (config.high_frequency_factor if in_high else 1.0))
    # the share of cached steps after the start hardly depends on the step count
    for share in shares[:2]:
        assert share == pytest.approx(shares[2], abs=0.1)


def test_attention_reuse_may_start_later_than_unconditional_skipping():
    plan = FasterCacheConfig(start_fraction=0.25, attention_start_fraction=0.5, attention_interval=2).plan(20)
    assert min(i for i in range(20) if plan.uncond_skip[i]) == 5
    assert min(i for i in range(20) if plan.attention_reuse[i]) == 11


def test_first_step_always_runs_everything():
    plan = FasterCacheConfig(start_fraction=0.0).plan(10)
    assert not plan.attention_reuse[0] and not plan.uncond_skip[0]
    assert any(plan.attention_reuse) and any(plan.uncond_skip)


# ------------------------------------------------------------------------------------------------ bad input


@pytest.mark.parametrize(
    "overrides, named",
    [
        (dict(attention_weight=-0.1), "attention_weight=-0.1"),
        (dict(start_fraction=1.0), "start_fraction=1.0"),
        (dict(start_fraction=-0.2), "start_fraction=-0.2"),
        (dict(attention_start_fraction=1.0), "attention_start_fraction=1.0"),
        (dict(attention_interval=0), "attention_interval=0"),
        (dict(uncond_interval=0), "uncond_interval=0"),
        (dict(attention_interval=1.5), "attention_interval=1.5"),
        (dict(low_frequency_factor=0.0), "low_frequency_factor=0.0"),
        (dict(high_frequency_start_fraction=1.5), "high_frequency_start_fraction=1.5"),
        (dict(radius_divisor=0), "radius_divisor=0"),
        (dict(cache_dtype="int8"), "cache_dtype='int8'"),
        (dict(recompute_attention_on_residual_steps=1), "recompute_attention_on_residual_steps=1"),
    ],
)
def test_bad_config_values_raise_errors_that_name_them(overrides, named):
    with pytest.raises(ValueError, match=named.replace(".", r"\.").replace("(", r"\(")):
        FasterCacheConfig(**overrides)


def test_unknown_preset_is_refused_with_the_known_ones():
    with pytest.raises(ValueError, match="preset='sora'.*cogvideox.*default.*vchitect-2.0"):
        FasterCacheConfig.preset("sora")


def test_preset_overrides_go_through_the_same_checks():
    assert FasterCacheConfig.preset("cogvideox", attention_weight=0.5).attention_weight == 0.5
    with pytest.raises(ValueError, match="uncond_interval=0"):
        FasterCacheConfig.preset("cogvideox", uncond_interval=0)


def test_diffusers_own_config_class_is_refused(pipe):
    from diffusers import FasterCacheConfig as DiffusersFasterCacheConfig

    with pytest.raises(TypeError, match="FasterCacheConfig"):
        apply_faster_cache(pipe, DiffusersFasterCacheConfig())


# ------------------------------------------------------------------------------------------------ arithmetic


class ToyAttention(nn.Module):
    """Returns its input: the cached 'attention output' of a step is exactly what the step fed in."""

    def forward(self, hidden_states):
        return hidden_states.clone()


class ToyDenoiser(nn.Module, CacheMixin):
    def __init__(self):
        super().__init__()
        self.layers = nn.ModuleList([nn.ModuleDict({"mixer": ToyAttention()})])

    def forward(self, hidden_states):
        return (self.layers[0]["mixer"](hidden_states),)


class ToyPipeline:
    """The least a pipeline offers FasterCache: a transformer, a scheduler (none here) and its step count."""

    def __init__(self, steps):
        self.transformer = ToyDenoiser()
        self.scheduler = None
        self._num_timesteps = steps


register_faster_cache_attention(ToyAttention)


def test_reused_attention_is_last_plus_w_times_last_minus_previous_computed_output():
    steps, weight = 12, 0.3
    toy = ToyPipeline(steps)
    config = FasterCacheConfig(start_fraction=0.25, attention_interval=3, attention_weight=weight, uncond_interval=1)
    plan = config.plan(steps)
    apply_faster_cache(toy, config)
    computed = []
    for step in range(steps):
        value = float(step**2)  # a curved trajectory, so extrapolation differs from reuse
        with toy.transformer.cache_context("cond"):
            (output,) = toy.transformer(torch.full((1, 4, 2, 2), value))
        if plan.attention_reuse[step]:
            last, previous = computed[-1], computed[-2]
            assert torch.allclose(output, torch.full_like(output, last + weight * (last - previous)))
        else:
            assert torch.equal(output, torch.full_like(output, value))
            computed.append(value)
    assert sum(plan.attention_reuse) == 6
    remove_faster_cache(toy)


def test_cfg_cache_residuals_equal_the_official_fft_formula():
    generator = torch.Generator().manual_seed(0)
    # [B*F, C, H, W] latents of the official scripts; odd sizes; the Vchitect radius rule (r = 0: only DC)
    for shape, divisor in (((6, 4, 16, 24), 5), ((3, 2, 15, 17), 5), ((4, 4, 54, 96), 200)):
        cond_full, uncond_full, cond_now = (torch.randn(shape, generator=generator) for _ in range(3))
        low_factor, high_factor, low_skips, high_skips = 1.05, 1.1, 3, 2
        expected = official_uncond_estimate(
            cond_full, uncond_full, cond_now, divisor, [low_factor] * low_skips, [high_factor] * high_skips
        )
        low, high = cfg_cache_residuals(uncond_full - cond_full, divisor)
        ours = cond_now + low_factor**low_skips * low + high_factor**high_skips * high
        torch.testing.assert_close(ours, expected, atol=1e-5, rtol=0)


def official_uncond_estimate(cond_full, uncond_full, cond_now, divisor, low_factors, high_factors):
    """The official CFG-Cache: shifted 2D spectra split by a centred disc, deltas scaled in place per skip."""

    def split(x):
        spectrum = torch.fft.fftshift(torch.fft.fft2(x.double()))
        height, width = x.shape[-2:]
        radius = min(height, width) // divisor
        y, x_ = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
        mask = (x_ - width // 2) ** 2 + (y - height // 2) ** 2 <= radius**2
        return spectrum * mask, spectrum * ~mask

    low_u, high_u = split(uncond_full)
    low_c, high_c = split(cond_full)
    delta_low, delta_high = low_u - low_c, high_u - high_c
    for factor in low_factors:
        delta_low *= factor
    for factor in high_factors:
        delta_high *= factor
    low_now, high_now = split(cond_now)
    combined = torch.fft.ifftshift(low_now + delta_low + high_now + delta_high)
    return torch.fft.ifft2(combined).real.float()


# ------------------------------------------------------------------------------------------------ pipelines


def test_separate_and_batched_guidance_calls_give_the_same_cached_result(pipe, uncached):
    with faster_cache_applied(pipe, FasterCacheConfig.preset("cogvideox")):
        batched = sample(pipe)
        separate = sample(pipe, cfg_batching=False)
    assert not torch.allclose(batched, uncached, atol=1e-3), "the cache changed nothing"
    torch.testing.assert_close(separate, batched, atol=1e-4, rtol=1e-4)


def test_removing_the_cache_restores_bit_identical_outputs(pipe, uncached):
    apply_faster_cache(pipe, FasterCacheConfig.preset("vchitect-2.0"))
    sample(pipe)
    remove_faster_cache(pipe)
    assert faster_cache_of(pipe) is None
    assert torch.equal(sample(pipe), uncached)


def test_a_plan_that_skips_nothing_changes_nothing(pipe, uncached):
    with faster_cache_applied(pipe, FasterCacheConfig(attention_interval=1, uncond_interval=1)):
        assert torch.equal(sample(pipe), uncached)


class WorkCounter:
    """Rows (samples x frames) that really went through the transformer and through each attention module."""

    def __init__(self, transformer):
        self.transformer_rows = 0
        self.attention_rows = [0] * len(transformer.transformer_blocks)
        self.handles = [transformer.pos_embed.register_forward_hook(self._count_transformer)]
        for index, block in enumerate(transformer.transformer_blocks):
            # to_out[0] runs inside the attention's own forward only, never when FasterCache reuses its output
            self.handles.append(block.attn.to_out[0].register_forward_hook(self._attention_counter(index)))

    def _count_transformer(self, module, args, output):
        self.transformer_rows += args[0].shape[0]

    def _attention_counter(self, index):
        def count(module, args, output):
            self.attention_rows[index] += args[0].shape[0]

        return count

    def remove(self):
        for handle in self.handles:
            handle.remove()


@pytest.mark.parametrize("cfg_batching", [True, False])
def test_skipped_steps_skip_the_transformer_and_attention_work(pipe, cfg_batching):
    steps, frames = 20, TINY_RUN["num_frames"]
    config = FasterCacheConfig.preset("vchitect-2.0")
    plan = config.plan(steps)
    counter = WorkCounter(pipe.transformer)
    try:
        with faster_cache_applied(pipe, config):
            sample(pipe, steps=steps, cfg_batching=cfg_batching)
    finally:
        counter.remove()
    full_steps = steps - sum(plan.uncond_skip)
    assert counter.transformer_rows == frames * (steps + full_steps)
    # the conditional branch runs attention unless it reuses; the unconditional one whenever it runs
    attention_runs = sum(not reuse for reuse in plan.attention_reuse) + full_steps
    assert counter.attention_rows == [frames * attention_runs] * len(counter.attention_rows)
    assert attention_runs < 2 * steps


def bound_elements(pipe, frames, branch_batch=1):
    """Documented bound: s * sum_m A_m + 2 R for the tiny transformer (all counted for one branch)."""
    config = pipe.transformer.config
    tokens = (TINY_RUN["height"] // 16) * (TINY_RUN["width"] // 16)
    text_tokens = pipe.max_sequence_length_t5 + pipe.tokenizer_max_length
    width = config.num_attention_heads * config.attention_head_dim
    rows = branch_batch * frames
    per_module = [rows * tokens * width + (0 if block.context_pre_only else rows * text_tokens * width)
                  for block in pipe.transformer.transformer_blocks]
    residual = rows * config.out_channels * (TINY_RUN["height"] // 8) * (TINY_RUN["width"] // 8)
    return sum(per_module), residual


@pytest.mark.parametrize("preset, slots", [("vchitect-2.0", 1), ("cogvideox", 2)])
def test_cache_holds_clones_of_one_branch_within_the_documented_bound(pipe, preset, slots):
    attention, residual = bound_elements(pipe, TINY_RUN["num_frames"])
    with faster_cache_applied(pipe, FasterCacheConfig.preset(preset)) as cache:
        sample(pipe)
        assert cache.peak_cache_bytes == 4 * (slots * attention + 2 * residual)
        assert cache.cache_bytes() == 0, "the cache is freed after its last use"


def test_lower_cache_precision_halves_the_cache(pipe):
    attention, residual = bound_elements(pipe, TINY_RUN["num_frames"])
    with faster_cache_applied(pipe, FasterCacheConfig.preset("cogvideox", cache_dtype="bf16")) as cache:
        sample(pipe)
        assert cache.peak_cache_bytes == 2 * (2 * attention + 2 * residual)


def test_state_resets_at_every_pipeline_call_even_after_an_interrupted_run(pipe):
    def interrupt_at_step_12(pipeline, step, timestep, tensors):
        if step == 12:
            raise KeyboardInterrupt
        return tensors

    with faster_cache_applied(pipe, FasterCacheConfig.preset("cogvideox")):
        first = sample(pipe)
        with pytest.raises(KeyboardInterrupt):
            sample(pipe, callback_on_step_end=interrupt_at_step_12)
        assert torch.equal(sample(pipe), first)


def test_reset_faster_cache_starts_a_new_trajectory_and_is_a_no_op_without_the_cache(pipe):
    assert reset_faster_cache(pipe) is False
    with faster_cache_applied(pipe, FasterCacheConfig.preset("vchitect-2.0")) as cache:
        sample(pipe, steps=6)
        cache.plan, cache.step = cache.config.plan(6), 5  # as if a run had been left at its last step
        assert reset_faster_cache(pipe) is True
        assert cache.plan is None and cache.step == -1 and cache.cache_bytes() == 0


def test_free_init_iterations_of_different_lengths_each_get_their_own_plan(pipe):
    from video_diffusion_pack.hooks.free_init import FreeInitConfig, free_init_applied

    config = FreeInitConfig(num_iters=2, use_fast_sampling=True)
    with free_init_applied(pipe, config), faster_cache_applied(pipe, FasterCacheConfig.preset("vchitect-2.0")) as cache:
        latents = sample(pipe, steps=10)
        assert cache.peak_cache_bytes > 0
    assert torch.isfinite(latents).all()


def test_separate_calls_must_put_the_conditional_branch_first():
    toy = ToyPipeline(steps=10)
    apply_faster_cache(toy, FasterCacheConfig(start_fraction=0.3))
    latent = torch.randn(1, 4, 8, 8)
    with pytest.raises(RuntimeError, match="conditional call must come first"):
        for _ in range(10):
            for branch in ("uncond", "cond"):
                with toy.transformer.cache_context(branch):
                    toy.transformer(latent)
    remove_faster_cache(toy)


def run_toy_trajectory(toy, steps, latents, stop_after=None):
    """One trajectory through the toy denoiser, each call naming its step as the pack's pipelines do."""
    outputs = []
    for i in range(steps if stop_after is None else stop_after):
        with toy.transformer.cache_context("cond", step_index=i, num_inference_steps=steps):
            outputs.append(toy.transformer(latents[i])[0])
    return outputs


def test_a_pipeline_that_passes_its_step_needs_no_step_count_and_restarts_at_step_0():
    toy = ToyPipeline(steps=None)  # no _num_timesteps and no scheduler: only cache_context tells the position
    config = FasterCacheConfig(start_fraction=0.0, attention_interval=3, attention_weight=0.5)
    latents = torch.randn(8, 1, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    cache = apply_faster_cache(toy, config)
    fresh = run_toy_trajectory(toy, 8, latents)
    assert cache.plan == config.plan(8) and cache.step == 7
    run_toy_trajectory(toy, 8, latents, stop_after=5)  # a run that stopped midway
    again = run_toy_trajectory(toy, 8, latents)
    run_toy_trajectory(toy, 4, latents)
    assert cache.plan == config.plan(4) and cache.step == 3
    remove_faster_cache(toy)
    assert any(not torch.equal(out, latent) for out, latent in zip(fresh, latents)), "nothing was reused"
    assert all(torch.equal(a, b) for a, b in zip(again, fresh))


def test_a_negative_step_index_is_refused_by_name():
    toy = ToyPipeline(steps=4)
    apply_faster_cache(toy, FasterCacheConfig())
    with pytest.raises(ValueError, match=r"step_index=-1"):
        with toy.transformer.cache_context("cond", step_index=-1, num_inference_steps=4):
            toy.transformer(torch.randn(1, 4, 8, 8))
    remove_faster_cache(toy)


def unpatched_scheduler_probe(pipe, seen):
    """A step-end callback recording whether the scheduler's set_timesteps and step are its class's own functions."""
    scheduler_class = type(pipe.scheduler)

    def probe(pipeline, step, timestep, tensors):
        seen.append(all(
            name not in vars(pipeline.scheduler) and getattr(pipeline.scheduler, name).__func__ is getattr(
                scheduler_class, name)
            for name in ("set_timesteps", "step")
        ))
        return tensors

    return probe


@pytest.mark.parametrize("cfg_batching", [True, False], ids=["batched", "separate"])
def test_the_vchitect_pipeline_passes_its_step_and_no_scheduler_method_is_patched(pipe, cfg_batching):
    seen = []
    with faster_cache_applied(pipe, FasterCacheConfig.preset("vchitect-2.0")) as cache:
        sample(pipe, steps=10, cfg_batching=cfg_batching, callback_on_step_end=unpatched_scheduler_probe(pipe, seen))
        assert cache.peak_cache_bytes > 0
    assert seen == [True] * 10


def test_faster_cache_resets_through_free_init_iteration_resets():
    from video_diffusion_pack.hooks.free_init import (
        ITERATION_RESET_CALLBACKS_ATTRIBUTE,
        reset_caches_between_iterations,
    )

    toy = ToyPipeline(steps=6)  # no components: only a registered callback can reach its cache
    cache = apply_faster_cache(toy, FasterCacheConfig())
    assert getattr(toy, ITERATION_RESET_CALLBACKS_ATTRIBUTE) == [reset_faster_cache]
    run_toy_trajectory(toy, 6, torch.randn(6, 1, 4, 8, 8), stop_after=3)
    assert cache.plan is not None and cache.step == 2
    reset_caches_between_iterations(toy)
    assert cache.plan is None and cache.step == -1
    remove_faster_cache(toy)
    assert getattr(toy, ITERATION_RESET_CALLBACKS_ATTRIBUTE) == []


def test_faster_cache_applied_restores_the_previous_state_when_the_block_fails(pipe):
    earlier = FasterCacheConfig.preset("cogvideox")
    apply_faster_cache(pipe, earlier)
    with pytest.raises(RuntimeError, match="failed inside"):
        with faster_cache_applied(pipe, FasterCacheConfig.preset("vchitect-2.0")) as cache:
            assert faster_cache_of(pipe) is cache
            raise RuntimeError("failed inside")
    assert faster_cache_of(pipe).config == earlier
    remove_faster_cache(pipe)
    assert faster_cache_of(pipe) is None


def test_applying_twice_is_refused(pipe):
    with faster_cache_applied(pipe, FasterCacheConfig()):
        with pytest.raises(ValueError, match="already applied"):
            apply_faster_cache(pipe, FasterCacheConfig())


# ------------------------------------------------------------------------------------------------ diffusers


def tiny_cogvideox_transformer(in_channels=4):
    from diffusers import CogVideoXTransformer3DModel

    with torch.random.fork_rng():
        torch.manual_seed(0)
        return CogVideoXTransformer3DModel(
            num_attention_heads=2, attention_head_dim=8, in_channels=in_channels, out_channels=4, time_embed_dim=8,
            text_embed_dim=16, num_layers=2, sample_width=8, sample_height=8, sample_frames=9, patch_size=2,
            temporal_compression_ratio=4, max_text_seq_length=8,
        ).eval()


def cogvideox_scheduler():
    from diffusers import CogVideoXDPMScheduler

    # the scheduler config of THUDM/CogVideoX-5b
    return CogVideoXDPMScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
        prediction_type="v_prediction", rescale_betas_zero_snr=True, set_alpha_to_one=True, snr_shift_scale=1.0,
        steps_offset=0, timestep_spacing="trailing",
    )


def cogvideox_prompts():
    generator = torch.Generator().manual_seed(1)
    return dict(prompt_embeds=torch.randn(1, 8, 16, generator=generator),
                negative_prompt_embeds=torch.randn(1, 8, 16, generator=generator))


def test_cogvideox_pipeline_caches_every_joint_attention_and_skips_work():
    from diffusers import CogVideoXPipeline

    pipe = CogVideoXPipeline(tokenizer=None, text_encoder=None, vae=None, transformer=tiny_cogvideox_transformer(),
                             scheduler=cogvideox_scheduler())
    pipe.set_progress_bar_config(disable=True)
    run = dict(**cogvideox_prompts(), height=64, width=64, num_frames=9, num_inference_steps=20, output_type="latent")

    def generate():
        return pipe(**run, generator=torch.Generator().manual_seed(0)).frames

    uncached = generate()
    calls = []
    handles = [block.attn1.to_q.register_forward_hook(lambda m, a, o: calls.append(a[0].shape[0]))
               for block in pipe.transformer.transformer_blocks]
    config = FasterCacheConfig.preset("cogvideox")
    cache = apply_faster_cache(pipe, config)
    hooked = [name for name, module in pipe.transformer.named_modules()
              if hasattr(module, "_diffusers_hook") and "vdp_faster_cache_attention" in module._diffusers_hook.hooks]
    assert hooked == ["transformer_blocks.0.attn1", "transformer_blocks.1.attn1"]
    cached = generate()
    for handle in handles:
        handle.remove()
    plan = config.plan(20)
    full_steps = 20 - sum(plan.uncond_skip)
    assert sum(calls) == 2 * (sum(not reuse for reuse in plan.attention_reuse) + full_steps)
    assert cache.peak_cache_bytes > 0
    relative_error = ((cached - uncached).norm() / uncached.norm()).item()
    assert 0 < relative_error < 0.5
    remove_faster_cache(pipe)
    assert torch.equal(generate(), uncached)


def test_cogvideox_image_to_video_pipeline_runs_with_the_cache():
    from diffusers import AutoencoderKLCogVideoX, CogVideoXImageToVideoPipeline
    from PIL import Image

    with torch.random.fork_rng():
        torch.manual_seed(0)
        vae = AutoencoderKLCogVideoX(
            in_channels=3, out_channels=3, down_block_types=("CogVideoXDownBlock3D",) * 4,
            up_block_types=("CogVideoXUpBlock3D",) * 4, block_out_channels=(8, 8, 8, 8), latent_channels=4,
            layers_per_block=1, norm_num_groups=2, temporal_compression_ratio=4,
        ).eval()
    pipe = CogVideoXImageToVideoPipeline(tokenizer=None, text_encoder=None, vae=vae,
                                         transformer=tiny_cogvideox_transformer(in_channels=8),
                                         scheduler=cogvideox_scheduler())
    pipe.set_progress_bar_config(disable=True)
    image = Image.new("RGB", (64, 64), (200, 80, 40))
    run = dict(image=image, **cogvideox_prompts(), height=64, width=64, num_frames=9, num_inference_steps=10,
               output_type="latent")
    uncached = pipe(**run, generator=torch.Generator().manual_seed(0)).frames
    with faster_cache_applied(pipe, FasterCacheConfig.preset("cogvideox")) as cache:
        cached = pipe(**run, generator=torch.Generator().manual_seed(0)).frames
        assert cache.peak_cache_bytes > 0
    assert cached.shape == uncached.shape and torch.isfinite(cached).all()
    assert not torch.equal(cached, uncached)


def test_das_pipeline_caches_its_main_and_tracking_attention():
    from diffusers.models.attention_processor import Attention

    from video_diffusion_pack.diffusers_pipelines.das.tiny import (
        TINY_DAS_PROMPT,
        TINY_HEIGHT,
        TINY_NUM_FRAMES,
        TINY_WIDTH,
        build_tiny_das_pipeline,
    )

    pipe = build_tiny_das_pipeline(weights="random")
    pipe.set_progress_bar_config(disable=True)
    video = torch.rand(TINY_NUM_FRAMES, TINY_HEIGHT, TINY_WIDTH, 3, generator=torch.Generator().manual_seed(5))
    run = dict(image=video[0].permute(2, 0, 1)[None], prompt=TINY_DAS_PROMPT, tracking_video=video,
               num_inference_steps=10, height=TINY_HEIGHT, width=TINY_WIDTH, num_frames=TINY_NUM_FRAMES,
               output_type="latent")

    def generate():
        return pipe(**run, generator=torch.Generator().manual_seed(0)).frames

    uncached = generate()
    cache = apply_faster_cache(pipe, FasterCacheConfig.preset("cogvideox"))
    attention = [module for module in pipe.transformer.modules() if isinstance(module, Attention)]
    hooked = [module for module in attention if "vdp_faster_cache_attention" in module._diffusers_hook.hooks]
    assert len(hooked) == len(attention) > len(pipe.transformer.transformer_blocks)
    cached = generate()
    assert cache.peak_cache_bytes > 0 and torch.isfinite(cached).all() and not torch.equal(cached, uncached)
    remove_faster_cache(pipe)
    assert torch.equal(generate(), uncached)


def test_the_das_pipeline_passes_its_step_and_no_scheduler_method_is_patched():
    from video_diffusion_pack.diffusers_pipelines.das.tiny import (
        TINY_DAS_PROMPT,
        TINY_HEIGHT,
        TINY_NUM_FRAMES,
        TINY_WIDTH,
        build_tiny_das_pipeline,
    )

    pipe = build_tiny_das_pipeline(weights="random")
    pipe.set_progress_bar_config(disable=True)
    video = torch.rand(TINY_NUM_FRAMES, TINY_HEIGHT, TINY_WIDTH, 3, generator=torch.Generator().manual_seed(5))
    seen = []
    with faster_cache_applied(pipe, FasterCacheConfig.preset("cogvideox")) as cache:
        pipe(image=video[0].permute(2, 0, 1)[None], prompt=TINY_DAS_PROMPT, tracking_video=video,
             num_inference_steps=6, height=TINY_HEIGHT, width=TINY_WIDTH, num_frames=TINY_NUM_FRAMES,
             output_type="latent", generator=torch.Generator().manual_seed(0),
             callback_on_step_end=unpatched_scheduler_probe(pipe, seen))
        assert cache.peak_cache_bytes > 0
    assert seen == [True] * 6


def test_cogvideox_pipeline_run_stopped_midway_does_not_leak_into_the_next_and_its_scheduler_is_untouched():
    from diffusers import CogVideoXPipeline

    pipe = CogVideoXPipeline(tokenizer=None, text_encoder=None, vae=None, transformer=tiny_cogvideox_transformer(),
                             scheduler=cogvideox_scheduler())
    pipe.set_progress_bar_config(disable=True)
    run = dict(**cogvideox_prompts(), height=64, width=64, num_frames=9, num_inference_steps=10, output_type="latent")

    def stop_at_step_6(pipeline, step, timestep, tensors):
        if step == 6:
            raise KeyboardInterrupt
        return tensors

    seen = []
    with faster_cache_applied(pipe, FasterCacheConfig.preset("cogvideox")):
        first = pipe(**run, generator=torch.Generator().manual_seed(0),
                     callback_on_step_end=unpatched_scheduler_probe(pipe, seen)).frames
        with pytest.raises(KeyboardInterrupt):
            pipe(**run, generator=torch.Generator().manual_seed(0), callback_on_step_end=stop_at_step_6)
        assert torch.equal(pipe(**run, generator=torch.Generator().manual_seed(0)).frames, first)
    assert seen == [True] * 10
