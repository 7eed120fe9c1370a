"""Speed of the DaS tracking-video renderer against a per-point loop written like the official one; and, on a GPU,
the released-size DaS transformer's time per denoising step and peak memory.

Renderer (default): 49 frames x 4900 tracked points (a 70 x 70 grid, as the official SpatialTracker/CoTracker paths)
at 480x720 with 5x5-pixel splats (the official CoTracker `point_wise=4`); `--workload dense` tracks every pixel
with 3x3 splats, as the official image path does. The tracks come from `tracks_from_depth`
on a synthetic depth map with a moving camera. The baseline is the official `visualize_tracking_cotracker` loop:
per frame, filter, sort far to near, then one `ImageDraw` rectangle per point, and finally the float video
`[T, 3, H, W] / 255` it returns. Both get the same uint8 colours; runs alternate and the medians are compared.
The outputs are checked to be identical. The baseline differs from the official code only where the official code
has edge bugs the pack does not copy: pixel = floor(u) (the official `astype(int)` truncates -0.5 to 0) and row 0
is drawn (the official validity test has `v > 0`).

    python benchmarks/das_render.py [--repeats 5] [--threads 2] [--workload grid|dense]
    python benchmarks/das_render.py --transformer --device cuda     # released-size transformer, bf16, CFG batch 2
"""

import argparse
import datetime
import platform
import statistics
import time

import numpy as np
import torch

FRAMES, HEIGHT, WIDTH = 49, 480, 720
# (grid size, point size): the tracker grid of the official SpatialTracker/CoTracker paths, and every pixel with
# 3x3 splats as the official image path (MoGe point map, `visualize_tracking_moge`)
WORKLOADS = {"grid": (70, 4), "dense": (None, 2)}
CAMERA = "rot y 15; trans 0.3 0.1 0.4"


def workload(grid_size):
    """Tracks of a grid (or every pixel) on a bumpy slanted surface seen by a moving camera, with uint8 colours."""
    from video_diffusion_pack.control import Tracks, tracks_from_depth

    ys, xs = torch.meshgrid(torch.linspace(0, 1, HEIGHT), torch.linspace(0, 1, WIDTH), indexing="ij")
    depth = 2.0 + 3.0 * ys + 0.5 * torch.sin(12 * xs) * torch.cos(9 * ys)
    tracks = tracks_from_depth(torch.zeros(HEIGHT, WIDTH, 3), depth, camera=CAMERA, grid_size=grid_size, num_frames=FRAMES)
    colors_uint8 = (tracks.colors * 255).to(torch.uint8)  # the official colours are floor(c * 255) as uint8
    tracks = Tracks(tracks.points, tracks.visibility, HEIGHT, WIDTH, colors=colors_uint8.float() / 255)
    return tracks, colors_uint8.numpy()


def render_per_point(points: np.ndarray, visibility: np.ndarray, colors: np.ndarray, point_size: int) -> torch.Tensor:
    """The official per-point renderer's structure (`DiffusionAsShaderPipeline.visualize_tracking_cotracker`)."""
    from PIL import Image, ImageDraw

    def draw_rectangle(rgb, coord, side_length, color):
        draw = ImageDraw.Draw(rgb)
        left_up_point = (coord[0] - side_length // 2, coord[1] - side_length // 2)
        right_down_point = (coord[0] + side_length // 2, coord[1] + side_length // 2)
        color = tuple(list(color))
        draw.rectangle([left_up_point, right_down_point], fill=tuple(color), outline=tuple(color))

    frames = []
    for i in range(points.shape[0]):
        shown = visibility[i] & np.isfinite(points[i]).all(-1) & (points[i, :, 2] > 0)
        pixels, depths = np.floor(points[i, shown, :2]).astype(int), points[i, shown, 2]
        in_frame = (pixels[:, 0] >= 0) & (pixels[:, 0] < WIDTH) & (pixels[:, 1] >= 0) & (pixels[:, 1] < HEIGHT)
        pixels, depths, frame_rgb = pixels[in_frame], depths[in_frame], colors[shown][in_frame]
        img = Image.fromarray(np.zeros((HEIGHT, WIDTH, 3), dtype=np.uint8), mode="RGB")
        sort_index = np.argsort(-depths, kind="stable")  # far to near; equal depths keep their order
        sorted_pixels, sorted_rgb = pixels[sort_index], frame_rgb[sort_index]
        for j in range(sorted_pixels.shape[0]):
            draw_rectangle(img, (sorted_pixels[j, 0], sorted_pixels[j, 1]), point_size, sorted_rgb[j])
        frames.append(np.array(img))
    return torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).float() / 255.0


def median_times(functions: dict, repeats: int) -> dict:
    """Alternating runs; median seconds per function."""
    times = {name: [] for name in functions}
    for _ in range(repeats):
        for name, function in functions.items():
            start = time.perf_counter()
            function()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def renderer(args):
    from video_diffusion_pack.control import render_tracking_video

    grid_size, point_size = WORKLOADS[args.workload]
    tracks, colors = workload(grid_size)
    points, visibility = tracks.points.numpy(), tracks.visibility.numpy()
    baseline = render_per_point(points, visibility, colors, point_size)
    ours_float = render_tracking_video(tracks, point_size=point_size)
    ours_uint8 = render_tracking_video(tracks, point_size=point_size, dtype=torch.uint8)
    identical_uint8 = torch.equal((baseline * 255).round().to(torch.uint8).permute(0, 2, 3, 1), ours_uint8)
    identical_float = torch.equal(baseline.permute(0, 2, 3, 1), ours_float)
    drawn = int((visibility & (points[..., 2] > 0)).sum())

    seconds = median_times({
        "per-point loop": lambda: render_per_point(points, visibility, colors, point_size),
        "ours float32": lambda: render_tracking_video(tracks, point_size=point_size),
        "ours uint8": lambda: render_tracking_video(tracks, point_size=point_size, dtype=torch.uint8),
    }, args.repeats)
    print(f"{FRAMES} frames x {tracks.num_points} points ({drawn} visible in front of the camera) at {HEIGHT}x{WIDTH}, "
          f"point_size {point_size}; camera '{CAMERA}'; threads {torch.get_num_threads()}; {platform.machine()}, "
          f"torch {torch.__version__}; {datetime.date.today()}")
    print("| renderer | s / video | speed-up vs per-point loop | same output |")
    print("|---|---|---|---|")
    print(f"| per-point loop (official structure, float [T,3,H,W]) | {seconds['per-point loop']:.3f} | 1.0x | - |")
    for name, identical in (("ours float32", identical_float), ("ours uint8", identical_uint8)):
        ratio = seconds["per-point loop"] / seconds[name]
        print(f"| {name} | {seconds[name]:.3f} | {ratio:.1f}x | {'identical' if identical else 'DIFFERENT'} |")


def transformer(args):
    """Seconds per denoising step (CFG batch 2) and peak memory of the released-size DaS transformer, random weights."""
    from video_diffusion_pack import DaSTransformer3DModel
    from video_diffusion_pack.models.das_transformer import RELEASED_CONFIG

    device = torch.device(args.device)
    if device.type != "cuda":
        raise SystemExit("--transformer measures the released size (8.2B parameters, bf16): it needs --device cuda")
    torch.manual_seed(0)
    with torch.device("meta"):
        model = DaSTransformer3DModel(**RELEASED_CONFIG)
    model = model.to(torch.bfloat16).to_empty(device=device)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.normal_(0, 0.02)
        for buffer in model.buffers():
            buffer.normal_(0, 0.02)
    model.eval()
    config = model.config
    latent_frames, batch = (49 - 1) // 4 + 1, 2
    shape = (batch, latent_frames, config.in_channels, config.sample_height, config.sample_width)
    hidden = torch.randn(shape, device=device, dtype=torch.bfloat16)
    tracking = torch.randn(shape, device=device, dtype=torch.bfloat16)
    text = torch.randn(batch, config.max_text_seq_length, config.text_embed_dim, device=device, dtype=torch.bfloat16)
    from diffusers.models.embeddings import get_3d_rotary_pos_embed

    grid = (config.sample_height // 2, config.sample_width // 2)
    rotary = get_3d_rotary_pos_embed(config.attention_head_dim, ((0, 0), grid), grid, latent_frames, device=device)
    timestep = torch.full((batch,), 500.0, device=device)

    def step():
        with torch.no_grad():
            model(hidden, text, timestep, image_rotary_emb=rotary, tracking_maps=tracking)
        torch.cuda.synchronize()

    step()
    torch.cuda.reset_peak_memory_stats()
    seconds = median_times({"step": step}, args.repeats)["step"]
    peak = torch.cuda.max_memory_allocated() / 2**30
    parameters = sum(p.numel() for p in model.parameters()) / 1e9
    print(f"DaS transformer, released config ({parameters:.2f}B parameters), bf16, random weights, "
          f"{torch.cuda.get_device_name(device)}; 49x480x720 (13x60x90 latents), CFG batch 2, "
          f"{config.max_text_seq_length} text tokens")
    print("| s / step | peak memory (GiB) |")
    print("|---|---|")
    print(f"| {seconds:.2f} | {peak:.1f} |")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--workload", choices=sorted(WORKLOADS), default="grid",
                        help="grid: 70x70 points, point size 4 (default); dense: every pixel, point size 2")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's choice)")
    parser.add_argument("--transformer", action="store_true", help="time the released-size transformer instead")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    (transformer if args.transformer else renderer)(args)


if __name__ == "__main__":
    main()
