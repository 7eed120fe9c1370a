"""Latent previews: a linear projection of a pipeline's latents to RGB, per VAE family, for step-by-step previews.

During sampling a preview shows a few frames of the current latents, each latent pixel mapped to a colour by
``rgb = latent @ weight + bias`` (the "latent2rgb" previews of ComfyUI). The coefficients are data in
``latent_rgb_factors.json`` beside this module, one entry per VAE family, matched on the VAE's class, latent channels
and ``block_out_channels``; they act on the latents as the sampler holds them (scaled and shifted by the VAE's
``scaling_factor`` / ``shift_factor``) and give RGB in -1..1. The entries of the released VAEs are published factors:

- ``sd3`` (Vchitect-2.0's VAE is Stable Diffusion 3's): ComfyUI ``comfy/latent_formats.py``, class ``SD3``
  (``latent_rgb_factors`` and ``latent_rgb_factors_bias``);
- ``sd15`` (LGVI's VAE is Stable Diffusion 1.5's): ComfyUI ``comfy/latent_formats.py``, class ``SD15``;
- ``cogvideox`` (RepVideo and DaS use CogVideoX's VAE): kijai/ComfyUI-CogVideoXWrapper ``latent_preview.py``
  (commit 666f783), whose factors ComfyUI has no class for.

The entries of the pack's embedded tiny VAEs are fitted by least squares from latents to the area-downsampled RGB of
shapes-world videos (``fit_latent_rgb_projection``), by ``benchmarks/latent_preview_factors.py``, which also reports
how close the fitted previews come to the downsampled frames on held-out scenes. An entry is matched on the VAE's
configuration, not its weights: a tiny VAE of another seed gets the seed-0 fit (its previews then show little; those
random-weight models make noise anyway).
"""

import dataclasses
import functools
import json
import math
import pathlib
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from einops import rearrange

__all__ = [
    "LATENT_LAYOUTS",
    "LATENT_RGB_FACTORS_FILE",
    "LatentPreviewer",
    "LatentRGBProjection",
    "describe_vae",
    "downsample_to_latent_grid",
    "fit_latent_rgb_projection",
    "latent_layout_of",
    "latent_rgb_projections",
    "previewer_for",
    "projection_for_vae",
    "projection_to_entry",
]

LATENT_RGB_FACTORS_FILE = pathlib.Path(__file__).with_name("latent_rgb_factors.json")

# How each pipeline family holds its latents during sampling (einops axes), by class name, looked up along the MRO
# so that subclasses (and diffusers' own CogVideoX pipelines) are covered.
LATENT_LAYOUTS: Dict[str, str] = {
    "VchitectRepVideoPipeline": "b f c h w",
    "CogVideoXPipeline": "b f c h w",
    "CogVideoXImageToVideoPipeline": "b f c h w",
    "InpaintByInstructionPipeline": "b c f h w",
}

# frames of the video shown side by side in one preview
DEFAULT_PREVIEW_FRAMES = 4


@dataclasses.dataclass(frozen=True)
class LatentRGBProjection:
    """``rgb = latent @ weight + bias`` for one VAE family.

    Args:
        name (`str`): the family's entry in ``latent_rgb_factors.json``.
        weight (`torch.Tensor` float32 [channels, 3]), bias (`torch.Tensor` float32 [3]).
        source (`str`): where the factors come from.
    """

    name: str
    weight: torch.Tensor
    bias: torch.Tensor
    source: str = ""

    @property
    def latent_channels(self) -> int:
        return self.weight.shape[0]

    def __call__(self, latents: torch.Tensor) -> torch.Tensor:
        """Latents ``[..., channels]`` (channels last) -> RGB ``[..., 3]`` in about -1..1, float32, same device."""
        if latents.shape[-1] != self.latent_channels:
            raise ValueError(f"latents with {latents.shape[-1]} channels (last axis) do not fit the {self.name!r} "
                             f"projection of {self.latent_channels} channels")
        weight = self.weight.to(latents.device)
        return torch.addmm(self.bias.to(latents.device), latents.reshape(-1, self.latent_channels).float(),
                           weight).reshape(*latents.shape[:-1], 3)


def _vae_class_names(vae) -> List[str]:
    return [cls.__name__ for cls in type(vae).__mro__]


@functools.lru_cache(maxsize=None)
def _load_entries(path: str) -> Tuple[dict, ...]:
    with open(path, encoding="utf-8") as handle:
        entries = json.load(handle)["layouts"]
    for entry in entries:
        weight = entry["weight"]
        if entry["match"]["latent_channels"] != len(weight) or any(len(row) != 3 for row in weight) or len(
                entry["bias"]) != 3:
            raise ValueError(f"{path}: entry {entry['name']!r} must have latent_channels rows of 3 weights and 3 "
                             "biases")
    return tuple(entries)


def latent_rgb_projections(path: Optional[pathlib.Path] = None) -> Dict[str, Tuple[dict, LatentRGBProjection]]:
    """Every entry of the coefficient file: name -> (its ``match`` criteria, its projection)."""
    entries = _load_entries(str(path or LATENT_RGB_FACTORS_FILE))
    return {
        entry["name"]: (entry["match"], LatentRGBProjection(
            name=entry["name"], weight=torch.tensor(entry["weight"], dtype=torch.float32),
            bias=torch.tensor(entry["bias"], dtype=torch.float32), source=entry.get("source", "")))
        for entry in entries
    }


def _vae_signature(vae) -> dict:
    config = vae.config
    return {"latent_channels": int(config.latent_channels),
            "block_out_channels": [int(value) for value in config.block_out_channels]}


def describe_vae(vae) -> str:
    """One line naming what identifies a VAE's latent layout (for messages)."""
    signature = _vae_signature(vae)
    return (f"{type(vae).__name__} with {signature['latent_channels']} latent channels and block_out_channels "
            f"{signature['block_out_channels']}")


def projection_for_vae(vae, path: Optional[pathlib.Path] = None) -> Optional[LatentRGBProjection]:
    """The projection whose ``match`` fits ``vae`` (class along the MRO, latent channels, block_out_channels), or
    None when the file has none."""
    signature = _vae_signature(vae)
    class_names = _vae_class_names(vae)
    for match, projection in latent_rgb_projections(path).values():
        if (match["vae_class"] in class_names and match["latent_channels"] == signature["latent_channels"]
                and list(match["block_out_channels"]) == signature["block_out_channels"]):
            return projection
    return None


def latent_layout_of(pipeline) -> Optional[str]:
    """The einops axes of ``pipeline``'s latents during sampling (``"b f c h w"``), or None for an unknown class."""
    for cls in type(pipeline).__mro__:
        if cls.__name__ in LATENT_LAYOUTS:
            return LATENT_LAYOUTS[cls.__name__]
    return None


def _grid_shape(count: int) -> Tuple[int, int]:
    columns = math.ceil(math.sqrt(count))
    return math.ceil(count / columns), columns


class LatentPreviewer:
    """Turns a pipeline's latents into one preview image: up to ``max_frames`` frames of the first video, evenly
    spaced from the first to the last, projected to RGB and laid out in a near-square grid.

    Args:
        projection (`LatentRGBProjection`): the VAE family's coefficients.
        layout (`str`): the einops axes of the latents, e.g. ``"b f c h w"``.
        max_frames (`int`, defaults to 4): frames shown.
    """

    def __init__(self, projection: LatentRGBProjection, layout: str, max_frames: int = DEFAULT_PREVIEW_FRAMES):
        if max_frames < 1:
            raise ValueError(f"max_frames={max_frames} must be at least 1")
        self.projection = projection
        self.layout = layout
        self.max_frames = max_frames

    def rgb(self, latents: torch.Tensor) -> torch.Tensor:
        """Latents in ``layout`` -> the preview as uint8 ``[height, width, 3]`` on the CPU."""
        if latents.ndim != 5:
            raise ValueError(f"latents of shape {tuple(latents.shape)} must have 5 axes ({self.layout})")
        video = rearrange(latents[:1].detach(), f"{self.layout} -> b f h w c")[0]
        count = min(self.max_frames, video.shape[0])
        indices = torch.linspace(0, video.shape[0] - 1, count).round().long().to(video.device)
        frames = self.projection(video.index_select(0, indices))
        rows, columns = _grid_shape(count)
        padding = frames.new_full((rows * columns - count, *frames.shape[1:]), -1.0)
        grid = rearrange(torch.cat([frames, padding]), "(rows columns) h w c -> (rows h) (columns w) c",
                         rows=rows, columns=columns)
        return ((grid.clamp(-1.0, 1.0) + 1.0) * 127.5).round().to(device="cpu", dtype=torch.uint8)

    def __call__(self, latents: torch.Tensor):
        """Latents in ``layout`` -> the preview as a ``PIL.Image``."""
        from PIL import Image

        return Image.fromarray(self.rgb(latents).numpy())


def previewer_for(pipeline, max_frames: int = DEFAULT_PREVIEW_FRAMES,
                  path: Optional[pathlib.Path] = None) -> Optional[LatentPreviewer]:
    """The previewer of ``pipeline`` (its latent layout and its VAE's coefficients), or None when either is unknown."""
    layout = latent_layout_of(pipeline)
    vae = getattr(pipeline, "vae", None)
    if layout is None or vae is None:
        return None
    projection = projection_for_vae(vae, path)
    return None if projection is None else LatentPreviewer(projection, layout, max_frames)


def downsample_to_latent_grid(frames: torch.Tensor, spatial_factor: int, temporal_factor: int = 1) -> torch.Tensor:
    """Video ``[F, H, W, 3]`` in 0..1 -> its colours on the latent grid ``[F', H/s, W/s, 3]`` in -1..1.

    Space is averaged over ``spatial_factor`` squares. With ``temporal_factor`` t > 1 the video has 1 + t*k frames and
    is averaged as a causal video VAE groups them: the first frame alone, then groups of t.

    Args:
        frames (`torch.Tensor` [F, H, W, 3] in 0..1), spatial_factor (`int`), temporal_factor (`int`, defaults to 1).
    """
    num_frames, height, width = frames.shape[:3]
    if height % spatial_factor or width % spatial_factor:
        raise ValueError(f"frames of {height}x{width} must be divisible by spatial_factor={spatial_factor}")
    if temporal_factor > 1 and (num_frames - 1) % temporal_factor:
        raise ValueError(f"{num_frames} frames must be 1 + a multiple of temporal_factor={temporal_factor}")
    pixels = rearrange(frames.float() * 2.0 - 1.0, "f (h sh) (w sw) c -> f h w (sh sw) c",
                       sh=spatial_factor, sw=spatial_factor).mean(3)
    if temporal_factor == 1:
        return pixels
    rest = rearrange(pixels[1:], "(f t) h w c -> f t h w c", t=temporal_factor).mean(1)
    return torch.cat([pixels[:1], rest])


def fit_latent_rgb_projection(latents: torch.Tensor, rgb: torch.Tensor, name: str = "fitted",
                              source: str = "") -> LatentRGBProjection:
    """Least-squares ``rgb ~ latents @ weight + bias`` over matching rows.

    Args:
        latents (`torch.Tensor` [N, channels]), rgb (`torch.Tensor` [N, 3]): the same N latent pixels, e.g. a VAE's
            latents and ``downsample_to_latent_grid`` of the encoded videos.
        name (`str`), source (`str`): recorded in the returned projection.
    """
    if latents.ndim != 2 or rgb.ndim != 2 or rgb.shape[1] != 3 or latents.shape[0] != rgb.shape[0]:
        raise ValueError(f"latents {tuple(latents.shape)} and rgb {tuple(rgb.shape)} must be [N, channels] and [N, 3]")
    if latents.shape[0] <= latents.shape[1]:
        raise ValueError(f"{latents.shape[0]} rows cannot determine {latents.shape[1]} + 1 coefficients per colour")
    design = torch.cat([latents.double(), torch.ones(latents.shape[0], 1, dtype=torch.float64)], dim=1)
    solution = torch.linalg.lstsq(design, rgb.double()).solution
    return LatentRGBProjection(name=name, weight=solution[:-1].float(), bias=solution[-1].float(), source=source)


def projection_to_entry(projection: LatentRGBProjection, match: dict, decimals: int = 5, **extra) -> dict:
    """A ``latent_rgb_factors.json`` entry for ``projection`` (values rounded to ``decimals``)."""
    def rounded(values: Sequence[float]) -> List[float]:
        return [round(float(value), decimals) for value in values]

    return {"name": projection.name, "match": match, "weight": [rounded(row) for row in projection.weight.tolist()],
            "bias": rounded(projection.bias.tolist()), "source": projection.source, **extra}
