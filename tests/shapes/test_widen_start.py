"""``widen_start``: the copy of a Vchitect pipeline folder whose transformer has twice the heads, computing what
the old transformer computes. Checked against the old transformer's outputs and gradients, not the function's own
weight formulas."""

import pytest
import torch

from video_diffusion_pack.diffusers_pipelines.vchitect.embedded import save_embedded_start, widen_start
from video_diffusion_pack.models.vchitect_transformer import VchitectXLTransformer3DModel


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("widen")
    source = save_embedded_start(root / "start", seed=3)
    return source, widen_start(source, root / "wide", seed=1)


@pytest.fixture(scope="module")
def models(folders):
    return tuple(VchitectXLTransformer3DModel.from_pretrained(folder / "transformer", dtype=torch.float32).eval()
                 for folder in folders)


def _inputs(model, seed=0):
    generator = torch.Generator().manual_seed(seed)
    cfg = model.config
    return (torch.randn(2, 4, cfg.in_channels, 12, 12, generator=generator),
            torch.randn(2, 48, cfg.joint_attention_dim, generator=generator),
            torch.randn(2, cfg.pooled_projection_dim, generator=generator),
            torch.tensor([120.0, 870.0]))


def test_twice_the_heads_of_the_same_size_and_the_rest_of_the_folder_is_copied(folders, models):
    old, new = models
    assert new.config.num_attention_heads == 2 * old.config.num_attention_heads
    assert new.config.attention_head_dim == old.config.attention_head_dim
    assert new.inner_dim == 2 * old.inner_dim
    unchanged = {k: v for k, v in old.config.items()
                 if k not in ("num_attention_heads", "caption_projection_dim", "_name_or_path")}
    assert {k: new.config[k] for k in unchanged} == unchanged
    source, destination = folders
    for part in ("vae", "text_encoder", "tokenizer_3", "scheduler"):
        assert sorted(p.name for p in (destination / part).iterdir()) == sorted(p.name for p in (source / part).iterdir())
    # far more parameters: every width-by-width layer holds four times as many weights
    assert sum(p.numel() for p in new.parameters()) > 3.5 * sum(p.numel() for p in old.parameters())


def test_the_wider_transformer_predicts_what_the_old_one_predicts(models):
    old, new = models
    with torch.no_grad():
        expected = old(*_inputs(old)).sample
        got = new(*_inputs(new)).sample
    assert expected.abs().mean() > 0.1
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)


def test_the_copies_are_not_equal_weights_so_training_tells_them_apart(models):
    old, new = models
    # a layer reading the repeated width: its two halves differ (noise), and they sum to the old weight
    weight = new.transformer_blocks[0].attn.to_q.weight
    width = old.inner_dim
    first, second = weight[:width, :width], weight[:width, width:]
    assert (first - second).abs().max() > 1e-3
    torch.testing.assert_close(first + second, old.transformer_blocks[0].attn.to_q.weight, rtol=1e-5, atol=1e-6)
    # one step of gradient moves the repeated rows of the previous layer differently
    new.zero_grad()
    new(*_inputs(new, seed=1)).sample.square().mean().backward()
    grad = new.context_embedder.weight.grad
    assert (grad[:width] - grad[width:]).abs().max() > 1e-6


def test_same_seed_same_copy(folders, tmp_path):
    source, destination = folders
    again = widen_start(source, tmp_path / "again", seed=1)
    other = widen_start(source, tmp_path / "other", seed=2)
    first, second, third = (VchitectXLTransformer3DModel.from_pretrained(f / "transformer").state_dict()
                            for f in (destination, again, other))
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert not all(torch.equal(first[k], third[k]) for k in first)
