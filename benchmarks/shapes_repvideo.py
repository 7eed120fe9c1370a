"""RepVideo on vs off on text-to-video models trained on the shapes world: spatial-relation accuracy and temporal
consistency (the paper's two claims), side by side in one process.

    python benchmarks/shapes_repvideo.py WITH_FOLDER [WITHOUT_FOLDER] [--training-metadata metadata.jsonl]
                                         [--count 24] [--relation-count 24] [--threads 1]

WITH_FOLDER and WITHOUT_FOLDER are `VchitectRepVideoPipeline` folders trained the same way (same data, steps and
seed) with and without RepVideo's cross-layer aggregation (`repvideo_aggregation` in the transformer config);
WITH_FOLDER defaults to the shipped embedded model. Rows, each on the same prompts and seeds:

- trained with the aggregation (WITH_FOLDER);
- trained without it (WITHOUT_FOLDER; left out when not given);
- secondary: WITH_FOLDER's weights with the aggregation switched off at inference (`repvideo_switched(False)`).

Prompt groups, each its own row: the bed's one-object prompts (`fixed_prompt_set`) and the two-object prompts with a
spatial relation (`relation_prompt_set`); with `--training-metadata` (the training data's metadata.jsonl), each group
is split further into prompts seen and unseen in training (`prompts.unseen`). Scores: relation accuracy (two-object
prompts: the first object's centroid is where the prompt says relative to the second's, at the first frame both are
seen), temporal consistency (centroid-aligned mask IoU of each named object between consecutive frames, change of
its mean colour; a missing object counts IoU 0, drift 1), VBench temporal flickering, and colour / shape / direction
/ object count for context.
"""

import argparse
import contextlib

import torch
from shapes_common import fmt, header, load, run_set, settings, summary, training_captions


def aggregation_of(pipe) -> str:
    repvideo = pipe.transformer.repvideo
    return "off" if repvideo is None else f"on (window {repvideo.window_size})"


def groups(name, prompts, captions):
    """(label, indices) of a prompt group, split into seen and unseen when the training captions are known."""
    from video_diffusion_pack.evaluation.shapes.prompts import unseen

    everything = list(range(len(prompts)))
    if captions is None:
        return [(name, everything)]
    new = set(unseen([prompt for prompt, _ in prompts], captions))
    fresh = [i for i in everything if prompts[i][0] in new]
    seen = [i for i in everything if prompts[i][0] not in new]
    return [(f"{name}, all", everything), (f"{name}, seen in training", seen), (f"{name}, unseen", fresh)]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("with_aggregation", nargs="?",
                        help="folder trained with RepVideo's aggregation (default: the embedded model)")
    parser.add_argument("without_aggregation", nargs="?", help="folder trained without it, same steps")
    parser.add_argument("--training-metadata", help="the training data's metadata.jsonl: unseen prompts get own rows")
    parser.add_argument("--count", type=int, default=24, help="one-object prompts (default 24)")
    parser.add_argument("--relation-count", type=int, default=24, help="two-object relation prompts (default 24)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    args = parser.parse_args(argv)
    for name in ("count", "relation_count"):
        if getattr(args, name) < 1:
            parser.error(f"argument --{name.replace('_', '-')}: {getattr(args, name)} must be >= 1")
    captions = training_captions(args.training_metadata)
    torch.set_num_threads(args.threads)
    from video_diffusion_pack.evaluation.shapes.prompts import fixed_prompt_set, relation_prompt_set

    with_pipe, with_folder = load(args.with_aggregation)
    if with_pipe.transformer.repvideo is None:
        raise SystemExit(f"{with_folder}: its transformer has RepVideo's aggregation off; give the folder trained "
                         "with it first")
    models = [("trained with aggregation", with_pipe, with_folder, contextlib.nullcontext)]
    if args.without_aggregation:
        without_pipe, without_folder = load(args.without_aggregation)
        if without_pipe.transformer.repvideo is not None:
            raise SystemExit(f"{without_folder}: its transformer has RepVideo's aggregation on; give the folder "
                             "trained without it second")
        models.append(("trained without aggregation", without_pipe, without_folder, contextlib.nullcontext))
    models.append(("trained with aggregation, switched off at inference", with_pipe, with_folder,
                   lambda: with_pipe.transformer.repvideo_switched(False)))

    config = settings()
    one, two = fixed_prompt_set(args.count), relation_prompt_set(args.relation_count)
    header("RepVideo on vs off, shapes bed", with_folder, config, len(one) + len(two))
    for label, pipe, folder, _ in models[:-1]:
        print(f"  {label}: {folder} (aggregation {aggregation_of(pipe)})")
    if captions is not None:
        print(f"  training captions: {len(captions)} from {args.training_metadata}")
    else:
        print("  no training metadata given: seen and unseen prompts are not told apart")

    print("| model | prompts | n | relation | temporal IoU | colour drift | VBench temporal flickering | colour | shape "
          "| direction | count | CPU s/video |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for label, pipe, _, switch in models:
        with switch():
            runs = {"one-object": run_set(pipe, one, config), "two-object relation": run_set(pipe, two, config)}
        for group, prompts in (("one-object", one), ("two-object relation", two)):
            for name, keep in groups(group, prompts, captions):
                if not keep:
                    print(f"| {label} | {name} | 0 | - | - | - | - | - | - | - | - | - |")
                    continue
                run = runs[group].subset(keep)
                scores = summary(run)
                print(f"| {label} | {name} | {len(keep)} | {fmt(scores['relation'])} | {fmt(scores['temporal_iou'])} "
                      f"| {fmt(scores['color_drift'], 4)} | {fmt(scores['flickering'], 4)} | {fmt(scores['color'])} "
                      f"| {fmt(scores['shape'])} | {fmt(scores['motion'])} | {fmt(scores['count'])} "
                      f"| {run.cpu_seconds / len(keep):.2f} |", flush=True)


if __name__ == "__main__":
    main()
