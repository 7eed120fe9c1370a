"""Latent previews: the latent-to-RGB projections per VAE family, their fit, and the preview image of a sampler step."""

import pathlib

import numpy as np
import pytest
import tomllib
import torch
from helpers import REPO_ROOT
from PIL import Image

from video_diffusion_pack.diffusers_pipelines.latent_preview import (
    LATENT_RGB_FACTORS_FILE,
    LatentPreviewer,
    LatentRGBProjection,
    downsample_to_latent_grid,
    fit_latent_rgb_projection,
    latent_layout_of,
    latent_rgb_projections,
    previewer_for,
    projection_for_vae,
)

# the published factors the file cites (ComfyUI comfy/latent_formats.py SD15 and SD3, first rows and SD3's bias)
SD15_FIRST_ROW = [0.3512, 0.2297, 0.3227]
SD3_FIRST_ROW = [-0.0922, -0.0175, 0.0749]
SD3_BIAS = [0.2394, 0.2135, 0.1925]


def released_vae(kind):
    """A VAE with the released configuration's identifying fields, on the meta device (no weights)."""
    from diffusers import AutoencoderKL, AutoencoderKLCogVideoX

    with torch.device("meta"):
        if kind == "sd3":
            return AutoencoderKL(block_out_channels=(128, 256, 512, 512), latent_channels=16,
                                 down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4)
        if kind == "sd15":
            return AutoencoderKL(block_out_channels=(128, 256, 512, 512), latent_channels=4,
                                 down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4)
        return AutoencoderKLCogVideoX(block_out_channels=(128, 256, 256, 512), latent_channels=16)


@pytest.mark.parametrize("kind", ["sd3", "sd15", "cogvideox"])
def test_released_vaes_get_the_published_factors(kind):
    projection = projection_for_vae(released_vae(kind))
    assert projection is not None and projection.name == kind
    assert projection.source.startswith("published:")


def test_published_factors_are_the_cited_values():
    projections = {name: projection for name, (_, projection) in latent_rgb_projections().items()}
    assert projections["sd15"].weight[0].tolist() == pytest.approx(SD15_FIRST_ROW)
    assert projections["sd3"].weight[0].tolist() == pytest.approx(SD3_FIRST_ROW)
    assert projections["sd3"].bias.tolist() == pytest.approx(SD3_BIAS)
    assert projections["cogvideox"].weight.shape == (16, 3)


def test_a_vae_of_another_family_has_no_projection():
    from diffusers import AutoencoderKL

    vae = AutoencoderKL(block_out_channels=(16, 16), latent_channels=16, norm_num_groups=4,
                        down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2)
    assert projection_for_vae(vae) is None


def test_fit_recovers_a_linear_map_with_bias():
    generator = torch.Generator().manual_seed(0)
    latents = torch.randn(500, 6, generator=generator)
    weight = torch.randn(6, 3, generator=generator)
    bias = torch.tensor([0.1, -0.2, 0.3])
    projection = fit_latent_rgb_projection(latents, latents @ weight + bias)
    torch.testing.assert_close(projection.weight, weight, atol=1e-5, rtol=0)
    torch.testing.assert_close(projection.bias, bias, atol=1e-5, rtol=0)


def test_fit_refuses_fewer_rows_than_coefficients():
    with pytest.raises(ValueError, match="3 rows cannot determine 4 \\+ 1 coefficients"):
        fit_latent_rgb_projection(torch.zeros(3, 4), torch.zeros(3, 3))


def test_downsampling_averages_space_and_groups_time_as_a_causal_vae():
    frames = torch.zeros(9, 16, 16, 3)
    for index in range(9):
        frames[index] = index / 8
    frames[0, :8, :8] = 1.0  # one corner of the first frame white
    grid = downsample_to_latent_grid(frames, spatial_factor=8, temporal_factor=4)
    assert grid.shape == (3, 2, 2, 3)
    assert grid[0, 0, 0].tolist() == [1.0, 1.0, 1.0] and grid[0, 1, 1].tolist() == [-1.0, -1.0, -1.0]
    # frames 1..4 and 5..8 averaged, in -1..1
    assert grid[1, 0, 0, 0].item() == pytest.approx(2 * (2.5 / 8) - 1)
    assert grid[2, 1, 0, 2].item() == pytest.approx(2 * (6.5 / 8) - 1)
    with pytest.raises(ValueError, match="10 frames must be 1 \\+ a multiple of temporal_factor=4"):
        downsample_to_latent_grid(torch.zeros(10, 16, 16, 3), 8, 4)


def test_previewer_shows_evenly_spaced_frames_of_the_first_video_in_a_grid():
    # three channels mapped to red, green, blue: each frame's colour says which frame it is
    projection = LatentRGBProjection("rgb", torch.eye(3), torch.zeros(3))
    latents = torch.full((2, 5, 3, 2, 3), -1.0)  # b f c h w, 5 frames of 2x3
    for index in range(5):
        latents[0, index, 0] = index / 2 - 1  # red from -1 to 1 over the frames
    latents[1] = 1.0  # the second video is not shown
    image = LatentPreviewer(projection, "b f c h w", max_frames=4).rgb(latents)
    assert image.shape == (4, 6, 3) and image.dtype == torch.uint8
    # frames 0, 1, 3, 4 (evenly spaced, rounded) in a 2x2 grid
    reds = image[::2, ::3, 0].flatten().tolist()
    assert reds == [round((index / 2) * 127.5) for index in (0, 1, 3, 4)]
    assert image[..., 1:].max().item() == 0


def test_previewer_pads_the_grid_in_black_and_reads_channel_first_layouts():
    projection = LatentRGBProjection("rgb", torch.eye(3), torch.zeros(3))
    latents = torch.ones(1, 3, 3, 2, 2)  # b c f h w: 3 white frames
    image = LatentPreviewer(projection, "b c f h w").rgb(latents)
    assert image.shape == (4, 4, 3)
    assert image[:2].min().item() == 255 and image[2:, :2].min().item() == 255
    assert image[2:, 2:].max().item() == 0


@pytest.mark.parametrize("builder, entry, layout", [
    ("build_tiny_vchitect_pipeline", "tiny-sd3", "b f c h w"),
    ("build_tiny_cogvideox_repvideo_pipeline", "tiny-cogvideox", "b f c h w"),
    ("build_tiny_das_pipeline", "tiny-cogvideox", "b f c h w"),
    ("build_tiny_inpaint_pipeline", "tiny-sd15", "b c f h w"),
])
def test_every_tiny_pipeline_has_a_previewer(builder, entry, layout):
    import video_diffusion_pack

    pipeline = getattr(video_diffusion_pack, builder)(seed=0, weights="random")
    previewer = previewer_for(pipeline)
    assert (previewer.projection.name, previewer.layout) == (entry, layout)
    assert previewer.projection.source.startswith("fitted:")


def test_unknown_pipeline_class_has_no_layout():
    assert latent_layout_of(object()) is None
    assert previewer_for(object()) is None


def test_preview_image_is_a_pil_image():
    projection = LatentRGBProjection("rgb", torch.eye(3), torch.zeros(3))
    image = LatentPreviewer(projection, "b f c h w")(torch.zeros(1, 1, 3, 4, 4))
    assert isinstance(image, Image.Image) and image.size == (4, 4)
    assert np.asarray(image).max() == 128


def test_coefficient_file_is_shipped_as_package_data():
    pyproject = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    patterns = pyproject["tool"]["setuptools"]["package-data"]["video_diffusion_pack"]
    relative = pathlib.PurePath(LATENT_RGB_FACTORS_FILE.relative_to(REPO_ROOT))
    assert any(relative.match(pattern) for pattern in patterns)
