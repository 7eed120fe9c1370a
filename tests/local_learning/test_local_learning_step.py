"""The local-learning step on a tiny Vchitect-2.0 transformer: isolation, MAN's EMA, memory, training, export."""

import pytest
import safetensors.torch
import torch
from conftest import mse

from video_diffusion_pack.training.local_learning import LocalLearner, LocalLearningConfig, SavedActivationMeter


def _learner(tiny, config):
    return LocalLearner(config, tiny.model.transformer_blocks, [tiny.model.norm_out, tiny.model.proj_out])


def _reached_groups(tiny, bounds):
    """A backward that records, per local loss, which groups' parameters (and the prelude) got a nonzero gradient."""
    groups = tiny.group_parameters(bounds)
    prelude = [*tiny.model.pos_embed.parameters(), *tiny.model.time_text_embed.parameters(),
               *tiny.model.context_embedder.parameters()]
    reached = []

    def backward(loss, retain_graph=False):
        flat = [p for group in groups for p in group] + prelude
        grads = torch.autograd.grad(loss, flat, allow_unused=True, retain_graph=True)
        nonzero = [g is not None and bool(g.abs().sum() > 0) for g in grads]
        hits, offset = set(), 0
        for index, group in enumerate(groups):
            if any(nonzero[offset:offset + len(group)]):
                hits.add(index)
            offset += len(group)
        if any(nonzero[offset:]):
            hits.add("prelude")
        reached.append(hits)
        loss.backward(retain_graph=retain_graph)

    return backward, reached


@pytest.mark.parametrize("mode", ["infopro", "auglocal", "man"])
@pytest.mark.parametrize("repvideo", [False, True])
def test_no_gradient_crosses_a_group_boundary(tiny_vchitect, mode, repvideo):
    tiny = tiny_vchitect(num_layers=6, repvideo=repvideo)
    config = LocalLearningConfig(mode, groups=3)
    backward, reached = _reached_groups(tiny, config.group_bounds(6))
    _learner(tiny, config).step(tiny.stages(), mse, backward)
    assert reached == [{0, "prelude"}, {1}, {2}]


@pytest.mark.parametrize("repvideo", [False, True])
def test_hpff_cascade_reaches_exactly_the_previous_and_own_group(tiny_vchitect, repvideo):
    tiny = tiny_vchitect(num_layers=8, repvideo=repvideo)
    config = LocalLearningConfig("hpff", groups=4)
    backward, reached = _reached_groups(tiny, config.group_bounds(8))
    result = _learner(tiny, config).step(tiny.stages(), mse, backward)
    # group 0 has no loss of its own; group i's cascade loss reaches groups i-1 and i (group 0 with the prelude), its
    # independent loss group i alone (backpropagated one after the other)
    assert reached == [{0, 1, "prelude"}, {1}, {1, 2}, {2}, {2, 3}, {3}]
    assert result.group_losses[0] is None


def test_grouped_forward_gives_the_models_own_loss(tiny_vchitect):
    tiny = tiny_vchitect(num_layers=6, repvideo=True)
    expected = tiny.main_loss()
    result = _learner(tiny, LocalLearningConfig("infopro", groups=3)).step(tiny.stages(), mse)
    assert result.loss.item() == pytest.approx(expected, rel=1e-5)


def test_man_ema_follows_the_formula_and_only_the_trainable_copy_learns(tiny_vchitect):
    tiny = tiny_vchitect(num_layers=4)
    learner = _learner(tiny, LocalLearningConfig("man", groups=2, momentum=0.9))
    network = learner.auxiliary["0"]
    assert network.block_indices == [2]  # the first block of the next group
    with torch.no_grad():
        for parameter in network.ema_blocks.parameters():
            parameter.add_(torch.randn_like(parameter))
    before = {n: p.clone() for n, p in network.ema_blocks[0].named_parameters()}
    live = dict(tiny.model.transformer_blocks[2].named_parameters())
    learner.step(tiny.stages(), mse)
    for name, parameter in network.ema_blocks[0].named_parameters():
        torch.testing.assert_close(parameter, 0.9 * before[name] + 0.1 * live[name].detach(), rtol=0, atol=1e-6)
        assert parameter.grad is None and not parameter.requires_grad
    # the trainable copy learns (its text-stream outputs feed nothing, so only the video path has gradients)
    assert network.blocks[0].attn.to_q.weight.grad.abs().sum() > 0
    assert set(map(id, learner.trainable_parameters())).isdisjoint(map(id, network.ema_blocks.parameters()))


def test_auglocal_copies_are_freshly_initialised_and_hold_no_shared_weights(tiny_vchitect):
    tiny = tiny_vchitect(num_layers=6)
    learner = _learner(tiny, LocalLearningConfig("auglocal", groups=3, aux_depth=2))
    network = learner.auxiliary["0"]
    assert network.block_indices == [3, 5]  # group 0 ends at block 1: round(1 + 4/2 * j), j = 1, 2
    copy = dict(network.blocks[0].named_parameters())
    real = dict(tiny.model.transformer_blocks[3].named_parameters())
    assert not torch.equal(copy["attn.to_q.weight"], real["attn.to_q.weight"])
    assert {id(p) for p in learner.parameters()}.isdisjoint(id(p) for p in tiny.model.parameters())


def _peak_saved_bytes(tiny, groups, mode="infopro"):
    if groups is None:
        with SavedActivationMeter() as meter:
            prediction = tiny.model(*tiny.inputs(), return_dict=False)[0]
            mse(prediction, tiny.noise - tiny.clean, None).backward()
        return meter.peak_bytes
    learner = _learner(tiny, LocalLearningConfig(mode, groups=groups))
    with SavedActivationMeter() as meter:
        learner.step(tiny.stages(), mse)
    return meter.peak_bytes


def test_saved_activations_alive_at_the_peak_drop_with_the_number_of_groups(tiny_vchitect):
    tiny = tiny_vchitect(num_layers=8)
    backprop = _peak_saved_bytes(tiny, None)
    peaks = {groups: _peak_saved_bytes(tiny, groups) for groups in (2, 4, 8)}
    assert peaks[2] > peaks[4] > peaks[8]
    # one group of 8/K blocks is alive, plus the prelude in group 0 and a head: about 1/K of backprop
    for groups, peak in peaks.items():
        assert peak < backprop * (1.0 / groups + 0.15), (groups, peak, backprop)


def test_hpff_holds_at_most_two_groups_graphs_at_once(tiny_vchitect):
    """The cascade window (groups i-1 and i) is backpropagated and freed before group i's independent path runs."""
    tiny = tiny_vchitect(num_layers=8)
    backprop = _peak_saved_bytes(tiny, None)
    peak = _peak_saved_bytes(tiny, 4, mode="hpff")
    assert peak < backprop * (2 / 4 + 0.15), (peak, backprop)


@pytest.mark.parametrize("mode", ["infopro", "auglocal", "man", "hpff"])
def test_every_mode_trains_the_main_network(tiny_vchitect, mode):
    tiny = tiny_vchitect(num_layers=6)
    learner = _learner(tiny, LocalLearningConfig(mode, groups=3))
    optimizer = torch.optim.Adam([*tiny.model.parameters(), *learner.trainable_parameters()], lr=2e-3)
    start = tiny.main_loss()
    for _ in range(10):
        optimizer.zero_grad()
        learner.step(tiny.stages(), mse)
        optimizer.step()
    assert tiny.main_loss() < 0.8 * start


def test_the_export_holds_exactly_the_main_networks_keys(tiny_vchitect, tmp_path):
    tiny = tiny_vchitect(num_layers=4)
    keys = set(tiny.model.state_dict())
    learner = _learner(tiny, LocalLearningConfig("man", groups=2))
    optimizer = torch.optim.Adam([*tiny.model.parameters(), *learner.trainable_parameters()], lr=1e-3)
    learner.step(tiny.stages(), mse)
    optimizer.step()
    tiny.model.save_pretrained(tmp_path)
    saved = safetensors.torch.load_file(tmp_path / "diffusion_pytorch_model.safetensors")
    assert set(saved) == keys
    assert len(learner.trainable_parameters()) > 0


def test_hpff_patches_must_divide_the_token_grid(tiny_vchitect):
    tiny = tiny_vchitect(num_layers=6)  # 8x8 latent, patch 2: a 4x4 token grid
    learner = _learner(tiny, LocalLearningConfig("hpff", groups=3, patches=3))
    with pytest.raises(ValueError, match="patches=3: the 4x4 token grid of a 8x8 latent cannot be split"):
        learner.step(tiny.stages(), mse)


def test_stages_of_another_depth_are_refused(tiny_vchitect):
    learner = _learner(tiny_vchitect(num_layers=6), LocalLearningConfig("infopro", groups=2))
    with pytest.raises(ValueError, match="the stages have 4 blocks; this local learner was built for 6"):
        learner.step(tiny_vchitect(num_layers=4).stages(), mse)
