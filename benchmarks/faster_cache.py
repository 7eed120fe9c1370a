"""FasterCache: speed, cache memory and fidelity against the uncached run and against diffusers' own FasterCache hook.

In one process, with the same random weights, prompt embeddings and initial noise, `output_type="latent"`:

- `cogvideox`: diffusers' `CogVideoXPipeline` on a reduced `CogVideoXTransformer3DModel` (CogVideoX-5B's layout:
  rotary embeddings, DPM scheduler, dynamic CFG 6; fewer layers and a smaller video), 50 steps: uncached, ours
  (`cogvideox` preset, cache in the model dtype and in bf16), diffusers' `FasterCacheConfig` with the settings
  its documentation gives for CogVideoX (`apply_faster_cache` through `transformer.enable_cache`), and ours with
  diffusers' schedule written as fractions (same reuse counts, w = 0.3).
- `vchitect`: `VchitectRepVideoPipeline` on a reduced `VchitectXLTransformer3DModel`, 100 steps, guidance 7.5:
  uncached, ours (`vchitect-2.0` preset) and ours with both residual factors at 1 (no compounding).

Reported per run: the median time and the speedup over uncached (on a CPU the process's CPU time, run with
`--threads 1`, since other jobs on the machine stretch wall time; wall time is printed too); the peak bytes the cache holds (sampled after
every step: for ours `FasterCache.cache_bytes()`, for diffusers the tensors its hooks keep, each storage counted
once, so a view of a larger tensor counts that tensor); fidelity of the final latents against the uncached ones:
PSNR (peak = range of the uncached latents) and relative L2 error.

    python benchmarks/faster_cache.py [--part cogvideox|vchitect|all] [--geometry cpu|real] [--device cuda]

`cpu` fits a 2-core CPU; `real` is CogVideoX-5B (42 layers, 48 heads x 64, 13 x 60 x 90 latent, 226 text tokens)
and Vchitect-2.0-2B (24 layers, 24 heads x 64, 40 x 54 x 96 latent) in bf16 and needs a large GPU.
"""

import argparse
import datetime
import math
import platform
import statistics
import time

import torch

GEOMETRIES = {
    "cpu": dict(
        cogvideox=dict(
            config=dict(num_attention_heads=8, attention_head_dim=64, num_layers=4, in_channels=16, out_channels=16,
                        text_embed_dim=4096, time_embed_dim=512, sample_width=32, sample_height=24, sample_frames=17,
                        use_rotary_positional_embeddings=True, max_text_seq_length=226),
            frames=17, height=192, width=256, dtype=torch.float32,
        ),
        vchitect=dict(
            config=dict(num_layers=4, num_attention_heads=4, attention_head_dim=64, caption_projection_dim=256,
                        joint_attention_dim=4096, pooled_projection_dim=2048, sample_size=128, pos_embed_max_size=96),
            frames=8, height=256, width=256, dtype=torch.float32,
        ),
    ),
    "real": dict(
        cogvideox=dict(
            config=dict(num_attention_heads=48, attention_head_dim=64, num_layers=42, in_channels=16, out_channels=16,
                        text_embed_dim=4096, time_embed_dim=512, sample_width=90, sample_height=60, sample_frames=49,
                        use_rotary_positional_embeddings=True, max_text_seq_length=226),
            frames=49, height=480, width=720, dtype=torch.bfloat16,
        ),
        vchitect=dict(
            config=dict(num_layers=24, num_attention_heads=24, attention_head_dim=64, caption_projection_dim=1536,
                        joint_attention_dim=4096, pooled_projection_dim=2048, sample_size=128, pos_embed_max_size=192),
            frames=40, height=432, width=768, dtype=torch.bfloat16,
        ),
    ),
}


def fidelity(latents: torch.Tensor, reference: torch.Tensor):
    """(PSNR in dB with the reference's range as peak, relative L2 error)."""
    latents, reference = latents.double(), reference.double()
    mse = torch.mean((latents - reference) ** 2).item()
    peak = (reference.max() - reference.min()).item()
    psnr = math.inf if mse == 0 else 10 * math.log10(peak**2 / mse)
    return psnr, ((latents - reference).norm() / reference.norm()).item()


def storage_bytes(tensors) -> int:
    """Bytes of the distinct storages behind `tensors` (a view keeps its whole base tensor alive)."""
    storages = {t.untyped_storage().data_ptr(): t.untyped_storage().nbytes() for t in tensors if torch.is_tensor(t)}
    return sum(storages.values())


def diffusers_cache_bytes(transformer) -> int:
    """Bytes held by diffusers' FasterCache hooks: frequency deltas and each block's two cached outputs."""
    from diffusers.hooks.faster_cache import _FASTER_CACHE_BLOCK_HOOK, _FASTER_CACHE_DENOISER_HOOK

    tensors = []
    for module in transformer.modules():
        hooks = getattr(getattr(module, "_diffusers_hook", None), "hooks", {})
        denoiser = hooks.get(_FASTER_CACHE_DENOISER_HOOK)
        if denoiser is not None:
            tensors += [denoiser.state.low_frequency_delta, denoiser.state.high_frequency_delta]
        block = hooks.get(_FASTER_CACHE_BLOCK_HOOK)
        if block is not None and block.state.cache is not None:
            for entry in block.state.cache:
                tensors += list(entry) if isinstance(entry, (tuple, list)) else [entry]
    return storage_bytes(tensors)


class Run:
    """One way of running the pipeline: how to switch the cache on and off, and how to read its memory."""

    def __init__(self, name, enable=None, disable=None, cache_bytes=None):
        self.name, self.enable, self.disable, self.cache_bytes = name, enable, disable, cache_bytes
        self.times, self.cpu_times, self.peak_bytes, self.latents = [], [], 0, None

    def __call__(self, pipe, call_kwargs, seed):
        handle = self.enable(pipe) if self.enable else None
        peak = [0]

        def measure(pipeline, step, timestep, tensors):
            if self.cache_bytes is not None:
                peak[0] = max(peak[0], self.cache_bytes(pipeline, handle))
            return tensors

        try:
            synchronize(pipe.device)
            start, cpu_start = time.perf_counter(), time.process_time()
            latents = pipe(**call_kwargs, generator=torch.Generator().manual_seed(seed), callback_on_step_end=measure,
                           callback_on_step_end_tensor_inputs=["latents"]).frames
            synchronize(pipe.device)
            self.times.append(time.perf_counter() - start)
            self.cpu_times.append(time.process_time() - cpu_start)
        finally:
            if self.disable:
                self.disable(pipe)
        self.peak_bytes, self.latents = peak[0], latents.float().cpu()


def synchronize(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def ours(preset, **overrides):
    from video_diffusion_pack import FasterCacheConfig, apply_faster_cache, remove_faster_cache

    return dict(
        enable=lambda pipe: apply_faster_cache(pipe, FasterCacheConfig.preset(preset, **overrides)),
        disable=remove_faster_cache,
        cache_bytes=lambda pipe, cache: cache.cache_bytes(),
    )


# diffusers' documented CogVideoX timestep ranges on the 50 trailing DPM steps, as fractions: the unconditional branch
# is skipped from t < 781 (step 11, 22%), attention reused from t < 681 (step 16, 32%) every other step, the low
# frequencies scaled while t > 99 (before step 45, 90%), the high ones once t < 301 (from step 35, 70%)
DIFFUSERS_COGVIDEOX_SCHEDULE = dict(start_fraction=0.22, attention_start_fraction=0.32, attention_interval=2,
                                    low_frequency_end_fraction=0.9, high_frequency_start_fraction=0.7)


def diffusers_documented_cogvideox():
    """The FasterCacheConfig that diffusers' cache documentation gives for CogVideoX."""
    from diffusers import FasterCacheConfig as DiffusersFasterCacheConfig

    def enable(pipe):
        config = DiffusersFasterCacheConfig(
            spatial_attention_block_skip_range=2,
            spatial_attention_timestep_skip_range=(-1, 681),
            current_timestep_callback=lambda: pipe.current_timestep,
            attention_weight_callback=lambda _: 0.3,
            unconditional_batch_skip_range=5,
            unconditional_batch_timestep_skip_range=(-1, 781),
            tensor_format="BFCHW",
        )
        pipe.transformer.enable_cache(config)

    return dict(enable=enable, disable=lambda pipe: pipe.transformer.disable_cache(),
                cache_bytes=lambda pipe, handle: diffusers_cache_bytes(pipe.transformer))


def random_weights(model):
    """Variance-preserving random weights (std 1/sqrt(fan_in)) for every linear and convolution, zero biases.

    Every branch then contributes at the scale of a trained model, so the sampled latents depend on each step's
    prediction (with tiny weights they would barely differ from the scheduler's own path).
    """
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (torch.nn.Linear, torch.nn.Conv2d, torch.nn.Conv3d)):
                module.weight.normal_(0, module.weight[0].numel() ** -0.5)
                if module.bias is not None:
                    module.bias.zero_()
    return model


def build_cogvideox(geometry, device):
    from diffusers import CogVideoXDPMScheduler, CogVideoXPipeline, CogVideoXTransformer3DModel

    spec = GEOMETRIES[geometry]["cogvideox"]
    torch.manual_seed(0)
    transformer = random_weights(CogVideoXTransformer3DModel(**spec["config"]).eval())
    # the scheduler config of THUDM/CogVideoX-5b
    scheduler = CogVideoXDPMScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
        prediction_type="v_prediction", rescale_betas_zero_snr=True, set_alpha_to_one=True, snr_shift_scale=1.0,
        steps_offset=0, timestep_spacing="trailing",
    )
    pipe = CogVideoXPipeline(tokenizer=None, text_encoder=None, vae=None, transformer=transformer, scheduler=scheduler)
    pipe.to(device, spec["dtype"])
    generator = torch.Generator().manual_seed(1)
    text = spec["config"]["max_text_seq_length"], spec["config"]["text_embed_dim"]
    call_kwargs = dict(
        prompt_embeds=torch.randn(1, *text, generator=generator).to(device, spec["dtype"]),
        negative_prompt_embeds=torch.randn(1, *text, generator=generator).to(device, spec["dtype"]),
        height=spec["height"], width=spec["width"], num_frames=spec["frames"], num_inference_steps=50,
        guidance_scale=6.0, use_dynamic_cfg=True, output_type="latent",
    )
    runs = [Run("uncached"), Run("ours, cogvideox preset", **ours("cogvideox")),
            Run("ours, cogvideox preset, bf16 cache", **ours("cogvideox", cache_dtype="bf16")),
            Run("diffusers FasterCacheConfig (documented CogVideoX settings)", **diffusers_documented_cogvideox()),
            Run("ours, diffusers' schedule", **ours("cogvideox", **DIFFUSERS_COGVIDEOX_SCHEDULE))]
    return pipe, call_kwargs, runs, spec


def build_vchitect(geometry, device, cfg_batching):
    from video_diffusion_pack import (
        VchitectRepVideoPipeline,
        VchitectXLTransformer3DModel,
        build_tiny_vchitect_pipeline,
    )

    spec = GEOMETRIES[geometry]["vchitect"]
    torch.manual_seed(0)
    transformer = random_weights(VchitectXLTransformer3DModel(**spec["config"]).eval())
    # prompt embeddings are given directly, so the tiny model's text encoders and VAE only fill the slots
    components = {**build_tiny_vchitect_pipeline(weights="random").components, "transformer": transformer}
    pipe = VchitectRepVideoPipeline(**components)
    pipe.to(device)
    pipe.transformer.to(dtype=spec["dtype"])
    generator = torch.Generator().manual_seed(1)
    cfg = spec["config"]
    text, pooled = (1, 333, cfg["joint_attention_dim"]), (1, cfg["pooled_projection_dim"])
    call_kwargs = dict(
        prompt_embeds=torch.randn(*text, generator=generator).to(device),
        pooled_prompt_embeds=torch.randn(*pooled, generator=generator).to(device),
        negative_prompt_embeds=torch.randn(*text, generator=generator).to(device),
        negative_pooled_prompt_embeds=torch.randn(*pooled, generator=generator).to(device),
        height=spec["height"], width=spec["width"], num_frames=spec["frames"], num_inference_steps=100,
        guidance_scale=7.5, output_type="latent", cfg_batching=cfg_batching,
    )
    runs = [Run("uncached"), Run("ours, vchitect-2.0 preset", **ours("vchitect-2.0")),
            # the preset without its compounding of the CFG residual: how much of the drift that compounding causes
            Run("ours, vchitect-2.0 preset, frequency factors 1",
                **ours("vchitect-2.0", low_frequency_factor=1.0, high_frequency_factor=1.0))]
    return pipe, call_kwargs, runs, spec


def measure(pipe, call_kwargs, runs, repeats):
    """Runs every variant `repeats` times, rotating the order each round."""
    pipe.set_progress_bar_config(disable=True)
    for round_index in range(repeats):
        order = runs[round_index % len(runs):] + runs[:round_index % len(runs)]
        for run in order:
            run(pipe, call_kwargs, seed=0)
            print(f"  round {round_index + 1}: {run.name}: {run.times[-1]:.1f} s wall, {run.cpu_times[-1]:.1f} s CPU",
                  flush=True)


def report(title, runs, device):
    """The table: wall time (GPU) or process CPU time (CPU, where other jobs on the machine inflate wall time)."""
    reference = runs[0]
    timings = "times" if device.type == "cuda" else "cpu_times"
    base = statistics.median(getattr(reference, timings))
    unit = "s" if device.type == "cuda" else "CPU s"
    print(f"\n{title}")
    print(f"| run | median {unit} | speedup | median wall s | cache peak MiB | PSNR dB | rel. L2 |")
    print("|---|---|---|---|---|---|---|")
    for run in runs:
        seconds = statistics.median(getattr(run, timings))
        psnr, error = fidelity(run.latents, reference.latents)
        memory = "-" if run.cache_bytes is None else f"{run.peak_bytes / 2**20:.2f}"
        psnr_text = "inf" if math.isinf(psnr) else f"{psnr:.1f}"
        print(f"| {run.name} | {seconds:.1f} | {base / seconds:.2f}x | {statistics.median(run.times):.1f} | {memory} "
              f"| {psnr_text} | {error:.2e} |")
    for run in runs:
        print(f"  {run.name}: wall {', '.join(f'{t:.1f}' for t in run.times)}; "
              f"CPU {', '.join(f'{t:.1f}' for t in run.cpu_times)}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=("cogvideox", "vchitect", "all"), default="all")
    parser.add_argument("--geometry", choices=sorted(GEOMETRIES), default="cpu")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's choice)")
    parser.add_argument("--separate-calls", action="store_true",
                        help="Vchitect: run the two guidance branches as separate calls (the official way)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
    print(f"# FasterCache benchmark, geometry {args.geometry}, {args.device} ({device_name}, {torch.get_num_threads()}"
          f" threads), torch {torch.__version__}, {datetime.date.today()}")
    import diffusers

    print(f"diffusers {diffusers.__version__}")
    if args.part in ("cogvideox", "all"):
        pipe, call_kwargs, runs, spec = build_cogvideox(args.geometry, device)
        measure(pipe, call_kwargs, runs, args.repeats)
        cfg = spec["config"]
        report(f"CogVideoX ({cfg['num_layers']} layers, {cfg['num_attention_heads']}x{cfg['attention_head_dim']}, "
               f"{spec['frames']} frames {spec['height']}x{spec['width']}, {str(spec['dtype'])[6:]}), 50 steps", runs, device)
        del pipe
    if args.part in ("vchitect", "all"):
        pipe, call_kwargs, runs, spec = build_vchitect(args.geometry, device, cfg_batching=not args.separate_calls)
        measure(pipe, call_kwargs, runs, args.repeats)
        cfg = spec["config"]
        mode = "separate guidance calls" if args.separate_calls else "batched guidance"
        report(f"Vchitect-2.0 ({cfg['num_layers']} layers, {cfg['num_attention_heads']}x{cfg['attention_head_dim']}, "
               f"{spec['frames']} frames {spec['height']}x{spec['width']}, {str(spec['dtype'])[6:]}, {mode}), "
               f"100 steps", runs, device)


if __name__ == "__main__":
    main()
