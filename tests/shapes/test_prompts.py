"""The quality bed's two-object prompt set: spatial-relation prompts in the world's grammar, balanced, with their own
seeds, and told apart as seen or unseen by the training captions."""

import collections

from video_diffusion_pack.evaluation.shapes.prompts import (
    TRAINED_COLORS,
    TRAINED_MOTIONS,
    TRAINED_SHAPES,
    fixed_prompt_set,
    relation_prompt_set,
    unseen,
)
from video_diffusion_pack.evaluation.shapes.world import RELATIONS, parse_caption


def test_relation_prompts_name_two_different_objects_in_a_relation_on_a_third_colour():
    prompts = relation_prompt_set(24)
    assert len(prompts) == 24 and len({prompt for prompt, _ in prompts}) == 24
    for prompt, _ in prompts:
        parsed = parse_caption(prompt)
        assert len(parsed.objects) == 2 and parsed.relation in RELATIONS, prompt
        (first_color, first_shape, first_motion), (second_color, second_shape, second_motion) = parsed.objects
        assert first_color != second_color and first_shape != second_shape, prompt
        assert first_motion == second_motion and first_motion in TRAINED_MOTIONS, prompt
        assert {first_color, second_color} <= set(TRAINED_COLORS) and {first_shape, second_shape} <= set(
            TRAINED_SHAPES), prompt
        assert len(parsed.background) == 1 and parsed.background[0] not in (first_color, second_color), prompt
    assert collections.Counter(parse_caption(prompt).relation for prompt, _ in prompts) == {
        relation: 6 for relation in RELATIONS}
    assert collections.Counter(parse_caption(prompt).objects[0][0] for prompt, _ in prompts) == {
        color: 4 for color in TRAINED_COLORS}


def test_relation_prompts_have_seeds_of_their_own_and_a_shorter_set_is_a_prefix():
    seeds = [seed for _, seed in relation_prompt_set(24)]
    assert len(set(seeds)) == 24
    assert not set(seeds) & {seed for _, seed in fixed_prompt_set(24)}
    assert relation_prompt_set(8) == relation_prompt_set(24)[:8]


def test_unseen_relation_prompts_are_those_no_training_caption_has():
    prompts = [prompt for prompt, _ in relation_prompt_set(8)]
    training = prompts[:3] + ["a red circle moving left on a blue background"]
    assert unseen(prompts, training) == prompts[3:]
