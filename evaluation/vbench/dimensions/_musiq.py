"""MUSIQ (multi-scale image quality transformer) under the state-dict names of the checkpoints VBench loads
(`musiq_spaq_ckpt-358bb6af.pth`, a plain state dict).

Written for the pack against the published architecture: a weight-standardised ResNet stem per 32x32 patch, hashed
spatial and scale embeddings, a pre-norm transformer with a class token and a padding mask. The preprocessing is
the one VBench runs through its MUSIQ in eval mode: inputs in 0..1 mapped to -1..1, patches of the image resized
(bicubic, no antialias, aspect kept) to each longer side in `longer_side_lengths` (padded or cut to a fixed count),
then all patches of the image at its own size. TensorFlow 'same' padding throughout.
"""

import math
from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from einops import rearrange

# patches the ResNet stem takes per pass (see MUSIQ.patch_features)
PATCH_CHUNK = 128


def same_padding(x: torch.Tensor, kernel: int, stride: int) -> torch.Tensor:
    """Zero padding as TensorFlow's 'SAME' (the extra pixel goes to the bottom/right)."""
    h, w = x.shape[-2:]
    pad_h = max((math.ceil(h / stride) - 1) * stride + kernel - h, 0)
    pad_w = max((math.ceil(w / stride) - 1) * stride + kernel - w, 0)
    return F.pad(x, (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2))


class StdConv(nn.Conv2d):
    """Conv2d with weight standardisation (per output channel, unbiased std + 1e-5) and 'same' padding."""

    def forward(self, x):
        weight = self.weight - self.weight.mean((1, 2, 3), keepdim=True)
        weight = weight / (weight.std((1, 2, 3), keepdim=True) + 1e-5)
        return F.conv2d(same_padding(x, self.kernel_size[0], self.stride[0]), weight, self.bias, self.stride)


class Bottleneck(nn.Module):
    def __init__(self, inplanes: int, outplanes: int):
        super().__init__()
        self.conv1 = StdConv(inplanes, inplanes, 1, 1, bias=False)
        self.gn1 = nn.GroupNorm(32, inplanes, eps=1e-4)
        self.conv2 = StdConv(inplanes, inplanes, 3, 1, bias=False)
        self.gn2 = nn.GroupNorm(32, inplanes, eps=1e-4)
        self.conv3 = StdConv(inplanes, outplanes, 1, 1, bias=False)
        self.gn3 = nn.GroupNorm(32, outplanes, eps=1e-4)
        self.conv_proj = StdConv(inplanes, outplanes, 1, 1, bias=False)
        self.gn_proj = nn.GroupNorm(32, outplanes, eps=1e-4)

    def forward(self, x):
        shortcut = self.gn_proj(self.conv_proj(x))
        x = F.relu(self.gn1(self.conv1(x)))
        x = F.relu(self.gn2(self.conv2(x)))
        return F.relu(self.gn3(self.conv3(x)) + shortcut)


class MultiHeadAttention(nn.Module):
    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        self.query = nn.Linear(dim, dim)
        self.key = nn.Linear(dim, dim)
        self.value = nn.Linear(dim, dim)
        self.out = nn.Linear(dim, dim)

    def forward(self, x, mask):
        q, k, v = (rearrange(f(x), "b n (h d) -> b h n d", h=self.num_heads) for f in (self.query, self.key, self.value))
        logits = (q @ k.transpose(-2, -1)) * q.shape[-1] ** -0.5
        # a pair with a padded token gets -1000, not -inf, as in the released model
        pair = mask[:, None, :, None] * mask[:, None, None, :]
        attention = logits.masked_fill(pair == 0, -1e3).softmax(dim=-1)
        return self.out(rearrange(attention @ v, "b h n d -> b n (h d)"))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x)))


class TransformerBlock(nn.Module):
    def __init__(self, dim: int, mlp_dim: int, num_heads: int):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attention = MultiHeadAttention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, mlp_dim)

    def forward(self, x, mask):
        x = x + self.attention(self.norm1(x), mask)
        return x + self.mlp(self.norm2(x))


class AddHashSpatialPositionEmbs(nn.Module):
    def __init__(self, grid_size: int, dim: int):
        super().__init__()
        self.position_emb = nn.Parameter(torch.zeros(1, grid_size * grid_size, dim))


class AddScaleEmbs(nn.Module):
    def __init__(self, num_scales: int, dim: int):
        super().__init__()
        self.scale_emb = nn.Parameter(torch.zeros(num_scales, dim))


class TransformerEncoder(nn.Module):
    def __init__(self, dim, mlp_dim, num_heads, num_layers, num_scales, grid_size):
        super().__init__()
        self.posembed_input = AddHashSpatialPositionEmbs(grid_size, dim)
        self.scaleembed_input = AddScaleEmbs(num_scales, dim)
        self.cls = nn.Parameter(torch.zeros(1, 1, dim))
        self.encoder_norm = nn.LayerNorm(dim, eps=1e-6)
        self.transformer = nn.ModuleDict(
            {f"encoderblock_{i}": TransformerBlock(dim, mlp_dim, num_heads) for i in range(num_layers)}
        )

    def forward(self, x, spatial_positions, scale_positions, mask):
        x = x + self.posembed_input.position_emb[0][spatial_positions] + self.scaleembed_input.scale_emb[scale_positions]
        x = torch.cat([self.cls.expand(x.shape[0], -1, -1), x], dim=1)
        mask = torch.cat([mask.new_ones(mask.shape[0], 1), mask], dim=1)
        for block in self.transformer.values():
            x = block(x, mask)
        return self.encoder_norm(x)


class MUSIQ(nn.Module):
    """MUSIQ quality score of images in 0..1 [B,3,H,W] (the mean opinion score; 0..100 for the SPAQ weights).

    Args:
        patch_size (int, default 32), hidden_size (384), mlp_dim (1152), num_heads (6), num_layers (14), num_scales (3),
        spatial_pos_grid_size (10), longer_side_lengths ((224, 384)): the released SPAQ model's settings.
    """

    def __init__(self, patch_size=32, hidden_size=384, mlp_dim=1152, num_heads=6, num_layers=14,
                 num_scales=3, spatial_pos_grid_size=10, longer_side_lengths: Sequence[int] = (224, 384)):
        super().__init__()
        self.patch_size = patch_size
        self.grid_size = spatial_pos_grid_size
        self.longer_side_lengths = sorted(longer_side_lengths)
        self.conv_root = StdConv(3, 64, 7, 2, bias=False)
        self.gn_root = nn.GroupNorm(32, 64, eps=1e-6)
        self.block1 = Bottleneck(64, 256)
        self.embedding = nn.Linear(256 * (patch_size // 4) ** 2, hidden_size)
        self.transformer_encoder = TransformerEncoder(
            hidden_size, mlp_dim, num_heads, num_layers, num_scales, spatial_pos_grid_size
        )
        # one class: the score itself (the SPAQ and KonIQ weights VBench uses)
        self.head = nn.Linear(hidden_size, 1)

    def _patches(self, image, scale_id, max_count):
        """(patches [B,N,3*p*p], hashed positions [N], scale ids [N], mask [N]) of one scale."""
        p = self.patch_size
        rows, cols = math.ceil(image.shape[-2] / p), math.ceil(image.shape[-1] / p)
        patches = F.unfold(same_padding(image, p, p), p, stride=p).transpose(1, 2)
        grid = torch.arange(self.grid_size, dtype=torch.float32, device=image.device)[None, None]
        hash_rows = F.interpolate(grid, rows, mode="nearest")[0, 0].long()
        hash_cols = F.interpolate(grid, cols, mode="nearest")[0, 0].long()
        positions = (hash_rows[:, None] * self.grid_size + hash_cols[None, :]).flatten()
        scales = torch.full_like(positions, scale_id)
        mask = torch.ones_like(positions)
        if max_count is not None:
            extra = max(max_count - patches.shape[1], 0)
            patches = F.pad(patches, (0, 0, 0, extra))[:, :max_count]
            positions, scales, mask = (F.pad(t, (0, extra))[:max_count] for t in (positions, scales, mask))
        return patches, positions, scales, mask

    def multiscale_patches(self, x):
        h, w = x.shape[-2:]
        parts = []
        for scale_id, length in enumerate(self.longer_side_lengths):
            ratio = length / max(h, w)
            resized = F.interpolate(x, (round(h * ratio), round(w * ratio)), mode="bicubic", align_corners=False)
            parts.append(self._patches(resized, scale_id, math.ceil(length / self.patch_size) ** 2))
        parts.append(self._patches(x, len(self.longer_side_lengths), None))
        return [torch.cat(items, dim=-2 if i == 0 else 0) for i, items in enumerate(zip(*parts))]

    def patch_features(self, patches: torch.Tensor) -> torch.Tensor:
        """The ResNet stem on patches [P,3,p,p] -> [P, (p/4)^2 * 256], channels last (the order of the released
        TensorFlow embedding weights), `PATCH_CHUNK` patches at a time (the activations of a chunk stay
        cache-sized; one pass over a batch's thousands of patches is bound by memory traffic)."""
        parts = []
        for chunk in patches.split(PATCH_CHUNK):
            chunk = F.relu(self.gn_root(self.conv_root(chunk)))
            # max pooling reads channels-last memory about 10x faster on a CPU; it is exact in either layout
            padded = same_padding(chunk, 3, 2).contiguous(memory_format=torch.channels_last)
            chunk = F.max_pool2d(padded, 3, 2).contiguous()
            parts.append(rearrange(self.block1(chunk), "n c h w -> n (h w c)"))
        return torch.cat(parts)

    def forward(self, x):
        patches, positions, scales, mask = self.multiscale_patches((x - 0.5) * 2)
        # The padding patches (the same for every image of a batch: they depend on its size only) are left out.
        # Their tokens only ever meet the -1000 attention logit, whose softmax weight is exactly 0 in float32 next
        # to any real logit, so the class token's output is the one computed with them.
        real = mask.bool()
        patches, positions, scales = patches[:, real], positions[real], scales[real]
        b, n = patches.shape[:2]
        tokens = rearrange(patches, "b n (c h w) -> (b n) c h w", c=3, h=self.patch_size)
        tokens = self.patch_features(tokens).unflatten(0, (b, n))
        mask = tokens.new_ones(b, n)
        x = self.transformer_encoder(self.embedding(tokens), positions, scales, mask)
        return self.head(x[:, 0])[:, 0]
