"""Local-learning settings: group bounds, AugLocal's selection rule and the refused combinations."""

import pytest

from video_diffusion_pack.training.local_learning import (
    LocalLearningConfig,
    check_training_setup,
    parse_cut_points,
)


def test_groups_split_blocks_evenly_earlier_groups_taking_the_extra():
    assert LocalLearningConfig("infopro", groups=4).group_bounds(12) == [(0, 3), (3, 6), (6, 9), (9, 12)]
    assert LocalLearningConfig("infopro", groups=3).group_bounds(7) == [(0, 3), (3, 5), (5, 7)]


def test_cut_points_start_the_groups():
    config = LocalLearningConfig("man", cut_points=(4, 8))
    assert config.num_groups == 3
    assert config.group_bounds(12) == [(0, 4), (4, 8), (8, 12)]
    assert parse_cut_points("4,8") == (4, 8)


@pytest.mark.parametrize("groups", [0, 1])
def test_fewer_than_two_groups_is_refused(groups):
    with pytest.raises(ValueError, match=f"groups={groups} must be an integer >= 2"):
        LocalLearningConfig("auglocal", groups=groups)


def test_more_groups_than_blocks_is_refused():
    with pytest.raises(ValueError, match="groups=7 is more than the denoiser's 6 blocks; allowed: 2..6"):
        LocalLearningConfig("auglocal", groups=7).group_bounds(6)


def test_unordered_or_out_of_range_cut_points_are_refused():
    with pytest.raises(ValueError, match=r"cut_points=\(8, 4\) must be strictly increasing"):
        LocalLearningConfig("hpff", cut_points=(8, 4))
    with pytest.raises(ValueError, match=r"every cut must be in 1..11"):
        LocalLearningConfig("hpff", cut_points=(4, 12)).group_bounds(12)
    with pytest.raises(ValueError, match="must be comma-separated block indices"):
        parse_cut_points("4;8")


def test_groups_and_cut_points_are_exclusive():
    with pytest.raises(ValueError, match="exactly one of groups and cut_points"):
        LocalLearningConfig("man", groups=2, cut_points=(3,))
    with pytest.raises(ValueError, match="exactly one of groups and cut_points"):
        LocalLearningConfig("man")


def test_unknown_mode_is_refused():
    with pytest.raises(ValueError, match="mode='dgl' is not one of auglocal, man, hpff, infopro"):
        LocalLearningConfig("dgl", groups=2)


@pytest.mark.parametrize(
    "mode, option, owner",
    [("man", {"wx": 0.1}, "hpff"), ("hpff", {"momentum": 0.9}, "man"), ("infopro", {"aux_depth": 3}, "auglocal")],
)
def test_an_option_of_another_mode_is_refused(mode, option, owner):
    (name, value), = option.items()
    with pytest.raises(ValueError, match=f"{name}={value} is an option of local-learning mode '{owner}'"):
        LocalLearningConfig(mode, groups=2, **option)


def test_each_mode_gets_the_official_defaults():
    assert (LocalLearningConfig("auglocal", groups=2).aux_depth, LocalLearningConfig("auglocal", groups=2).pyramid_coeff) == (2, 0.5)
    assert LocalLearningConfig("man", groups=2).momentum == 0.995
    hpff = LocalLearningConfig("hpff", groups=2)
    assert (hpff.wx, hpff.wy, hpff.patches) == (0.001, 0.999, 2)
    assert LocalLearningConfig("hpff", groups=2).momentum is None


@pytest.mark.parametrize(
    "kwargs, message",
    [({"mode": "man", "momentum": 1.5}, "momentum=1.5 must be in"), ({"mode": "hpff", "wx": 0, "wy": 0}, "at least one"),
     ({"mode": "hpff", "patches": 0}, "patches=0 must be an integer >= 1"),
     ({"mode": "auglocal", "pyramid_coeff": float("nan")}, "pyramid_coeff=nan must be a finite number")],
)
def test_bad_option_values_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        LocalLearningConfig(groups=2, **kwargs)


def test_auglocal_selects_uniformly_from_later_blocks_ending_at_the_last():
    # 16 blocks, one a group except the last three (as the official code merges them), no pyramid:
    # block 0 copies round(0 + 15/2 * j) = [8, 15]; block 12 copies round(12 + 3/2 * j) = [14, 15]
    config = LocalLearningConfig("auglocal", cut_points=tuple(range(1, 14)), pyramid_coeff=0.0)
    selection = config.auglocal_selection(16)
    assert selection[0] == [8, 15]
    assert selection[12] == [14, 15]
    assert all(indices[-1] == 15 for indices in selection)


def test_auglocal_pyramid_depth_falls_linearly():
    # d=4, tau=0.5, 5 auxiliary networks: round(4 - 3 * 0.5 * i / 4) = round(4, 3.625, 3.25, 2.875, 2.5) = 4, 4, 3, 3, 2
    config = LocalLearningConfig("auglocal", groups=6, aux_depth=4, pyramid_coeff=0.5)
    assert [len(indices) for indices in config.auglocal_selection(24)] == [4, 4, 3, 3, 2]


def test_lora_and_gradient_checkpointing_are_refused_with_local_learning():
    config = LocalLearningConfig("auglocal", groups=2)
    with pytest.raises(ValueError, match="training_type='lora' with local_learning='auglocal': only full"):
        check_training_setup(config, training_type="lora", gradient_checkpointing=False)
    with pytest.raises(ValueError, match="gradient_checkpointing=0.5 with local_learning='auglocal'.*allowed: "
                                         "gradient_checkpointing=0"):
        check_training_setup(config, training_type="full", gradient_checkpointing=0.5)
    check_training_setup(config, training_type="full", gradient_checkpointing=0.0)
