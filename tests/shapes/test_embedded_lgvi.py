"""The shipped embedded LGVI (trained on the shapes world's removal pairs) loads from its released-layout folder,
runs through `vdp inpaint` on a real video file, and removes the shape: on a small fixed subset of the bed's removal
set, the edited region is closer to the true background than the input video is (doing nothing), by a margin
measured on the shipped model (the full set is measured by benchmarks/shapes_lgvi.py)."""

import json

import numpy as np
import pytest
import torch

from video_diffusion_pack.diffusers_pipelines.lgvi.defaults import EMBEDDED
from video_diffusion_pack.evaluation.shapes import quality
from video_diffusion_pack.evaluation.shapes.removal import fixed_removal_set

# measured on the shipped model: mean gain in edited-region PSNR over doing nothing on SUBSET 20.6 dB (per video
# 3.6 to 33.0 dB; through `vdp inpaint` and mp4 files, SUBSET[0] gains 32.6 dB), untouched region 30.5 dB on SUBSET
# and 32.6 dB on the full set (doing nothing: 100, the cap); the thresholds leave a margin below them
EDITED_PSNR_GAIN_DB = 15.0
UNTOUCHED_PSNR_DB = 25.0
# two-object scenes, each edited twice (naming each object): PSNR against the input over the object the instruction
# names (removed: low) and over the other one (kept: high). Measured on the shipped model over these 3 scenes: named
# 7.1 dB, other 12.8 dB; the model trained on one-object scenes only scored 5.6 and 5.6 dB here (6.7 and 6.7 on 8 such
# scenes): the instruction made no difference
KEPT_OVER_NAMED_DB = 3.0
SUBSET = fixed_removal_set(24)[::6]


@pytest.fixture(scope="module")
def embedded():
    from video_diffusion_pack.diffusers_pipelines.lgvi.embedded import load_embedded_lgvi_pipeline

    pipe = load_embedded_lgvi_pipeline()
    pipe.set_progress_bar_config(disable=True)
    return pipe


def test_the_embedded_model_removes_the_shape_better_than_doing_nothing(embedded):
    output = embedded(video=np.stack([case.input_video for case in SUBSET]),
                      prompt=[case.instruction for case in SUBSET], height=EMBEDDED.height, width=EMBEDDED.width,
                      num_inference_steps=EMBEDDED.num_inference_steps, guidance_scale=EMBEDDED.guidance_scale,
                      image_guidance_scale=EMBEDDED.image_guidance_scale,
                      generator=[torch.Generator().manual_seed(case.seed) for case in SUBSET], output_type="np")
    assert output.frames.shape == (len(SUBSET), EMBEDDED.max_frames, EMBEDDED.height, EMBEDDED.width, 3)
    gains, untouched = [], []
    for case, frames in zip(SUBSET, output.frames):
        edited = quality.score_inpainting(np.round(frames * 255).astype(np.uint8), case.target, case.input_video,
                                          case.mask)
        nothing = quality.score_inpainting(case.input_video, case.target, case.input_video, case.mask)
        gains.append(edited.edited_psnr - nothing.edited_psnr)
        untouched.append(edited.untouched_psnr)
    assert min(gains) > 0 and float(np.mean(gains)) >= EDITED_PSNR_GAIN_DB, gains
    assert float(np.mean(untouched)) >= UNTOUCHED_PSNR_DB, untouched


def test_the_instruction_chooses_which_of_two_objects_is_removed(embedded):
    from video_diffusion_pack.evaluation.shapes.dataset import referring_expression
    from video_diffusion_pack.evaluation.shapes.world import render_scene, sample_scene

    videos, instructions, labels = [], [], []
    for index in range(40):
        scene = sample_scene(np.random.default_rng([1, index]), EMBEDDED.height, EMBEDDED.width, EMBEDDED.max_frames,
                             max_objects=2)
        if len(scene.objects) != 2:
            continue
        rendered = render_scene(scene)
        for named in (0, 1):
            videos.append(rendered.frames)
            instructions.append(f"remove {referring_expression(scene, named)}")
            labels.append((rendered.labels == named + 1, rendered.labels == 2 - named))
        if len(videos) == 6:
            break
    output = embedded(video=np.stack(videos), prompt=instructions, height=EMBEDDED.height, width=EMBEDDED.width,
                      num_inference_steps=EMBEDDED.num_inference_steps, guidance_scale=EMBEDDED.guidance_scale,
                      image_guidance_scale=EMBEDDED.image_guidance_scale,
                      generator=[torch.Generator().manual_seed(0) for _ in videos], output_type="np")

    edited = np.round(output.frames * 255).astype(np.uint8)
    named = [quality._psnr(frames, video, mask) for frames, video, (mask, _) in zip(edited, videos, labels)]
    other = [quality._psnr(frames, video, mask) for frames, video, (_, mask) in zip(edited, videos, labels)]
    assert float(np.mean(other)) >= float(np.mean(named)) + KEPT_OVER_NAMED_DB, (named, other)


def test_vdp_inpaint_without_model_edits_a_shapes_video_file(tmp_path, capsys):
    from video_diffusion_pack.cli import main
    from video_diffusion_pack.video_io import read_video, read_video_metadata, write_video

    case = SUBSET[0]
    source = write_video(tmp_path / "shapes.mp4", case.input_video, fps=8)
    output = tmp_path / "removed.mp4"
    try:
        status = main(["inpaint", str(source), case.instruction, "-o", str(output)])
    except SystemExit as exit_:
        status = exit_.code
    err = capsys.readouterr().err
    assert status == 0, err
    assert "the embedded model: a small LGVI" in err and "noise" not in err
    frames, fps = read_video(output)
    assert frames.shape == (EMBEDDED.max_frames, EMBEDDED.height, EMBEDDED.width, 3) and fps == pytest.approx(8)
    settings = read_video_metadata(output)
    assert (settings["steps"], settings["height"], settings["model"]) == (EMBEDDED.num_inference_steps,
                                                                          EMBEDDED.height, None)
    edited = quality.score_inpainting(frames, case.target, case.input_video, case.mask)
    nothing = quality.score_inpainting(case.input_video, case.target, case.input_video, case.mask)
    assert edited.edited_psnr > nothing.edited_psnr + EDITED_PSNR_GAIN_DB, (edited, nothing)


def test_the_embedded_model_is_a_small_fp16_folder_of_the_released_layout():
    from safetensors import safe_open

    from video_diffusion_pack.diffusers_pipelines.lgvi.embedded import embedded_folder

    folder = embedded_folder()
    assert (folder / "MODEL_CARD.md").is_file()
    index = json.loads((folder / "model_index.json").read_text())
    assert index["_class_name"] == "StableDiffusionPipeline" and index["unet"] == ["rovi.models.unet", "RoviModel"]
    assert json.loads((folder / "unet" / "config.json").read_text())["_class_name"] == "RoviModel"
    weights = sorted(folder.rglob("*.safetensors"))
    assert [path.parent.name for path in weights] == ["text_encoder", "unet", "vae"]
    for path in weights:
        with safe_open(str(path), "pt") as tensors:
            assert {tensors.get_slice(name).get_dtype() for name in tensors.keys()} == {"F16"}, path
    size = sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())
    assert size < 10 * 2**20, size


def test_the_lgvi_autoencoder_is_made_deterministic_and_scaled_without_a_shift():
    from diffusers import AutoencoderKL

    from video_diffusion_pack.diffusers_pipelines.lgvi.embedded import EMBEDDED_VAE_CONFIG
    from video_diffusion_pack.training.autoencoder import make_deterministic, set_latent_statistics

    frames = SUBSET[0].input_video
    torch.manual_seed(0)
    vae = AutoencoderKL(**EMBEDDED_VAE_CONFIG)
    make_deterministic(vae)
    set_latent_statistics(vae, frames, shift=False)
    pixels = torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 127.5 - 1
    with torch.no_grad():
        posterior = vae.encode(pixels).latent_dist
        assert torch.allclose(posterior.sample(torch.Generator().manual_seed(1)), posterior.mean, atol=1e-5)
        scaled = posterior.mean * vae.config.scaling_factor
    assert vae.config.shift_factor is None
    assert abs(scaled.pow(2).mean().sqrt().item() - 1.0) < 0.01
