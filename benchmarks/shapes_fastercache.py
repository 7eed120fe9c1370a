"""FasterCache on a text-to-video model trained on the shapes world: uncached vs the pack's FasterCache vs diffusers'
own FasterCache hook, side by side in one process.

    python benchmarks/shapes_fastercache.py [MODEL_FOLDER] [--count 24] [--steps N] [--repeats 2] [--threads 1]

MODEL_FOLDER is a `VchitectRepVideoPipeline` folder (default: the shipped embedded model). Every run samples the
bed's fixed prompts with the same seeds at the model's default settings (guidance batched in one call a step).

Runs:
- uncached;
- ours (`apply_faster_cache`) with named presets, and with diffusers' default schedule written as fractions;
- diffusers' hook as its public API attaches it: `pipe.transformer.enable_cache(diffusers.FasterCacheConfig(...))`
  with diffusers' defaults (attention skip range 2 over t < 681, w 0.5, unconditional skip range 5 over t < 641,
  low frequencies x1.1 over 99 < t < 901, high x1.1 below 301), `tensor_format="BFCHW"`, the timestep read from
  the transformer call, and `pooled_projections` added to the inputs it splits into branches (without it the
  skipped call fails). Its attention hook attaches only to diffusers' attention classes (`Attention`,
  `AttentionModuleMixin`): `VchitectAttention` is neither, so this run has CFG-Cache only;
- diffusers' hook with its attention hook too: diffusers' own `_apply_faster_cache_on_attention_class` registered on
  the `transformer_blocks.*.attn` modules it can serve. The last block's attention returns `(video, None)` (its text
  output is discarded) and diffusers' hook cannot cache a None, so that block computes its attention always.

Reported: process CPU seconds per video (median over the rounds; order rotated each round) and speed-up over
uncached; the peak bytes the cache holds (ours: `FasterCache.peak_cache_bytes`; diffusers: the tensors its hooks
keep, read after every step, each storage counted once); fidelity against the uncached videos (PSNR of the decoded
uint8 frames, mean over the videos) and the bed's prompt following (colour, shape, direction, background) with the
fraction of videos whose colour / shape / direction verdicts all equal the uncached ones.
"""

import argparse
import json
import statistics

import numpy as np
import torch
from faster_cache import diffusers_cache_bytes  # benchmarks/ is on the path
from shapes_common import fmt, header, load, run_set, settings, summary, video_psnr


class Timestep:
    """Records the timestep of each transformer call, for diffusers' `current_timestep_callback`."""

    def __init__(self, transformer):
        self.value = 1000.0
        self.handle = transformer.register_forward_pre_hook(self._record, with_kwargs=True)

    def _record(self, module, args, kwargs):
        timestep = kwargs.get("timestep")
        if timestep is not None:
            self.value = float(timestep.flatten()[0]) if torch.is_tensor(timestep) else float(timestep)

    def __call__(self):
        return self.value


def diffusers_config(timestep):
    from diffusers import FasterCacheConfig as DiffusersFasterCacheConfig
    from diffusers.hooks.faster_cache import _UNCOND_COND_INPUT_KWARGS_IDENTIFIERS

    return DiffusersFasterCacheConfig(
        current_timestep_callback=timestep, attention_weight_callback=lambda _: 0.5, tensor_format="BFCHW",
        _unconditional_conditional_input_kwargs_identifiers=list(_UNCOND_COND_INPUT_KWARGS_IDENTIFIERS)
        + ["pooled_projections"])


def diffusers_schedule_as_fractions(pipe, steps):
    """Our config with diffusers' default timestep ranges turned into fractions of this model's trajectory."""
    from video_diffusion_pack import FasterCacheConfig

    pipe.scheduler.set_timesteps(steps)
    timesteps = [float(t) for t in pipe.scheduler.timesteps]

    def first(condition):
        return next((i for i, t in enumerate(timesteps) if condition(t)), steps) / steps

    start = first(lambda t: t < 641)
    return FasterCacheConfig(start_fraction=min(start, 0.99), attention_start_fraction=min(first(lambda t: t < 681), 0.99),
                             attention_interval=2, attention_weight=0.5, uncond_interval=5,
                             low_frequency_end_fraction=first(lambda t: t <= 99),
                             high_frequency_start_fraction=first(lambda t: t < 301), radius_divisor=5)


class Variant:
    def __init__(self, name, enable=None, disable=None, cache_bytes=None, peak_after=None):
        self.name, self.enable, self.disable = name, enable, disable
        self.cache_bytes, self.peak_after = cache_bytes, peak_after
        self.cpu, self.run, self.peak = [], None, 0
        self.notes = ""


def ours(name, config):
    from video_diffusion_pack.hooks.faster_cache import apply_faster_cache, faster_cache_of, remove_faster_cache

    variant = Variant(name, enable=lambda pipe: apply_faster_cache(pipe, config), disable=remove_faster_cache)
    variant.peak_after = lambda pipe: faster_cache_of(pipe).peak_cache_bytes
    return variant


def diffusers_variant(name, timestep, with_attention):
    def enable(pipe):
        config = diffusers_config(timestep)
        pipe.transformer.enable_cache(config)
        hooked = []
        if with_attention:
            from diffusers.hooks.faster_cache import _apply_faster_cache_on_attention_class

            blocks = pipe.transformer.transformer_blocks
            for index, block in enumerate(blocks):
                if not block.attn.context_pre_only:  # the last block's attention returns (video, None)
                    _apply_faster_cache_on_attention_class(f"transformer_blocks.{index}.attn", block.attn, config)
                    hooked.append(index)
        variant.notes = f"attention hooks on blocks {hooked or 'none'} of {len(pipe.transformer.transformer_blocks)}"

    variant = Variant(name, enable=enable, disable=lambda pipe: pipe.transformer.disable_cache(),
                      cache_bytes=lambda pipe: diffusers_cache_bytes(pipe.transformer))
    return variant


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", nargs="?", help="VchitectRepVideoPipeline folder (default: the embedded model)")
    parser.add_argument("--count", type=int, default=24, help="prompts of the fixed set (default 24)")
    parser.add_argument("--steps", type=int, help="sampling steps (default: the model's default)")
    parser.add_argument("--repeats", type=int, default=2, help="timed rounds, order rotated (default 2)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--ours", action="append", default=[], metavar="JSON",
                        help='another run of ours: FasterCacheConfig fields as JSON, e.g. \'{"start_fraction": 0.5}\' '
                             '(a "preset" key starts from that preset); repeatable')
    args = parser.parse_args(argv)
    for name in ("count", "repeats"):
        if getattr(args, name) < 1:
            parser.error(f"argument --{name}: {getattr(args, name)} must be >= 1")
    torch.set_num_threads(args.threads)
    import diffusers
    from diffusers.utils import logging as diffusers_logging

    from video_diffusion_pack import FasterCacheConfig
    from video_diffusion_pack.evaluation.shapes.prompts import fixed_prompt_set
    from video_diffusion_pack.hooks.faster_cache import FASTER_CACHE_PRESETS

    diffusers_logging.set_verbosity_error()  # diffusers' hook warns that it is experimental on every enable
    pipe, folder = load(args.model)
    config = settings(args.steps)
    prompts = fixed_prompt_set(args.count)
    header(f"FasterCache, shapes bed (diffusers {diffusers.__version__})", folder, config, len(prompts))
    timestep = Timestep(pipe.transformer)
    variants = [Variant("uncached")]
    variants += [ours(f"ours, `{preset}` preset", FasterCacheConfig.preset(preset)) for preset in FASTER_CACHE_PRESETS]
    for text in args.ours:
        fields = json.loads(text)
        variants.append(ours(f"ours, {text}", FasterCacheConfig.preset(fields.pop("preset", "default"), **fields)))
    variants.append(ours("ours, diffusers' default schedule as fractions",
                         diffusers_schedule_as_fractions(pipe, config.num_inference_steps)))
    variants.append(diffusers_variant("diffusers `enable_cache(FasterCacheConfig)` (CFG-Cache only: attention hook "
                                      "does not attach)", timestep, with_attention=False))
    variants.append(diffusers_variant("diffusers' hooks, attention hook registered on VchitectAttention", timestep,
                                      with_attention=True))

    for round_index in range(args.repeats):
        shift = round_index % len(variants)
        for variant in variants[shift:] + variants[:shift]:
            peak = [0]

            def measure(pipeline, step, t, tensors, variant=variant, peak=peak):
                if variant.cache_bytes is not None:
                    peak[0] = max(peak[0], variant.cache_bytes(pipeline))
                return tensors

            if variant.enable:
                variant.enable(pipe)
            try:
                run = run_set(pipe, prompts, config, callback_on_step_end=measure)
                if variant.peak_after is not None:
                    peak[0] = max(peak[0], variant.peak_after(pipe))
            finally:
                if variant.disable:
                    variant.disable(pipe)
            variant.cpu.append(run.cpu_seconds / len(prompts))
            variant.peak = max(variant.peak, peak[0])
            if variant.run is None:
                variant.run = run
            print(f"  round {round_index + 1}: {variant.name}: {variant.cpu[-1]:.3f} CPU s/video "
                  f"({run.wall_seconds / len(prompts):.2f} s wall) {variant.notes}", flush=True)

    reference = variants[0]
    base = statistics.median(reference.cpu)
    print("| run | CPU s/video | speed-up | cache peak KiB | PSNR dB vs uncached | colour | shape | direction "
          "| background | verdicts as uncached |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for variant in variants:
        seconds = statistics.median(variant.cpu)
        scores = summary(variant.run)
        psnr = float(np.mean([min(video_psnr(video, ref), 100.0)
                              for video, ref in zip(variant.run.videos, reference.run.videos)]))
        same = np.mean([(a.color, a.shape, a.motion) == (b.color, b.shape, b.motion)
                        for a, b in zip(variant.run.scores, reference.run.scores)])
        memory = "-" if variant is reference else f"{variant.peak / 1024:.1f}"
        print(f"| {variant.name} | {seconds:.3f} | {base / seconds:.2f}x | {memory} | "
              f"{'-' if variant is reference else fmt(psnr, 1)} | {fmt(scores['color'])} | {fmt(scores['shape'])} "
              f"| {fmt(scores['motion'])} | {fmt(scores['background'])} | {same:.2f} |", flush=True)
    for variant in variants:
        print(f"  {variant.name}: CPU s/video per round {', '.join(f'{t:.3f}' for t in variant.cpu)} {variant.notes}")
    timestep.handle.remove()


if __name__ == "__main__":
    main()
