"""``patch_one_start``: the copy of a Vchitect pipeline folder whose transformer reads one latent pixel a token, the
start of the embedded model's patch-1 stage. Checked against what the old transformer computes, not against the
function's own formulas."""

import pytest
import torch

from video_diffusion_pack.diffusers_pipelines.vchitect.embedded import patch_one_start, save_embedded_start
from video_diffusion_pack.models.vchitect_transformer import VchitectXLTransformer3DModel


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("patch_one")
    source = save_embedded_start(root / "start", seed=3)
    return source, patch_one_start(source, root / "patch_one")


@pytest.fixture(scope="module")
def models(folders):
    source, destination = folders
    return tuple(VchitectXLTransformer3DModel.from_pretrained(folder / "transformer", torch_dtype=torch.float32)
                 for folder in (source, destination))


def test_only_the_patch_size_changes_in_the_config_and_the_rest_of_the_folder_is_copied(folders, models):
    old, new = models
    assert old.config.patch_size == 2 and new.config.patch_size == 1
    def kept(config):
        return {k: v for k, v in config.items() if k not in ("patch_size", "_name_or_path")}

    assert kept(new.config) == kept(old.config)
    source, destination = folders
    for part in ("vae", "text_encoder_3", "tokenizer_3", "scheduler"):
        assert sorted(p.name for p in (destination / part).iterdir()) == sorted(p.name for p in (source / part).iterdir())
    old_state, new_state = old.state_dict(), new.state_dict()
    changed = {"pos_embed.proj.weight", "proj_out.weight", "proj_out.bias", "pos_embed.pos_embed"}
    assert set(old_state) == set(new_state)
    for name in set(old_state) - changed:
        torch.testing.assert_close(new_state[name], old_state[name], rtol=0, atol=0)


def test_a_pixel_token_embeds_as_the_old_token_of_equal_pixels(models):
    old, new = models
    patches = torch.randn(1, 16, 6, 6)
    constant = patches.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)  # [1, 16, 12, 12], constant per patch
    with torch.no_grad():
        old_tokens = old.pos_embed.proj(constant)  # [1, D, 6, 6]
        new_tokens = new.pos_embed.proj(constant)  # [1, D, 12, 12]
    expected = old_tokens.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)
    torch.testing.assert_close(new_tokens, expected, rtol=1e-5, atol=1e-5)


def test_the_output_projection_writes_the_mean_of_what_the_old_one_wrote_in_the_patch(models):
    old, new = models
    hidden = torch.randn(5, old.inner_dim)
    with torch.no_grad():
        old_out = old.proj_out(hidden).reshape(5, 2, 2, old.config.out_channels)  # layout (p q c)
        new_out = new.proj_out(hidden)
    torch.testing.assert_close(new_out, old_out.mean(dim=(1, 2)), rtol=1e-5, atol=1e-5)


def _positions(model, size):
    """The x position each column of the model's cropped table encodes, read back from its lowest-frequency pair
    (2-D sine-cosine tables: channel 0 is sin(x), channel D/4 is cos(x))."""
    table = model.pos_embed.cropped_pos_embed(size, size)[0].reshape(size // model.config.patch_size, -1,
                                                                       model.inner_dim)
    row = table[0]
    return torch.atan2(row[:, 0], row[:, model.inner_dim // 4])


def test_each_pixel_sits_at_its_place_inside_the_old_token(models):
    old, new = models
    old_x = _positions(old, 12)  # 6 tokens
    new_x = _positions(new, 12)  # 12 pixels
    spacing = float(old_x[1] - old_x[0])
    assert spacing > 0
    # the two pixels of token j straddle its position, a quarter of a token either side
    torch.testing.assert_close(new_x[0::2], old_x - spacing / 4, rtol=0, atol=1e-5)
    torch.testing.assert_close(new_x[1::2], old_x + spacing / 4, rtol=0, atol=1e-5)


def test_the_copy_generates_a_video_of_the_requested_size(folders):
    from video_diffusion_pack.diffusers_pipelines.vchitect import VchitectRepVideoPipeline

    pipe = VchitectRepVideoPipeline.from_pretrained(str(folders[1]))
    pipe.set_progress_bar_config(disable=True)
    frames = pipe(prompt="a red circle moving right on a blue background", height=48, width=48, num_frames=4,
                  num_inference_steps=2, generator=torch.Generator().manual_seed(0), output_type="np").frames
    assert frames.shape == (1, 4, 48, 48, 3)


def test_a_folder_already_at_patch_one_is_refused(folders, tmp_path):
    with pytest.raises(ValueError, match=r"already has patch_size=1"):
        patch_one_start(folders[1], tmp_path / "again")
    assert not (tmp_path / "again").exists()
