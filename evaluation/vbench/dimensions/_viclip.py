"""ViCLIP (InternVid's video CLIP, `ViClip-InternVid-10M-FLT.pth`, the state dict under `'model'`) under the
official parameter names, any size.

Written for the pack against the published architecture: the vision encoder embeds each frame with a Conv3d of
kernel 1 x patch x patch (`vision_encoder.conv1`, no bias), prepends `class_embedding` to every frame, adds
`positional_embedding`, then adds `temporal_positional_embedding` [1, T, width] to the patch tokens; one
pre-norm transformer (`resblocks.N.{ln_1, attn, ln_2, mlp.c_fc, mlp.c_proj}`, quick GELU, torch's
MultiheadAttention) attends jointly over the class token of frame 0 and all T x grid^2 patch tokens (ordered patch
by patch, frames inner); `ln_post`, then the class token times `proj`. The text encoder is OpenAI CLIP's
(`token_embedding`, `positional_embedding` of the context length, causal mask, `ln_final`, `text_projection` at
the highest token id). The released model: vision ViT-L/14 (width 1024, 24 layers, 8 frames of 224 px),
text width 768, 12 layers, context 32, joint space 768; heads are width // 64. The sizes are read from the
checkpoint's shapes, so tiny models load the same way.

Unlike the official encoder, whose slicing takes the class tokens of the first B frames of the batch (right only
for one video at a time), each video keeps the class token of its own first frame, so videos can be batched; with
one video both are the same.
"""

import re
from collections import OrderedDict
from dataclasses import dataclass
from typing import Dict

import torch
import torch.nn as nn
from einops import rearrange


@dataclass(frozen=True)
class ViCLIPConfig:
    vision_width: int = 1024
    vision_layers: int = 24
    vision_heads: int = 16
    patch_size: int = 14
    image_size: int = 224
    num_frames: int = 8
    embed_dim: int = 768
    text_width: int = 768
    text_layers: int = 12
    text_heads: int = 12
    context_length: int = 32
    vocab_size: int = 49408


class QuickGELU(nn.Module):
    def forward(self, x):
        return x * torch.sigmoid(1.702 * x)


class ResidualAttentionBlock(nn.Module):
    """Pre-norm block on sequence-first tokens [N, B, C]."""

    def __init__(self, width: int, heads: int):
        super().__init__()
        self.attn = nn.MultiheadAttention(width, heads)
        self.ln_1 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(OrderedDict([
            ("c_fc", nn.Linear(width, width * 4)), ("gelu", QuickGELU()), ("c_proj", nn.Linear(width * 4, width)),
        ]))
        self.ln_2 = nn.LayerNorm(width)

    def forward(self, x, attn_mask=None):
        h = self.ln_1(x)
        x = x + self.attn(h, h, h, need_weights=False, attn_mask=attn_mask)[0]
        return x + self.mlp(self.ln_2(x))


class Transformer(nn.Module):
    def __init__(self, width: int, layers: int, heads: int):
        super().__init__()
        self.resblocks = nn.ModuleList(ResidualAttentionBlock(width, heads) for _ in range(layers))

    def forward(self, x, attn_mask=None):
        for block in self.resblocks:
            x = block(x, attn_mask)
        return x


class ViCLIPVision(nn.Module):
    def __init__(self, config: ViCLIPConfig):
        super().__init__()
        width, patch = config.vision_width, config.patch_size
        self.conv1 = nn.Conv3d(3, width, (1, patch, patch), (1, patch, patch), bias=False)
        self.class_embedding = nn.Parameter(torch.zeros(width))
        self.positional_embedding = nn.Parameter(torch.zeros((config.image_size // patch) ** 2 + 1, width))
        self.ln_pre = nn.LayerNorm(width)
        self.temporal_positional_embedding = nn.Parameter(torch.zeros(1, config.num_frames, width))
        self.transformer = Transformer(width, config.vision_layers, config.vision_heads)
        self.ln_post = nn.LayerNorm(width)
        self.proj = nn.Parameter(torch.zeros(width, config.embed_dim))

    def forward(self, video):
        """video [B, 3, T, H, W] (CLIP-normalised) -> features [B, embed_dim]."""
        x = self.conv1(video)
        b, c, t, h, w = x.shape
        x = x.permute(0, 2, 3, 4, 1).reshape(b * t, h * w, c)
        cls = self.class_embedding.to(x.dtype).expand(b * t, 1, c)
        x = torch.cat([cls, x], dim=1) + self.positional_embedding.to(x.dtype)
        # the class token of each video's first frame (with its position embedding)
        cls_tokens = x.view(b, t, h * w + 1, c)[:, 0, :1]
        x = rearrange(x[:, 1:], "(b t) n c -> (b n) t c", b=b, t=t)
        if t == 1:
            x = x + self.temporal_positional_embedding.mean(1)
        else:
            x = x + self.temporal_positional_embedding
        x = rearrange(x, "(b n) t c -> b (n t) c", b=b, t=t)
        x = self.ln_pre(torch.cat((cls_tokens, x), dim=1))
        x = self.transformer(x.permute(1, 0, 2))
        x = self.ln_post(x)
        return x[0] @ self.proj


class ViCLIPText(nn.Module):
    def __init__(self, config: ViCLIPConfig):
        super().__init__()
        self.context_length = config.context_length
        self.transformer = Transformer(config.text_width, config.text_layers, config.text_heads)
        self.token_embedding = nn.Embedding(config.vocab_size, config.text_width)
        self.positional_embedding = nn.Parameter(torch.zeros(config.context_length, config.text_width))
        self.ln_final = nn.LayerNorm(config.text_width)
        self.text_projection = nn.Parameter(torch.zeros(config.text_width, config.embed_dim))

    def forward(self, ids):
        """token ids [B, context_length] -> features [B, embed_dim], read at each row's highest id (end of text)."""
        n = ids.shape[1]
        mask = torch.full((n, n), float("-inf"), device=ids.device).triu_(1)
        x = self.token_embedding(ids) + self.positional_embedding
        x = self.transformer(x.permute(1, 0, 2), mask.to(x.dtype)).permute(1, 0, 2)
        x = self.ln_final(x)
        return x[torch.arange(x.shape[0]), ids.argmax(dim=-1)] @ self.text_projection


class ViCLIP(nn.Module):
    """`vision_encoder`, `text_encoder` and the contrastive `temp` of the released checkpoint."""

    def __init__(self, config: ViCLIPConfig = ViCLIPConfig()):
        super().__init__()
        self.config = config
        self.vision_encoder = ViCLIPVision(config)
        self.text_encoder = ViCLIPText(config)
        self.temp = nn.Parameter(torch.tensor(1 / 100.0))

    def encode_vision(self, frames):
        """frames [B, T, 3, H, W] -> features [B, embed_dim] (not normalised)."""
        return self.vision_encoder(frames.permute(0, 2, 1, 3, 4))

    def encode_text(self, ids):
        return self.text_encoder(ids)


def config_from_state_dict(state_dict: Dict) -> ViCLIPConfig:
    """The sizes of the ViCLIP whose (unprefixed-`model`) state dict this is; KeyError on a missing key."""

    def layers(prefix):
        return len({int(m.group(1)) for key in state_dict if (m := re.match(prefix + r"(\d+)\.", key))})

    vision_width, _, _, patch, _ = state_dict["vision_encoder.conv1.weight"].shape
    grid = round((state_dict["vision_encoder.positional_embedding"].shape[0] - 1) ** 0.5)
    vocab_size, text_width = state_dict["text_encoder.token_embedding.weight"].shape
    return ViCLIPConfig(
        vision_width=vision_width,
        vision_layers=layers(r"vision_encoder\.transformer\.resblocks\."),
        vision_heads=max(vision_width // 64, 1),
        patch_size=patch,
        image_size=grid * patch,
        num_frames=state_dict["vision_encoder.temporal_positional_embedding"].shape[1],
        embed_dim=state_dict["vision_encoder.proj"].shape[1],
        text_width=text_width,
        text_layers=layers(r"text_encoder\.transformer\.resblocks\."),
        text_heads=max(text_width // 64, 1),
        context_length=state_dict["text_encoder.positional_embedding"].shape[0],
        vocab_size=vocab_size,
    )


REQUIRED_KEYS = (
    "vision_encoder.conv1.weight", "vision_encoder.positional_embedding",
    "vision_encoder.temporal_positional_embedding", "vision_encoder.proj", "text_encoder.token_embedding.weight",
    "text_encoder.positional_embedding",
)


def load_viclip(path: str, name: str, device="cpu") -> ViCLIP:
    """The pack's ViCLIP (fp32, eval) holding the official checkpoint file `path` (`{'model': state dict}`, or the
    state dict itself), loaded strictly; ValueError naming the file when it is of another layout."""
    from ._common import check_keys, load_torch_checkpoint

    loaded = load_torch_checkpoint(path, name)
    state_dict = loaded.get("model", loaded) if isinstance(loaded, dict) else loaded
    if not isinstance(state_dict, dict):
        raise ValueError(f"{name}: {path!r} holds no ViCLIP state dict (found {type(state_dict).__name__})")
    missing = [key for key in REQUIRED_KEYS if key not in state_dict]
    if missing:
        raise ValueError(
            f"{name}: {path!r} is not a ViCLIP checkpoint (ViClip-InternVid-10M-FLT.pth layout: the state dict under "
            f"'model' with vision_encoder.* and text_encoder.*); no {', '.join(missing)}"
        )
    model = ViCLIP(config_from_state_dict(state_dict))
    check_keys(model.state_dict(), state_dict, path, name)
    model.load_state_dict({key: value.float() for key, value in state_dict.items()}, strict=True)
    return model.to(device=device, dtype=torch.float32).eval()


def middle_frame_indices(num_frames: int, length: int):
    """VBench's `get_frame_indices(num_frames, length, 'middle')`: the middle frame of each of min(num_frames,
    length) equal parts (edges truncated to int), padded with the last index up to num_frames."""
    import numpy as np

    parts = min(num_frames, length)
    edges = np.linspace(start=0, stop=length, num=parts + 1).astype(int)
    indices = [(int(start) + int(stop) - 1) // 2 for start, stop in zip(edges[:-1], edges[1:])]
    return indices + [indices[-1]] * (num_frames - len(indices))


def clip_transform_uint8(frames, n_px: int = 224):
    """VBench's `clip_transform(n_px)` on uint8 frames [T,3,H,W], as torchvision runs it on uint8 tensors: shorter
    side n_px (longer side truncated), bicubic without antialias computed in float then clamped to 0..255 and
    rounded back to uint8; centre crop; /255; CLIP mean/std."""
    import torch.nn.functional as F
    from torchvision.transforms import functional as TF

    from ._common import CLIP_MEAN, CLIP_STD

    h, w = frames.shape[-2:]
    size = [n_px, int(n_px * w / h)] if h <= w else [int(n_px * h / w), n_px]
    if [h, w] != size:
        resized = F.interpolate(frames.float(), size=size, mode="bicubic", align_corners=False)
        frames = resized.clamp(0, 255).round().to(torch.uint8)
    frames = TF.center_crop(frames, n_px)
    return TF.normalize(frames.float().div(255.0), CLIP_MEAN, CLIP_STD)


def video_text_similarity(videos, texts, *, checkpoints, entry, name, device="cpu", batch_size: int = 32,
                          clip_bpe=None):
    """(mean over videos, per-video scores) of cos(ViCLIP video feature, ViCLIP text feature of the video's text),
    as VBench's temporal_style and overall_consistency: each video's frames sampled by `middle_frame_indices`,
    `clip_transform_uint8`, encoded in fp32; `batch_size` frames (whole videos, at least one) a forward pass. The
    checkpoint is `checkpoints['viclip']` (manifest entry `entry`), the merges file `clip_bpe` (None: the
    official one)."""
    import numpy as np
    import torch.nn.functional as F

    from ._clip_tokenizer import load_bpe, tokenize
    from ._common import checkpoint_file

    viclip_path = checkpoint_file(checkpoints, "viclip", name, entry)
    tokenizer = load_bpe(clip_bpe, name)
    unique = list(dict.fromkeys(texts))
    tokenize(tokenizer, unique, 2, name)  # text the tokenizer refuses is named before the model loads
    try:
        model = load_viclip(viclip_path, name, device)
    except ValueError as error:
        raise ValueError(f"{error}; `vdp download {entry}` fetches the official file") from None
    config = model.config
    ids = tokenize(tokenizer, unique, config.context_length, name)
    if int(ids.max()) >= config.vocab_size:
        raise ValueError(
            f"{name}: the BPE vocabulary {clip_bpe or 'of CLIP'} gives token id {int(ids.max())}, beyond the "
            f"{config.vocab_size} token embeddings of {viclip_path!r}"
        )
    per_batch = max(1, batch_size // config.num_frames)

    def clip_of(video):
        frames = torch.from_numpy(video[middle_frame_indices(config.num_frames, len(video))]).permute(0, 3, 1, 2)
        return clip_transform_uint8(frames, config.image_size)

    with torch.no_grad():
        text_features = F.normalize(model.encode_text(ids.to(device)).float(), dim=-1)
        video_features = []
        # whole videos, `per_batch` at a time, preprocessed as they are encoded
        for start in range(0, len(videos), per_batch):
            clips = torch.stack([clip_of(video) for video in videos[start:start + per_batch]])
            video_features.append(F.normalize(model.encode_vision(clips.to(device)).float(), dim=-1).cpu())
        video_features = torch.cat(video_features)
    text_of_video = text_features.cpu()[[unique.index(text) for text in texts]]
    per_video = [float(score) for score in (video_features * text_of_video).sum(-1)]
    return float(np.mean(per_video)), per_video
