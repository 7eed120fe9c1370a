"""The shipped embedded DaS model (trained on the shapes world) loads, runs through `vdp das` and follows its
tracking video: on a small fixed subset of the control bed (`evaluation/shapes/das_bed.py`; the full set is measured by
benchmarks/shapes_das.py) what it draws stays close to the tracking video's object, much closer than to the tracking
video of another trajectory, and follows another trajectory's tracking video when given one.

The errors are the bed's colour-free ones (the centroid of every pixel that is not the scene's background): the model
does not yet paint the object in its first-frame colour, so the bed's colour-matched detector finds no object (see
the model card)."""

import json

import numpy as np
import pytest
import torch
from helpers.vdp import run_vdp
from PIL import Image

from video_diffusion_pack.diffusers_pipelines.das.defaults import EMBEDDED
from video_diffusion_pack.evaluation.shapes import das_bed
from video_diffusion_pack.video_io import read_video, write_video

# the shipped model's colour-free centroid errors (medians, pixels of 32x32 frames), measured by
# benchmarks/shapes_das.py: on its 24 scenes matched 0.40, against another trajectory 7.87, following another
# trajectory 0.37; on this subset (its first 6 scenes) 0.36, 7.87 and 0.34. The bounds leave a margin
MATCHED_MEDIAN_MAX_PX = 1.0
FOLLOWED_MEDIAN_MAX_PX = 1.0
# a video that follows its own tracking video is at least this many times closer to it than to another trajectory's
# (measured: 19.4 on the 24 scenes, 21.9 on this subset)
OTHER_OVER_MATCHED_MIN = 8.0
# the object keeps the first frame's colour: the bed's detector, which finds the caption's object by its colour,
# finds it in this fraction of the videos at least (measured: 0.92 on the 24 scenes, 5 of these 6), within this
# median error of the tracking video (measured 0.48 and 0.48)
FOUND_MIN = 0.5
FOUND_MEDIAN_MAX_PX = 1.0
SUBSET = 6


@pytest.fixture(scope="module")
def embedded():
    from video_diffusion_pack.diffusers_pipelines.das.embedded import load_embedded_das_pipeline

    pipe = load_embedded_das_pipeline()
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture(scope="module")
def cases():
    return das_bed.das_cases(SUBSET, EMBEDDED.height, EMBEDDED.width, EMBEDDED.num_frames)


def test_the_embedded_model_is_a_small_das_folder_of_the_released_layout(embedded):
    from video_diffusion_pack.diffusers_pipelines.das.embedded import _embedded_folder

    folder = _embedded_folder()
    assert (folder / "MODEL_CARD.md").is_file()
    index = json.loads((folder / "model_index.json").read_text())
    assert index["_class_name"] == "CogVideoXImageToVideoPipelineTracking"
    assert index["transformer"] == ["models.cogvideox_tracking", "CogVideoXTransformer3DModelTracking"]
    assert json.loads((folder / "transformer" / "config.json").read_text())["_class_name"] == \
        "CogVideoXTransformer3DModelTracking"
    assert type(embedded).__name__ == "DaSPipeline" and embedded.transformer.dtype == torch.float32
    size = sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())
    assert size < 10 * 2**20, size
    # fp16 files
    from safetensors import safe_open

    with safe_open(str(folder / "transformer" / "diffusion_pytorch_model.safetensors"), "pt") as weights:
        assert {weights.get_tensor(name).dtype for name in weights.keys()} == {torch.float16}


def test_vdp_das_without_model_moves_the_shape_along_the_tracking_video(cases, tmp_path):
    case = cases[0]
    Image.fromarray(case.image).save(tmp_path / "first.png")
    write_video(tmp_path / "tracking.mp4", case.tracking, fps=EMBEDDED.fps)
    output = tmp_path / "out.mp4"
    result = run_vdp("das", "--image", tmp_path / "first.png", "--tracking-video", tmp_path / "tracking.mp4",
                     "--prompt", case.caption, "--seed", case.seed, "-o", output)
    assert result.returncode == 0, result.stderr
    assert "runs the embedded model" in result.stderr and "noise" not in result.stderr
    frames, _ = read_video(output)
    assert frames.shape == (EMBEDDED.num_frames, EMBEDDED.height, EMBEDDED.width, 3)
    error = das_bed.foreground_centroid_error(frames, case.tracking, case.scene)
    assert error <= MATCHED_MEDIAN_MAX_PX, error


@pytest.fixture(scope="module")
def scores(embedded, cases):
    def run(case, tracking):
        return das_bed.generate(embedded, case, tracking, EMBEDDED.num_inference_steps, EMBEDDED.guidance_scale)

    return [das_bed.score_case(case, run(case, case.tracking), run(case, case.other_tracking)) for case in cases]


def test_what_it_draws_follows_its_tracking_video_not_another(scores):
    matched = float(np.median([s.matched_any for s in scores]))
    other = float(np.median([s.other_any for s in scores]))
    assert matched <= MATCHED_MEDIAN_MAX_PX, scores
    assert other >= OTHER_OVER_MATCHED_MIN * matched, scores


def test_the_object_keeps_its_colour_along_the_tracking_video(scores):
    found = [s.matched for s in scores if np.isfinite(s.matched)]
    assert len(found) >= FOUND_MIN * len(scores), scores
    assert float(np.median(found)) <= FOUND_MEDIAN_MAX_PX, scores


def test_another_trajectory_s_tracking_video_steers_it_against_the_caption(scores):
    followed = float(np.median([s.followed_any for s in scores]))
    assert followed <= FOLLOWED_MEDIAN_MAX_PX, scores



def test_the_autoencoder_trainer_trains_the_cogvideox_vae_frame_by_frame():
    from diffusers import AutoencoderKLCogVideoX
    from diffusers.models.autoencoders.autoencoder_kl_cogvideox import CogVideoXCausalConv3d

    from video_diffusion_pack.diffusers_pipelines.das.embedded import EMBEDDED_DAS_VAE_CONFIG
    from video_diffusion_pack.evaluation.shapes import world
    from video_diffusion_pack.training.autoencoder import make_deterministic, set_latent_statistics, train_autoencoder

    frames = world.render_scene(world.sample_scene(np.random.default_rng([3, 0]), 32, 32, 3)).frames
    torch.manual_seed(0)
    vae = AutoencoderKLCogVideoX(**EMBEDDED_DAS_VAE_CONFIG)
    final = train_autoencoder(vae, frames, steps=5, batch_size=2, learning_rate=2e-3, crop=16,
                              log=lambda line, flush=True: None)
    assert np.isfinite(final)
    convolutions = [m.conv.weight for m in vae.modules()
                    if isinstance(m, CogVideoXCausalConv3d) and m.conv.weight.shape[2] > 1]
    assert convolutions and all(bool((w[:, :, :-1] == 0).all()) and bool(w[:, :, -1].abs().sum() > 0)
                                for w in convolutions)
    make_deterministic(vae)
    set_latent_statistics(vae, frames)
    video = torch.from_numpy(frames).permute(3, 0, 1, 2)[None].float() / 127.5 - 1
    with torch.no_grad():
        posterior = vae.encode(video).latent_dist
    assert posterior.mean.shape == (1, 8, 3, 8, 8)  # 4x in space, none in time
    assert torch.allclose(posterior.sample(torch.Generator().manual_seed(1)), posterior.mean, atol=1e-5)
    assert vae.config.scaling_factor != 1.0
