"""upscale_video: any spandrel upscaler, tiled with blended overlaps, batched, with progress and interrupt; the
models spandrel loads are checked to be upscalers, and frames and tiles to fit them.

The reference output is spandrel's own call of the model on whole frames, not this pack's code."""

import numpy as np
import pytest
import torch
from helpers.upscalers import save_state_dict, tiny_compact_state_dict, tiny_esrgan_state_dict
from safetensors.torch import save_file

from video_diffusion_pack.upscale import UpscaleModelError, load_upscale_model, tile_starts, upscale_video

FRAMES = torch.rand(3, 70, 90, 3, generator=torch.Generator().manual_seed(1))  # sizes no tile grid divides


def spandrels_output(model, frames: torch.Tensor) -> torch.Tensor:
    """The model called by spandrel on each whole frame, as [F, H, W, 3]."""
    return torch.cat([model(frame.permute(2, 0, 1)[None]) for frame in frames]).permute(0, 2, 3, 1)


@pytest.fixture(scope="module")
def esrgan():
    return load_upscale_model(tiny_esrgan_state_dict(scale=4))


@pytest.fixture(scope="module")
def compact():
    return load_upscale_model(tiny_compact_state_dict(scale=2))


@pytest.fixture(scope="module")
def esrgan_unshuffle():
    return load_upscale_model(tiny_esrgan_state_dict(scale=2, unshuffle=True))


@pytest.mark.parametrize("build, file_name, architecture, scale, multiple_of", [
    (lambda: tiny_esrgan_state_dict(scale=4), "RealESRGAN_x4plus.pth", "ESRGAN", 4, 1),
    (lambda: tiny_esrgan_state_dict(scale=2, unshuffle=True), "RealESRGAN_x2plus.safetensors", "ESRGAN", 2, 4),
    (lambda: tiny_compact_state_dict(scale=2), "realesr-general-x2v3.safetensors", "Compact", 2, 1),
    (lambda: tiny_compact_state_dict(scale=4), "realesr-animevideov3.pth", "Compact", 4, 1),
])
def test_spandrel_detects_the_architecture_and_scale_of_a_tiny_file(tmp_path, build, file_name, architecture, scale,
                                                                     multiple_of):
    path = tmp_path / file_name
    save_state_dict(build(), path)
    model = load_upscale_model(path)
    assert model.architecture.id == architecture
    assert model.purpose == "SR"
    assert model.scale == scale
    assert model.size_requirements.multiple_of == multiple_of


@pytest.mark.parametrize("fixture", ["esrgan", "compact", "esrgan_unshuffle"])
def test_untiled_upscaling_is_spandrels_output_at_scale_times_the_size(request, fixture):
    model = request.getfixturevalue(fixture)
    upscaled = upscale_video(FRAMES, model, tile=None)
    assert upscaled.shape == (3, 70 * model.scale, 90 * model.scale, 3)
    assert upscaled.dtype == torch.float32
    torch.testing.assert_close(upscaled, spandrels_output(model, FRAMES), rtol=0, atol=1e-6)


# (model, tile, overlap, bound): Compact's 4 convolutions see 4 pixels around an output pixel, overlap / 4 = 4, so
# only float rounding is left (measured 1.2e-7); the RRDB sees about 19 pixels, further than overlap / 4, but the
# random weights' influence has faded by then (measured 1.2e-6 at overlap 16, 1.2e-7 at 24, 3.6e-7 unshuffled at 32)
@pytest.mark.parametrize("fixture, tile, overlap, bound", [
    ("compact", 32, 16, 1e-6),
    ("compact", 48, 24, 1e-6),
    ("esrgan", 48, 24, 1e-5),
    ("esrgan_unshuffle", 64, 32, 1e-5),
])
def test_tiled_output_equals_the_untiled_one_within_the_measured_bound(request, fixture, tile, overlap, bound):
    model = request.getfixturevalue(fixture)
    tiled = upscale_video(FRAMES, model, tile=tile, overlap=overlap, batch=2)
    difference = (tiled - spandrels_output(model, FRAMES)).abs().max().item()
    assert difference <= bound


def test_tiles_that_do_not_overlap_leave_seams_the_blend_removes(compact):
    reference = spandrels_output(compact, FRAMES)
    seams = (upscale_video(FRAMES, compact, tile=32, overlap=0) - reference).abs().max().item()
    blended = (upscale_video(FRAMES, compact, tile=32, overlap=16) - reference).abs().max().item()
    assert seams > 1e-3
    assert blended <= 1e-6


def test_tiles_cover_the_frame_evenly_and_overlap_by_at_least_the_overlap():
    for length, tile, overlap, multiple in [(100, 64, 16, 1), (65, 64, 16, 1), (300, 64, 16, 4), (129, 64, 32, 1),
                                            (1000, 512, 32, 8)]:
        starts = tile_starts(length, tile, overlap, multiple)
        assert starts[0] == 0 and starts[-1] + tile == length
        assert all(start % multiple == 0 for start in starts)
        assert all(previous + tile - start >= overlap for previous, start in zip(starts, starts[1:]))
    assert tile_starts(64, 64, 16) == [0]


def test_uint8_frames_come_back_as_uint8_rounded_from_the_float_result(esrgan):
    frames = (FRAMES.numpy() * 255).round().astype(np.uint8)
    upscaled = upscale_video(frames, esrgan, tile=48, overlap=24)
    assert isinstance(upscaled, np.ndarray) and upscaled.dtype == np.uint8
    expected = spandrels_output(esrgan, torch.from_numpy(frames).float() / 255)
    assert np.abs(upscaled.astype(int) - (expected.numpy() * 255).round().astype(int)).max() <= 1


def test_float_numpy_frames_come_back_as_float_numpy(compact):
    upscaled = upscale_video(FRAMES.numpy(), compact, tile=None)
    assert isinstance(upscaled, np.ndarray) and upscaled.dtype == np.float32
    assert upscaled.shape == (3, 140, 180, 3)


def test_the_batch_size_does_not_change_the_result(compact):
    one = upscale_video(FRAMES, compact, tile=32, overlap=16, batch=1)
    three = upscale_video(FRAMES, compact, tile=32, overlap=16, batch=3)
    torch.testing.assert_close(one, three, rtol=0, atol=1e-6)


def test_progress_is_reported_after_every_model_call(compact):
    calls = []
    upscale_video(FRAMES, compact, tile=32, overlap=16, batch=2, progress=lambda done, total: calls.append((done, total)))
    tiles = len(tile_starts(70, 32, 16)) * len(tile_starts(90, 32, 16))
    total = 2 * tiles  # batches of 2 and 1 frame
    assert calls == [(done, total) for done in range(1, total + 1)]


def test_an_interrupt_raised_by_progress_propagates_and_leaves_the_model_usable(compact):
    def interrupt(done, total):
        if done == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        upscale_video(FRAMES, compact, tile=32, overlap=16, progress=interrupt)
    assert not torch.is_inference_mode_enabled()
    torch.testing.assert_close(upscale_video(FRAMES, compact, tile=None), spandrels_output(compact, FRAMES))


def test_a_model_file_path_is_loaded_on_the_cpu(tmp_path):
    path = tmp_path / "x2.safetensors"
    save_state_dict(tiny_compact_state_dict(scale=2), path)
    assert upscale_video(FRAMES[:1], path, tile=None).shape == (1, 140, 180, 3)


# bad input


def test_a_file_spandrel_cannot_identify_gives_spandrels_verdict_and_what_was_expected(tmp_path):
    path = tmp_path / "unet.safetensors"
    save_file({"down.0.weight": torch.zeros(4, 3, 3, 3), "down.0.bias": torch.zeros(4)}, str(path))
    with pytest.raises(UpscaleModelError) as error:
        load_upscale_model(path)
    message = str(error.value)
    assert f"model '{path}'" in message
    assert "spandrel cannot identify its architecture (UnsupportedModelError" in message
    assert "down.0.weight" in message
    assert "expected the weights of a single-image super-resolution model that spandrel detects" in message


def test_a_corrupt_file_is_named_with_what_was_expected(tmp_path):
    path = tmp_path / "broken.pth"
    path.write_bytes(b"not a checkpoint at all")
    with pytest.raises(UpscaleModelError, match=r"broken.pth': cannot be read as a .pth checkpoint .*; expected"):
        load_upscale_model(path)


def test_a_missing_file_and_an_unknown_extension_are_refused_before_reading(tmp_path):
    with pytest.raises(UpscaleModelError, match="does not exist"):
        load_upscale_model(tmp_path / "absent.pth")
    (tmp_path / "model.bin").write_bytes(b"x")
    with pytest.raises(UpscaleModelError, match=r"extension '.bin' is not one spandrel reads"):
        load_upscale_model(tmp_path / "model.bin")


def test_a_restoration_model_of_scale_1_is_not_an_upscaler():
    with pytest.raises(UpscaleModelError, match=r"Compact \(Restoration, scale 1\): a restoration model that keeps "
                                                r"the size, not an upscaler"):
        load_upscale_model(tiny_compact_state_dict(scale=1))


def test_non_finite_weights_are_refused():
    state_dict = tiny_compact_state_dict(scale=2)
    state_dict["body.0.weight"][0, 0, 0, 0] = float("nan")
    with pytest.raises(UpscaleModelError, match="weight 'body.0.weight' holds NaN or infinite values"):
        load_upscale_model(state_dict)


def test_a_tile_that_is_not_a_multiple_of_the_models_requirement_is_refused(esrgan_unshuffle):
    with pytest.raises(ValueError, match=r"tile=30 does not fit ESRGAN \(scale 2\): its tiles must be a multiple of 4 "
                                         r"pixels and at least 4, e.g. tile=32"):
        upscale_video(FRAMES, esrgan_unshuffle, tile=30, overlap=8)


def test_a_model_whose_output_is_not_scale_times_its_input_is_refused():
    model = load_upscale_model(tiny_compact_state_dict(scale=2))
    model.scale = 3  # a descriptor that misreads the file's scale
    with pytest.raises(ValueError, match=r"says its scale is 3, but .* returned \(1, 3, 140, 180\), not \(1, 3, 210, "
                                         r"270\): the scale does not divide its output"):
        upscale_video(FRAMES[:1], model, tile=None)


@pytest.mark.parametrize("frames, message", [
    (torch.full((1, 8, 8, 3), float("nan")), "frames hold 192 NaN or infinite values"),
    (torch.full((1, 8, 8, 3), float("inf")), "frames hold 192 NaN or infinite values"),
    (torch.full((1, 8, 8, 3), 1.5), "float frames must lie in 0..1; these range from 1.5 to 1.5"),
    (torch.rand(1, 3, 8, 8), r"must be one video \[F, H, W, 3\] with 3 RGB channels last \(channels first"),
    (torch.rand(2, 1, 8, 8, 3), r"frames with shape \(2, 1, 8, 8, 3\) must be one video"),
    (np.zeros((1, 8, 8, 3), dtype=np.int32), "frames of dtype int32 are not supported"),
    ([[0.5]], "frames of type list are not supported"),
])
def test_bad_frames_are_refused_before_the_model_runs(compact, frames, message):
    with pytest.raises(ValueError, match=message):
        upscale_video(frames, compact)


@pytest.mark.parametrize("arguments, message", [
    (dict(tile=32, overlap=17), r"overlap=17 must be at most half of tile=32 \(16\)"),
    (dict(tile=-1), "tile=-1 must be an integer >= 1"),
    (dict(overlap=-2), "overlap=-2 must be an integer >= 0"),
    (dict(batch=0), "batch=0 must be an integer >= 1"),
])
def test_bad_tiling_arguments_are_refused(compact, arguments, message):
    with pytest.raises(ValueError, match=message):
        upscale_video(FRAMES, compact, **arguments)
