"""Speed and peak memory of RoviUNet3DConditionModel against the official LGVI RoviModel.

Both models get the same random weights and inputs in one process; forwards alternate, and the table reports
median times, peak tensor memory and the ratios ours / official, plus the relative error of our output.

    python benchmarks/lgvi_unet.py --official-src PATH/TO/Language-Driven-Video-Inpainting [--geometry reduced|sd15] [--device cuda]
    python benchmarks/lgvi_unet.py --official-src ... --guidance-step   # one pipeline step: the three guidance branches

`--official-src` is a checkout of github.com/jianzongwu/Language-Driven-Video-Inpainting (not shipped with the
pack), loaded with the two runtime shims of `tests/fixtures/make_lgvi_fixtures.py` (SDPA instead of xformers for
the temporal attention; keyword arguments for `CrossFrameAttention`). The `reduced` geometry fits a CPU (SD-1.5's
layout at half the channels: 160/320/640/640, two layers per block, 8 heads, text width 768, temporal attention,
8 input channels; 8 frames at 256x160 = 20x32 latents, 77 text tokens); `sd15` is the released size (24 frames at
512x320) in fp16 and needs a GPU.
"""

import argparse
import datetime
import importlib.util
import pathlib
import platform
import statistics
import sys
import time

import torch
from vchitect_transformer import peak_memory  # benchmarks/ is on the path when a script runs

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
_SD15_BLOCKS = dict(
    down_block_types=("CrossAttnDownBlock3D",) * 3 + ("DownBlock3D",),
    up_block_types=("UpBlock3D",) + ("CrossAttnUpBlock3D",) * 3,
    layers_per_block=2, cross_attention_dim=768, attention_head_dim=8, in_channels=8, temp_attn=True,
)
GEOMETRIES = {
    "reduced": dict(config=dict(_SD15_BLOCKS, block_out_channels=(160, 320, 640, 640)), frames=8, latent=(20, 32),
                    dtype=torch.float32),
    "sd15": dict(config=dict(_SD15_BLOCKS, block_out_channels=(320, 640, 1280, 1280)), frames=24, latent=(40, 64),
                 dtype=torch.float16),
}
TEXT_TOKENS = 77


def _module_from(path: pathlib.Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _import_checkout():
    """This checkout as ``video_diffusion_pack`` (the repository root is the package), installed or not."""
    if "video_diffusion_pack" not in sys.modules:
        spec = importlib.util.spec_from_file_location(
            "video_diffusion_pack", REPO_ROOT / "__init__.py", submodule_search_locations=[str(REPO_ROOT)]
        )
        module = importlib.util.module_from_spec(spec)
        sys.modules["video_diffusion_pack"] = module
        spec.loader.exec_module(module)


def run(args):
    _import_checkout()
    from video_diffusion_pack.models.rovi_unet import RoviUNet3DConditionModel

    # the official-code loader with its shims, shared on purpose
    fixtures = _module_from(REPO_ROOT / "tests" / "fixtures" / "make_lgvi_fixtures.py", "make_lgvi_fixtures")

    if args.threads:
        torch.set_num_threads(args.threads)
    geometry = GEOMETRIES[args.geometry]
    device, dtype = torch.device(args.device), geometry["dtype"]
    official_cls, _ = fixtures._import_official(pathlib.Path(args.official_src))
    torch.manual_seed(0)
    official = official_cls(**geometry["config"]).eval()
    with torch.no_grad():
        for param in official.parameters():
            param.normal_(0, 0.02)
    ours = RoviUNet3DConditionModel(**geometry["config"]).eval()
    ours.load_state_dict(official.state_dict(), strict=True)
    official.to(device, dtype)
    ours.to(device, dtype)

    height, width = geometry["latent"]
    frames = geometry["frames"]
    inputs = dict(
        sample=torch.randn(1, 4, frames, height, width, device=device, dtype=dtype),
        img_condition=torch.randn(1, 4, frames, height, width, device=device, dtype=dtype),
        encoder_hidden_states=torch.randn(1, TEXT_TOKENS, 768, device=device, dtype=dtype),
        timestep=torch.tensor([500.0], device=device),
    )

    def forward(model):
        with torch.no_grad():
            out = model(**inputs).sample
        if device.type == "cuda":
            torch.cuda.synchronize()
        return out

    if args.guidance_step:
        return _guidance_step(args, official, ours, inputs, device, dtype, peak_memory)
    ref = forward(official)
    out = forward(ours)
    rel_err = ((out.float() - ref.float()).norm() / ref.float().norm()).item()
    times = {"official": [], "ours": []}
    for _ in range(args.repeats):
        for name, model in (("official", official), ("ours", ours)):
            start = time.perf_counter()
            forward(model)
            times[name].append(time.perf_counter() - start)
    peaks = {}
    for name, model in (("official", official), ("ours", ours)):
        result = {}
        with peak_memory(device, result):
            forward(model)
        peaks[name] = result["peak"]

    median = {k: statistics.median(v) for k, v in times.items()}
    best = {k: min(v) for k, v in times.items()}
    device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
    config = geometry["config"]
    print(f"# LGVI video UNet, geometry {args.geometry}: channels {config['block_out_channels']}, "
          f"{config['layers_per_block']} layers per block, {config['attention_head_dim']} heads, {frames} frames, "
          f"latent {height}x{width}, {TEXT_TOKENS} text tokens, {str(dtype).replace('torch.', '')}, {args.device} "
          f"({device_name}, {torch.get_num_threads()} threads), torch {torch.__version__}, {datetime.date.today()}")
    print("| model | median s / forward | best s / forward | peak tensor memory MiB |")
    print("|---|---|---|---|")
    for name in ("official", "ours"):
        print(f"| {name} | {median[name]:.3f} | {best[name]:.3f} | {peaks[name] / 2**20:.1f} |")
    print(f"| ratio ours/official | {median['ours'] / median['official']:.3f} | {best['ours'] / best['official']:.3f} "
          f"| {peaks['ours'] / peaks['official']:.3f} |")
    print(f"relative L2 error ours vs official: {rel_err:.2e} ({args.repeats} alternating repeats)")


def _guidance_step(args, official, ours, inputs, device, dtype, peak_memory):
    """One denoising step of the pipelines: three guidance branches (text+video, video, neither).

    The official `RoviPipeline` runs them as three batch-1 UNet calls; `InpaintByInstructionPipeline` runs them as
    one batch-3 call (`cfg_batching=True`, the default) or as three calls (`cfg_batching=False`).
    """
    branches = {key: torch.cat([value] * 3) if key != "timestep" else value for key, value in inputs.items()}

    def three_calls(model):
        with torch.no_grad():
            out = torch.cat([model(**{key: value[i : i + 1] if key != "timestep" else value
                                      for key, value in branches.items()}).sample for i in range(3)])
        if device.type == "cuda":
            torch.cuda.synchronize()
        return out

    def one_call(model):
        with torch.no_grad():
            out = model(**branches).sample
        if device.type == "cuda":
            torch.cuda.synchronize()
        return out

    runs = {
        "official (3 calls of batch 1)": lambda: three_calls(official),
        "ours, cfg_batching=True (1 call of batch 3)": lambda: one_call(ours),
        "ours, cfg_batching=False (3 calls of batch 1)": lambda: three_calls(ours),
    }
    reference = None
    errors, times, peaks = {}, {name: [] for name in runs}, {}
    for name, run_step in runs.items():
        out = run_step()
        reference = out if reference is None else reference
        errors[name] = ((out.float() - reference.float()).norm() / reference.float().norm()).item()
    for _ in range(args.repeats):
        for name, run_step in runs.items():
            start = time.perf_counter()
            run_step()
            times[name].append(time.perf_counter() - start)
    for name, run_step in runs.items():
        result = {}
        with peak_memory(device, result):
            run_step()
        peaks[name] = result["peak"]
    device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
    print(f"# LGVI guidance step (3 branches), geometry {args.geometry}, {str(dtype).replace('torch.', '')}, "
          f"{args.device} ({device_name}, {torch.get_num_threads()} threads), torch {torch.__version__}, "
          f"{datetime.date.today()}")
    print("| run | median s / step | best s / step | time ratio vs official (median) | peak tensor memory MiB "
          "| rel. L2 vs official |")
    print("|---|---|---|---|---|---|")
    official_median = statistics.median(times["official (3 calls of batch 1)"])
    for name in runs:
        median = statistics.median(times[name])
        print(f"| {name} | {median:.3f} | {min(times[name]):.3f} | {median / official_median:.3f} | "
              f"{peaks[name] / 2**20:.1f} | {errors[name]:.1e} |")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--official-src", required=True,
                        help="checkout of github.com/jianzongwu/Language-Driven-Video-Inpainting")
    parser.add_argument("--geometry", choices=sorted(GEOMETRIES), default="reduced")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's choice)")
    parser.add_argument("--guidance-step", action="store_true",
                        help="time one pipeline step (three guidance branches) instead of one forward")
    run(parser.parse_args())


if __name__ == "__main__":
    main()
