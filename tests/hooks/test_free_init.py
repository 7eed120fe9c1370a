"""Specification of FreeInit (hooks/free_init.py): filters, frequency mixing, re-noising, and the sampling loop on
the pack's Vchitect-2.0 pipeline and on diffusers' AnimateDiff and CogVideoX pipelines."""

import io
import json
import math

import pytest
import torch
from diffusers import DDIMScheduler, DDPMPipeline, FlowMatchEulerDiscreteScheduler, UNet2DModel
from diffusers.pipelines.free_init_utils import FreeInitMixin
from diffusers.utils.torch_utils import randn_tensor
from helpers.tiny_diffusers_video import (
    COGVIDEOX_TEXT_TOKENS,
    build_tiny_animatediff_pipeline,
    build_tiny_cogvideox_pipeline,
)

from video_diffusion_pack import FreeInitConfig, apply_free_init, free_init_applied, remove_free_init
from video_diffusion_pack.diffusers_pipelines.vchitect import VchitectRepVideoPipeline
from video_diffusion_pack.diffusers_pipelines.vchitect.tiny import (
    TINY_TEXT_PROMPT,
    build_tiny_vchitect_pipeline,
)
from video_diffusion_pack.hooks.free_init import (
    REFERENCE_SIGNAL_TO_NOISE,
    build_frequency_filter,
    default_renoise_level,
    driver,
    free_init_config_of,
    frequency_filter,
    mix_frequencies,
    register_iteration_reset,
    renoise,
    schedule_kind,
    unregister_iteration_reset,
)


def seeded(seed=0):
    return torch.Generator().manual_seed(seed)


# ---------------------------------------------------------------------------------------------- official formulas
def official_filter(shape, method, order, d_s, d_t):
    """The official get_freq_filter, written out per voxel from its formulas (shape = (T, H, W))."""
    frames, height, width = shape
    values = torch.zeros(shape)
    if method == "box":
        half_s, half_t = round(int(height // 2) * d_s), round(frames // 2 * d_t)
        ct, ch, cw = frames // 2, height // 2, width // 2
        values[ct - half_t:ct + half_t, ch - half_s:ch + half_s, cw - half_s:cw + half_s] = 1.0
        return values
    for t in range(frames):
        for h in range(height):
            for w in range(width):
                d_square = ((d_s / d_t) * (2 * t / frames - 1)) ** 2 + (2 * h / height - 1) ** 2 + (2 * w / width - 1) ** 2
                if method == "gaussian":
                    values[t, h, w] = math.exp(-1 / (2 * d_s**2) * d_square)
                elif method == "butterworth":
                    values[t, h, w] = 1 / (1 + (d_square / d_s**2) ** order)
                else:  # the paper's ideal filter: radius d_s
                    values[t, h, w] = 1.0 if d_square <= d_s**2 else 0.0
    return values


def official_freq_mix_3d(x, noise, low_pass):
    """The official freq_mix_3d formula: shift both spectra, mix with the centred filter, shift back."""
    dims = (-3, -2, -1)
    x_freq = torch.fft.fftshift(torch.fft.fftn(x, dim=dims), dim=dims)
    noise_freq = torch.fft.fftshift(torch.fft.fftn(noise, dim=dims), dim=dims)
    mixed = x_freq * low_pass + noise_freq * (1 - low_pass)
    return torch.fft.ifftn(torch.fft.ifftshift(mixed, dim=dims), dim=dims).real


# ---------------------------------------------------------------------------------------------- filters
@pytest.mark.parametrize("method", ["gaussian", "butterworth", "ideal", "box"])
@pytest.mark.parametrize(
    "shape, order, d_s, d_t",
    [((16, 8, 8), 4, 0.25, 0.25), ((13, 12, 18), 2, 0.4, 0.7), ((5, 9, 7), 6, 1.0, 0.1), ((1, 4, 6), 1, 0.3, 1.0)],
)
def test_filter_values_equal_the_official_formulas(method, shape, order, d_s, d_t):
    assert torch.equal(build_frequency_filter(shape, method, order, d_s, d_t), official_filter(shape, method, order, d_s, d_t))


@pytest.mark.parametrize("method", ["gaussian", "butterworth"])
def test_filter_values_equal_diffusers_free_init_mixin(method):
    shape = (1, 4, 13, 12, 18)
    theirs = FreeInitMixin()._get_free_init_freq_filter(shape, "cpu", method, 4, 0.25, 0.4)

    ours = build_frequency_filter(shape[2:], method, 4, 0.25, 0.4)

    assert torch.equal(ours.expand(shape), theirs)


def test_ideal_filter_has_the_paper_radius_where_diffusers_tests_d_s_times_2():
    shape = (1, 4, 13, 12, 18)
    # diffusers keeps d^2 <= 2 * 0.125 = 0.25, i.e. the paper's radius 0.5 with the same d_s / d_t ratio
    theirs = FreeInitMixin()._get_free_init_freq_filter(shape, "cpu", "ideal", 4, 0.125, 0.25)

    assert torch.equal(build_frequency_filter(shape[2:], "ideal", 4, 0.5, 1.0).expand(shape), theirs)
    assert not torch.equal(build_frequency_filter(shape[2:], "ideal", 4, 0.125, 0.25).expand(shape), theirs)


def test_box_filter_starts_at_zero_where_the_official_slice_would_wrap_around():
    # H // 2 * d_s = 8 rows and columns on either side of the centre, but the width is only 6
    box = build_frequency_filter((4, 16, 6), "box", 4, 1.0, 1.0)

    assert box[:, :, :].sum() == 4 * 16 * 6
    assert official_filter((4, 16, 6), "box", 4, 1.0, 1.0).sum() < box.sum()


def test_filters_are_cached_by_shape_parameters_and_device():
    first = frequency_filter((8, 6, 6), "gaussian", 4, 0.25, 0.25, device="cpu")

    assert frequency_filter((8, 6, 6), "gaussian", 4, 0.25, 0.25, device=torch.device("cpu")) is first
    assert frequency_filter((8, 6, 6), "gaussian", 4, 0.25, 0.5) is not first
    assert frequency_filter((8, 6, 7), "gaussian", 4, 0.25, 0.25) is not first


@pytest.mark.parametrize(
    "arguments, message",
    [
        (((8, 8), "gaussian", 4, 0.25, 0.25), "shape=(8, 8)"),
        (((8, 8, 8), "median", 4, 0.25, 0.25), "method='median'"),
        (((8, 8, 8), "butterworth", 0, 0.25, 0.25), "order=0"),
        (((8, 8, 8), "gaussian", 4, 0.0, 0.25), "spatial_stop_frequency=0.0"),
        (((8, 8, 8), "gaussian", 4, 0.25, 1.5), "temporal_stop_frequency=1.5"),
    ],
)
def test_filter_refuses_bad_arguments(arguments, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        build_frequency_filter(*arguments)


# ---------------------------------------------------------------------------------------------- mixing
def test_all_pass_filter_gives_the_renoised_latent_and_all_stop_gives_the_fresh_noise():
    renoised, fresh = torch.randn(2, 4, 6, 8, 8, generator=seeded(1)), torch.randn(2, 4, 6, 8, 8, generator=seeded(2))

    assert torch.allclose(mix_frequencies(renoised, fresh, torch.ones(6, 8, 8)), renoised, atol=1e-6)
    assert torch.allclose(mix_frequencies(renoised, fresh, torch.zeros(6, 8, 8)), fresh, atol=1e-6)


def test_mixing_equals_the_official_freq_mix_3d_bit_for_bit():
    renoised, fresh = torch.randn(1, 4, 7, 8, 10, generator=seeded(1)), torch.randn(1, 4, 7, 8, 10, generator=seeded(2))
    low_pass = build_frequency_filter((7, 8, 10), "butterworth", 4, 0.25, 0.25)

    assert torch.equal(mix_frequencies(renoised, fresh, low_pass), official_freq_mix_3d(renoised, fresh, low_pass))


def test_mixing_frames_before_channels_equals_mixing_the_transposed_latent():
    renoised, fresh = torch.randn(1, 7, 4, 8, 10, generator=seeded(1)), torch.randn(1, 7, 4, 8, 10, generator=seeded(2))
    low_pass = build_frequency_filter((7, 8, 10), "gaussian", 4, 0.25, 0.25)

    frames_first = mix_frequencies(renoised, fresh, low_pass, dims=(1, 3, 4))
    channels_first = mix_frequencies(renoised.transpose(1, 2), fresh.transpose(1, 2), low_pass)

    assert torch.allclose(frames_first, channels_first.transpose(1, 2), atol=1e-6)


def test_half_precision_latents_are_mixed_in_float32_and_returned_in_their_dtype():
    renoised, fresh = torch.randn(1, 4, 6, 8, 8, generator=seeded(1)), torch.randn(1, 4, 6, 8, 8, generator=seeded(2))
    low_pass = build_frequency_filter((6, 8, 8), "butterworth", 4, 0.25, 0.25)

    mixed = mix_frequencies(renoised.half(), fresh.half(), low_pass)

    assert mixed.dtype == torch.float16
    assert torch.equal(mixed, mix_frequencies(renoised.half().float(), fresh.half().float(), low_pass).half())


def test_mixing_refuses_a_filter_of_the_wrong_shape():
    latent = torch.zeros(1, 4, 6, 8, 8)
    with pytest.raises(ValueError, match=r"low_pass has shape \(6, 8\); expected \(6, 8, 8\)"):
        mix_frequencies(latent, latent, torch.ones(6, 8))


# ---------------------------------------------------------------------------------------------- config
@pytest.mark.parametrize(
    "settings, message",
    [
        (dict(num_iters=0), r"num_iters=0 must be an integer in 1\.\.16"),
        (dict(num_iters=17), r"num_iters=17 must be an integer in 1\.\.16"),
        (dict(num_iters=2.5), "num_iters=2.5"),
        (dict(num_iters=True), "num_iters=True"),
        (dict(method="median"), "method='median' must be one of"),
        (dict(order=0), "order=0"),
        (dict(spatial_stop_frequency=0.0), r"spatial_stop_frequency=0.0 must be in \(0, 1\]"),
        (dict(temporal_stop_frequency=1.01), r"temporal_stop_frequency=1.01 must be in \(0, 1\]"),
        (dict(spatial_stop_frequency=float("nan")), "spatial_stop_frequency=nan"),
        (dict(use_fast_sampling="yes"), "use_fast_sampling='yes'"),
        (dict(renoise_level=0.0), "renoise_level=0.0"),
        (dict(renoise_level=1.5), "renoise_level=1.5"),
        (dict(latent_layout="BTCHW"), "latent_layout='BTCHW'"),
    ],
)
def test_config_refuses_bad_values_naming_them(settings, message):
    with pytest.raises(ValueError, match=message):
        FreeInitConfig(**settings)


def test_fast_sampling_plans_about_n_times_k_plus_one_over_two_steps():
    assert FreeInitConfig(num_iters=5, use_fast_sampling=True).planned_steps(25) == [5, 10, 15, 20, 25]
    assert FreeInitConfig(num_iters=3, use_fast_sampling=True).planned_steps(8) == [2, 5, 8]
    assert FreeInitConfig(num_iters=4, use_fast_sampling=True).planned_steps(1) == [1, 1, 1, 1]
    assert FreeInitConfig(num_iters=3).planned_steps(8) == [8, 8, 8]


# ---------------------------------------------------------------------------------------------- re-noising
def test_reference_signal_to_noise_is_stable_diffusion_1_5_at_t_999():
    alphas_cumprod = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear").alphas_cumprod
    assert (alphas_cumprod[999] / (1 - alphas_cumprod[999])).sqrt().item() == pytest.approx(REFERENCE_SIGNAL_TO_NOISE, abs=1e-4)


def test_ddpm_schedules_keep_the_official_t_999():
    assert default_renoise_level(DDIMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012)) == 1.0
    assert default_renoise_level(DDIMScheduler(beta_schedule="linear", beta_start=0.00085, beta_end=0.012)) == 1.0


def test_zero_terminal_snr_schedules_renoise_below_t_999_to_the_reference_signal_to_noise():
    scheduler = build_tiny_cogvideox_pipeline().scheduler
    alphas_cumprod = scheduler.alphas_cumprod
    assert (alphas_cumprod[999] / (1 - alphas_cumprod[999])).sqrt() < 1e-3

    level = default_renoise_level(scheduler)
    timestep = round(level * 999)

    snr = (alphas_cumprod / (1 - alphas_cumprod)).sqrt()
    assert level < 1 and snr[timestep] >= REFERENCE_SIGNAL_TO_NOISE > snr[timestep + 1]


def test_flow_matching_renoises_to_the_sigma_with_the_reference_signal_to_noise():
    scheduler = FlowMatchEulerDiscreteScheduler(shift=3.0)
    sigma = default_renoise_level(scheduler)

    assert schedule_kind(scheduler) == "flow_matching"
    assert (1 - sigma) / sigma == pytest.approx(REFERENCE_SIGNAL_TO_NOISE)


@pytest.mark.parametrize("scheduler", [FlowMatchEulerDiscreteScheduler(), "cogvideox"], ids=["flow", "zero_snr"])
def test_renoising_to_the_last_timestep_erases_the_previous_result_on_these_schedules(scheduler):
    scheduler = build_tiny_cogvideox_pipeline().scheduler if scheduler == "cogvideox" else scheduler
    clean, noise = torch.randn(1, 4, 3, 4, 4, generator=seeded(1)), torch.randn(1, 4, 3, 4, 4, generator=seeded(2))

    assert torch.equal(renoise(scheduler, clean, noise, 1.0), noise)


def test_ddpm_renoising_equals_the_scheduler_add_noise():
    scheduler = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="linear")
    clean, noise = torch.randn(2, 4, 3, 4, 4, generator=seeded(1)), torch.randn(2, 4, 3, 4, 4, generator=seeded(2))

    ours = renoise(scheduler, clean, noise, 1.0)

    assert torch.equal(ours, scheduler.add_noise(clean, noise, torch.full((2,), 999).long()))


# ---------------------------------------------------------------------------------------------- Vchitect-2.0
VCHITECT_CALL = dict(prompt=TINY_TEXT_PROMPT, height=32, width=32, num_frames=4, num_inference_steps=4, output_type="latent")


@pytest.fixture(scope="module")
def vchitect():
    pipe = build_tiny_vchitect_pipeline(weights="random")
    pipe.set_progress_bar_config(disable=True)
    yield pipe
    remove_free_init(pipe)


@pytest.fixture
def denoiser_inputs(vchitect):
    """The latents of every transformer call, in order."""
    seen = []
    handle = vchitect.transformer.register_forward_pre_hook(
        lambda module, args, kwargs: seen.append(kwargs["hidden_states"].detach().clone()), with_kwargs=True
    )
    yield seen
    handle.remove()


def test_same_seed_gives_the_same_video_and_another_seed_another(vchitect):
    with free_init_applied(vchitect, FreeInitConfig(num_iters=2)):
        first = vchitect(**VCHITECT_CALL, generator=seeded(3)).frames
        again = vchitect(**VCHITECT_CALL, generator=seeded(3)).frames
        other = vchitect(**VCHITECT_CALL, generator=seeded(4)).frames

    assert torch.equal(first, again)
    assert not torch.allclose(first, other)


@pytest.mark.parametrize("fast, expected_calls", [(False, 3 * 8), (True, 2 + 5 + 8)])
def test_transformer_calls_equal_the_planned_steps(vchitect, denoiser_inputs, fast, expected_calls):
    with free_init_applied(vchitect, FreeInitConfig(num_iters=3, use_fast_sampling=fast)):
        vchitect(**{**VCHITECT_CALL, "num_inference_steps": 8}, generator=seeded())

    assert len(denoiser_inputs) == expected_calls == sum(FreeInitConfig(num_iters=3, use_fast_sampling=fast).planned_steps(8))


def test_removing_free_init_restores_bit_identical_outputs_and_the_class(vchitect):
    plain = vchitect(**VCHITECT_CALL, generator=seeded()).frames
    apply_free_init(vchitect, FreeInitConfig(num_iters=2))
    assert type(vchitect) is not VchitectRepVideoPipeline and isinstance(vchitect, VchitectRepVideoPipeline)
    with_free_init = vchitect(**VCHITECT_CALL, generator=seeded()).frames

    remove_free_init(vchitect)

    assert type(vchitect) is VchitectRepVideoPipeline and free_init_config_of(vchitect) is None
    assert not torch.allclose(with_free_init, plain)
    assert torch.equal(vchitect(**VCHITECT_CALL, generator=seeded()).frames, plain)


def test_one_iteration_is_plain_sampling(vchitect):
    plain = vchitect(**VCHITECT_CALL, generator=seeded()).frames
    with free_init_applied(vchitect, FreeInitConfig(num_iters=1)):
        assert torch.equal(vchitect(**VCHITECT_CALL, generator=seeded()).frames, plain)


def test_iteration_zero_samples_as_usual_and_keeps_its_initial_noise(vchitect, denoiser_inputs):
    plain = vchitect(**VCHITECT_CALL, guidance_scale=1.0, generator=seeded()).frames
    initial_noise = denoiser_inputs[0]
    denoiser_inputs.clear()
    config = FreeInitConfig(num_iters=2)

    with free_init_applied(vchitect, config):
        vchitect(**VCHITECT_CALL, guidance_scale=1.0, generator=seeded())

    assert torch.equal(denoiser_inputs[0], initial_noise)
    generator = seeded()
    randn_tensor(plain.shape, generator=generator)  # iteration 0's noise
    fresh = randn_tensor(plain.shape, generator=generator)
    low_pass = build_frequency_filter((4, 4, 4), "butterworth", 4, 0.25, 0.25)
    expected = mix_frequencies(renoise(vchitect.scheduler, plain, initial_noise, 1 / (1 + REFERENCE_SIGNAL_TO_NOISE)),
                               fresh, low_pass, dims=(1, 3, 4))
    assert torch.equal(denoiser_inputs[4], expected)


@pytest.mark.parametrize("level, weight_of_previous_result", [(None, 1 - 1 / (1 + REFERENCE_SIGNAL_TO_NOISE)), (1.0, 0.0)],
                         ids=["default_level", "sigma_1"])
def test_flow_matching_renoising_keeps_the_previous_results_low_frequencies(vchitect, denoiser_inputs, level,
                                                                            weight_of_previous_result):
    call = {**VCHITECT_CALL, "height": 64, "width": 64, "num_frames": 8, "num_inference_steps": 3, "guidance_scale": 1.0}
    previous_result = vchitect(**call, generator=seeded()).frames
    denoiser_inputs.clear()
    # a 0/1 filter, so that the low band of the next start is exactly the low band of the re-noised result
    config = FreeInitConfig(num_iters=2, method="ideal", spatial_stop_frequency=0.5, temporal_stop_frequency=0.5,
                            renoise_level=level)

    with free_init_applied(vchitect, config):
        vchitect(**call, generator=seeded())

    initial_noise, next_start = denoiser_inputs[0], denoiser_inputs[3]
    low_pass = build_frequency_filter((8, 8, 8), "ideal", 4, 0.5, 0.5)
    low = [mix_frequencies(x, torch.zeros_like(x), low_pass, dims=(1, 3, 4)).flatten()
           for x in (next_start, previous_result, initial_noise)]
    # least squares: low(next start) = a * low(previous result) + b * low(initial noise)
    a, b = torch.linalg.lstsq(torch.stack(low[1:], dim=1).double(), low[0].double()[:, None]).solution.flatten()
    assert a.item() == pytest.approx(weight_of_previous_result, abs=1e-4)
    assert b.item() == pytest.approx(1 - weight_of_previous_result, abs=1e-4)


def test_progress_bar_spans_iterations_times_steps(vchitect):
    buffer = io.StringIO()
    vchitect.set_progress_bar_config(file=buffer, disable=False, mininterval=0)
    try:
        with free_init_applied(vchitect, FreeInitConfig(num_iters=3)):
            vchitect(**VCHITECT_CALL, generator=seeded())
    finally:
        vchitect.set_progress_bar_config(disable=True)

    last_line = buffer.getvalue().replace("\r", "\n").strip().splitlines()[-1]
    assert "FreeInit 3/3" in last_line and "12/12" in last_line
    assert buffer.getvalue().count("/12") > 3 and "/4 " not in buffer.getvalue()


def test_callback_on_step_end_fires_on_every_step_of_every_iteration(vchitect):
    seen = []

    def callback(pipe, step_index, timestep, tensors):
        seen.append((pipe.free_init_iteration, step_index))
        return tensors

    with free_init_applied(vchitect, FreeInitConfig(num_iters=2, use_fast_sampling=True)):
        vchitect(**VCHITECT_CALL, generator=seeded(), callback_on_step_end=callback)
        assert vchitect.free_init_iteration is None

    assert seen == [(0, 0), (0, 1), (1, 0), (1, 1), (1, 2), (1, 3)]


def test_interrupt_ends_the_run_with_the_interrupted_latents(vchitect, denoiser_inputs):
    def interrupt_after_second_step(pipe, step_index, timestep, tensors):
        if step_index == 1:
            pipe._interrupt = True
        return tensors

    with free_init_applied(vchitect, FreeInitConfig(num_iters=3)):
        output = vchitect(**VCHITECT_CALL, generator=seeded(), callback_on_step_end=interrupt_after_second_step)

    assert len(denoiser_inputs) == 2
    plain = vchitect(**{**VCHITECT_CALL, "num_inference_steps": 4}, generator=seeded(),
                     callback_on_step_end=interrupt_after_second_step).frames
    assert torch.equal(output.frames, plain)


def test_reset_callbacks_run_before_every_iteration_after_the_first(vchitect):
    iterations = []

    def reset(pipe):
        iterations.append(pipe.free_init_iteration)

    register_iteration_reset(vchitect, reset)
    try:
        with free_init_applied(vchitect, FreeInitConfig(num_iters=3)):
            vchitect(**VCHITECT_CALL, generator=seeded())
    finally:
        unregister_iteration_reset(vchitect, reset)

    assert iterations == [1, 2]


def test_save_pretrained_names_the_pipeline_class_while_free_init_is_applied(vchitect, tmp_path):
    with free_init_applied(vchitect, FreeInitConfig()):
        vchitect.save_pretrained(tmp_path)

    assert json.loads((tmp_path / "model_index.json").read_text())["_class_name"] == "VchitectRepVideoPipeline"


def test_context_manager_restores_a_previously_applied_config(vchitect):
    outer = FreeInitConfig(num_iters=2)
    apply_free_init(vchitect, outer)
    try:
        with free_init_applied(vchitect, FreeInitConfig(num_iters=4)):
            assert free_init_config_of(vchitect).num_iters == 4
        assert free_init_config_of(vchitect) is outer
    finally:
        remove_free_init(vchitect)


# ---------------------------------------------------------------------------------------------- composition with caches
def test_composes_with_faster_cache_each_iteration_a_fresh_cached_trajectory(vchitect):
    from video_diffusion_pack.hooks.faster_cache import FasterCacheConfig, apply_faster_cache, remove_faster_cache

    call = {**VCHITECT_CALL, "num_inference_steps": 6}
    cache_config = FasterCacheConfig(start_fraction=0.0, attention_interval=2, uncond_interval=2)
    config = FreeInitConfig(num_iters=2, use_fast_sampling=True)  # 3 then 6 steps: different cache plans
    with free_init_applied(vchitect, config):
        uncached = vchitect(**call, generator=seeded()).frames
    apply_faster_cache(vchitect, cache_config)
    try:
        with free_init_applied(vchitect, config):
            cached = vchitect(**call, generator=seeded()).frames
        # the same two passes by hand, each a plain cached run
        generator = seeded()
        first = vchitect(**{**call, "num_inference_steps": 3}, generator=generator).frames
        initial_noise = randn_tensor(first.shape, generator=seeded())
        low_pass = build_frequency_filter((4, 4, 4), "butterworth", 4, 0.25, 0.25)
        start = mix_frequencies(renoise(vchitect.scheduler, first, initial_noise, default_renoise_level(vchitect.scheduler)),
                                randn_tensor(first.shape, generator=generator), low_pass, dims=(1, 3, 4))
        by_hand = vchitect(**call, latents=start, generator=generator).frames
    finally:
        remove_faster_cache(vchitect)

    assert torch.equal(cached, by_hand)
    assert not torch.allclose(cached, uncached)


def test_composes_with_diffusers_faster_cache_on_cogvideox():
    from diffusers import FasterCacheConfig as DiffusersFasterCacheConfig

    pipe = build_tiny_cogvideox_pipeline()
    call = dict(prompt=TINY_TEXT_PROMPT, height=32, width=32, num_frames=9, num_inference_steps=6, guidance_scale=6.0,
                max_sequence_length=COGVIDEOX_TEXT_TOKENS, output_type="latent")
    plain = pipe(**call, generator=seeded()).frames
    pipe.transformer.enable_cache(DiffusersFasterCacheConfig(
        spatial_attention_block_skip_range=2, spatial_attention_timestep_skip_range=(-1, 1000),
        unconditional_batch_skip_range=2, unconditional_batch_timestep_skip_range=(-1, 1000),
        attention_weight_callback=lambda _: 0.3, current_timestep_callback=lambda: pipe.current_timestep,
        tensor_format="BFCHW",
    ))
    with free_init_applied(pipe, FreeInitConfig(num_iters=2)):
        cached = pipe(**call, generator=seeded()).frames
    # by hand: iteration 0 is a plain cached run; iteration 1 a plain cached run from the mixed noise
    generator = seeded()
    first = pipe(**call, generator=generator).frames
    initial_noise = randn_tensor(first.shape, generator=seeded())
    low_pass = build_frequency_filter((3, 4, 4), "butterworth", 4, 0.25, 0.25)
    start = mix_frequencies(renoise(pipe.scheduler, first, initial_noise, default_renoise_level(pipe.scheduler)),
                            randn_tensor(first.shape, generator=generator), low_pass, dims=(1, 3, 4))
    by_hand = pipe(**call, latents=start, generator=generator).frames

    assert torch.equal(cached, by_hand)
    assert not torch.allclose(first, plain)  # the cache did skip work


# ---------------------------------------------------------------------------------------------- diffusers pipelines
ANIMATEDIFF_CALL = dict(prompt=TINY_TEXT_PROMPT, height=16, width=16, num_frames=8, num_inference_steps=4,
                        guidance_scale=7.5, output_type="latent")


@pytest.fixture(scope="module")
def animatediff():
    return build_tiny_animatediff_pipeline()


@pytest.mark.parametrize("method", ["butterworth", "gaussian"])
@pytest.mark.parametrize("fast", [False, True], ids=["all_steps", "fast_sampling"])
def test_animatediff_gives_diffusers_own_free_init_result(animatediff, method, fast):
    animatediff.enable_free_init(num_iters=3, method=method, use_fast_sampling=fast)
    try:
        theirs = animatediff(**ANIMATEDIFF_CALL, generator=seeded()).frames
    finally:
        animatediff.disable_free_init()

    with free_init_applied(animatediff, FreeInitConfig(num_iters=3, method=method, use_fast_sampling=fast)):
        ours = animatediff(**ANIMATEDIFF_CALL, generator=seeded()).frames

    assert torch.equal(ours, theirs)


def test_animatediff_ideal_filter_matches_diffusers_at_the_radius_diffusers_actually_uses(animatediff):
    animatediff.enable_free_init(num_iters=2, method="ideal", spatial_stop_frequency=0.125, temporal_stop_frequency=0.25)
    try:
        theirs = animatediff(**ANIMATEDIFF_CALL, generator=seeded()).frames
    finally:
        animatediff.disable_free_init()

    config = FreeInitConfig(num_iters=2, method="ideal", spatial_stop_frequency=0.5, temporal_stop_frequency=1.0)
    with free_init_applied(animatediff, config):
        ours = animatediff(**ANIMATEDIFF_CALL, generator=seeded()).frames

    assert torch.equal(ours, theirs)


def test_half_precision_animatediff_mixes_in_float32_and_keeps_its_dtype():
    pipe = build_tiny_animatediff_pipeline().to(torch.float16)
    call = {**ANIMATEDIFF_CALL, "num_inference_steps": 3}
    pipe.enable_free_init(num_iters=2)
    theirs = pipe(**call, generator=seeded()).frames
    pipe.disable_free_init()

    with free_init_applied(pipe, FreeInitConfig(num_iters=2)):
        ours = pipe(**call, generator=seeded()).frames

    assert ours.dtype == torch.float16 and torch.isfinite(ours).all()
    # diffusers re-noises in float16 and we in float32; the rest is the same computation
    assert ((ours.float() - theirs.float()).norm() / theirs.float().norm()).item() < 1e-2


def test_animatediff_decodes_only_the_last_iteration(animatediff):
    decode_calls = []
    decode = animatediff.vae.decode

    def counted_decode(*args, **kwargs):
        decode_calls.append(1)
        return decode(*args, **kwargs)

    animatediff.vae.decode = counted_decode
    try:
        with free_init_applied(animatediff, FreeInitConfig(num_iters=3)):
            video = animatediff(**{**ANIMATEDIFF_CALL, "output_type": "np"}, generator=seeded()).frames
    finally:
        del animatediff.vae.decode

    assert video.shape == (1, 8, 16, 16, 3)
    assert len(decode_calls) == 1


def test_diffusers_own_free_init_and_ours_are_not_stacked(animatediff):
    animatediff.enable_free_init(num_iters=2)
    try:
        with pytest.raises(ValueError, match="disable_free_init"):
            apply_free_init(animatediff, FreeInitConfig())
    finally:
        animatediff.disable_free_init()


def test_cogvideox_iteration_restarts_from_its_low_frequencies_below_t_999():
    pipe = build_tiny_cogvideox_pipeline()
    call = dict(prompt=TINY_TEXT_PROMPT, height=32, width=32, num_frames=9, num_inference_steps=3, guidance_scale=6.0,
                max_sequence_length=COGVIDEOX_TEXT_TOKENS, output_type="latent")
    generator = seeded()
    first = pipe(**call, generator=generator).frames
    initial_noise = randn_tensor(first.shape, generator=seeded())
    level = default_renoise_level(pipe.scheduler)
    start = mix_frequencies(renoise(pipe.scheduler, first, initial_noise, level), randn_tensor(first.shape, generator=generator),
                            build_frequency_filter((3, 4, 4), "butterworth", 4, 0.25, 0.25), dims=(1, 3, 4))

    with free_init_applied(pipe, FreeInitConfig(num_iters=2)):
        ours = pipe(**call, generator=seeded()).frames

    assert level < 1
    assert torch.equal(ours, pipe(**call, latents=start, generator=generator).frames)


def test_das_pipeline_samples_every_planned_step_from_its_frames_first_latents():
    from video_diffusion_pack.diffusers_pipelines.das.tiny import (
        TINY_DAS_PROMPT,
        TINY_HEIGHT,
        TINY_NUM_FRAMES,
        TINY_WIDTH,
        build_tiny_das_pipeline,
    )

    pipe = build_tiny_das_pipeline(weights="random")
    pipe.set_progress_bar_config(disable=True)
    starts = []
    pipe.transformer.register_forward_pre_hook(
        lambda module, args, kwargs: starts.append(kwargs["hidden_states"].clone()), with_kwargs=True
    )
    video = torch.rand(TINY_NUM_FRAMES, TINY_HEIGHT, TINY_WIDTH, 3, generator=seeded(5))
    call = dict(image=video[0].permute(2, 0, 1)[None], prompt=TINY_DAS_PROMPT, tracking_video=video,
                num_inference_steps=2, height=TINY_HEIGHT, width=TINY_WIDTH, num_frames=TINY_NUM_FRAMES,
                output_type="latent")

    with free_init_applied(pipe, FreeInitConfig(num_iters=2)):
        first = pipe(**call, generator=seeded()).frames
        again = pipe(**call, generator=seeded()).frames

    assert len(starts) == 2 * 2 * 2 and torch.equal(first, again)
    assert driver._guess_latent_layout(type(pipe)) == "BFCHW"
    noise_channels = first.shape[2]
    assert not torch.equal(starts[2][:1, :, :noise_channels], starts[0][:1, :, :noise_channels])


# ---------------------------------------------------------------------------------------------- refusals
def test_pipelines_without_the_needed_call_arguments_are_refused_by_name():
    pipe = DDPMPipeline(unet=UNet2DModel(sample_size=8, block_out_channels=(4, 8), norm_num_groups=2,
                                         down_block_types=("DownBlock2D", "DownBlock2D"),
                                         up_block_types=("UpBlock2D", "UpBlock2D")),
                        scheduler=DDIMScheduler())

    with pytest.raises(ValueError, match=r"DDPMPipeline: its __call__ has no \['latents'\]"):
        apply_free_init(pipe, FreeInitConfig())
    assert type(pipe) is DDPMPipeline


def test_a_config_of_another_type_is_refused(vchitect):
    with pytest.raises(TypeError, match="FreeInitConfig"):
        apply_free_init(vchitect, {"num_iters": 3})


def test_fast_sampling_with_explicit_timesteps_is_refused():
    pipe = build_tiny_cogvideox_pipeline()
    call = dict(prompt=TINY_TEXT_PROMPT, height=32, width=32, num_frames=9, timesteps=[999, 500],
                max_sequence_length=COGVIDEOX_TEXT_TOKENS, output_type="latent")

    with free_init_applied(pipe, FreeInitConfig(num_iters=2, use_fast_sampling=True)):
        with pytest.raises(ValueError, match="use_fast_sampling needs num_inference_steps"):
            pipe(**call, generator=seeded())
