"""ROVI video UNet of language-driven video inpainting (LGVI / LGVI-I), weight-compatible with the released
`jianzongwu/lgvi` and `jianzongwu/lgvi-i` `unet/` folders (official `rovi/models/unet.py::RoviModel`).

An SD-1.5-style UNet whose 2-D layers run on every frame, with, in each transformer block (official order):

    h = attn1(norm1(h)) + h                           spatial self-attention per frame
    text = lan_cross_attn(lan_norm(text), h) + text   optional: text tokens attend to the frame (this block only)
    h = attn2(norm2(h), text) + h                     text cross-attention
    h = attn_temp(norm_temp(h)) + h                   optional: every pixel attends across the frames
    h = ff(norm3(h)) + h
    h = cross_frame_attn(norm_cross_frame(h)) + h     optional: keys/values from the previous or the first frame

The video to inpaint enters as VAE latents `img_condition`: added after a zero-initialised `condition_conv_in`
(in_channels 4) or concatenated to the noisy latents (in_channels 8, InstructPix2Pix style). An optional mask
decoder predicts a per-frame mask of the region to edit from the cross-attention up blocks' features.

Layout: frames are folded into the batch (`(b f) c h w`) for convolutions and attention; the ResNet and output
GroupNorms normalise over all frames of a sample, as the official 5-D GroupNorms do.

Differences from the official code, none of which changes its numbers:
- attention runs through torch SDPA (diffusers' `AttnProcessor2_0`); no xformers;
- `ref_frame_type_2` is accepted and stored, and has no effect (the official code reads it only in a module it
  never builds); `attention_mask` (ignored by every official block) is not an argument;
- `return_dict=False` returns `(sample, mask)` when the model has a mask decoder (the official drops the mask);
- an unsupported switch (in_channels other than 4 or 8, dual_cross_attention, an unknown block type) is refused
  when the model is built.
"""

from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.loaders import PeftAdapterMixin
from diffusers.models.activations import get_activation
from diffusers.models.attention import FeedForward
from diffusers.models.attention_processor import Attention
from diffusers.models.embeddings import TimestepEmbedding, Timesteps
from diffusers.models.modeling_utils import ModelMixin
from diffusers.models.resnet import Downsample2D, Upsample2D
from diffusers.utils import BaseOutput
from einops import rearrange, repeat
from torch import nn

from ._checked import CheckedLoadingMixin

OFFICIAL_CLASS_NAME = "RoviModel"
CROSS_FRAME_TYPES = ("previous", "first")
DOWN_BLOCK_TYPES = ("CrossAttnDownBlock3D", "DownBlock3D")
UP_BLOCK_TYPES = ("CrossAttnUpBlock3D", "UpBlock3D")
# the official mask decoder's width and GroupNorm groups (fixed in its code)
MASK_DECODER_CHANNELS = 512
MASK_DECODER_GROUPS = 32


@dataclass
class RoviUNetOutput(BaseOutput):
    """Output of `RoviUNet3DConditionModel`.

    Args:
        sample (`torch.Tensor` [B, C, F, H, W]): the predicted noise.
        mask (`torch.Tensor` [B, 1, F, H, W] or None): the predicted edit mask in 0..1 (models with a mask decoder).
    """

    sample: torch.Tensor
    mask: Optional[torch.Tensor] = None


def _norm_over_frames(norm: nn.GroupNorm, hidden_states: torch.Tensor, num_frames: int) -> torch.Tensor:
    """GroupNorm of folded frames `(b f) c h w` with statistics over all frames of a sample."""
    video = rearrange(hidden_states, "(b f) c h w -> b c f h w", f=num_frames)
    # contiguous again: the convolutions that follow are faster on a contiguous input
    return rearrange(norm(video), "b c f h w -> (b f) c h w").contiguous()


def _block_type(name: str) -> str:
    return name[len("UNetRes"):] if name.startswith("UNetRes") else name


class CrossFrameAttnProcessor:
    """Attention whose keys and values come from another frame of the same video (SDPA).

    Args:
        reference (`str`): "previous" (frame i attends to frame i-1, frame 0 to itself) or "first" (frame 0).
    """

    def __init__(self, reference: str):
        if reference not in CROSS_FRAME_TYPES:
            raise ValueError(f"cross_frame_type={reference!r} must be one of {CROSS_FRAME_TYPES} or None")
        self.reference = reference

    def __call__(self, attn: Attention, hidden_states, encoder_hidden_states=None, attention_mask=None, num_frames=1):
        query = attn.to_q(hidden_states)
        key = attn.to_k(hidden_states)
        value = attn.to_v(hidden_states)
        if self.reference == "previous":
            source = torch.clamp(torch.arange(num_frames, device=hidden_states.device) - 1, min=0)
        else:
            source = torch.zeros(num_frames, dtype=torch.long, device=hidden_states.device)

        def from_source(tensor):
            tensor = rearrange(tensor, "(b f) n c -> b f n c", f=num_frames)[:, source]
            return rearrange(tensor, "b f n (h d) -> (b f) h n d", h=attn.heads)

        query = rearrange(query, "b n (h d) -> b h n d", h=attn.heads)
        out = F.scaled_dot_product_attention(query, from_source(key), from_source(value), scale=attn.scale)
        out = rearrange(out, "b h n d -> b n (h d)").to(query.dtype)
        return attn.to_out[1](attn.to_out[0](out))


class RoviTransformerBlock(nn.Module):
    """Spatial, language, text, temporal and cross-frame attention of one ROVI transformer block (see module doc)."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        head_dim: int,
        cross_attention_dim: int,
        only_cross_attention: bool = False,
        upcast_attention: bool = False,
        temp_attn: bool = False,
        cross_frame_type: Optional[str] = None,
        lan_cross_attn: bool = False,
    ):
        super().__init__()
        self.only_cross_attention = only_cross_attention
        own_context_dim = cross_attention_dim if only_cross_attention else None
        heads = dict(heads=num_heads, dim_head=head_dim, upcast_attention=upcast_attention)

        self.attn1 = Attention(query_dim=dim, cross_attention_dim=own_context_dim, **heads)
        self.norm1 = nn.LayerNorm(dim)
        self.lan_cross_attn = None
        self.lan_norm = None
        if lan_cross_attn:
            self.lan_cross_attn = Attention(query_dim=cross_attention_dim, cross_attention_dim=dim, **heads)
            self.lan_norm = nn.LayerNorm(cross_attention_dim)
            nn.init.zeros_(self.lan_cross_attn.to_out[0].weight)
        self.attn2 = Attention(query_dim=dim, cross_attention_dim=cross_attention_dim, **heads)
        self.norm2 = nn.LayerNorm(dim)
        self.ff = FeedForward(dim, activation_fn="geglu")
        self.norm3 = nn.LayerNorm(dim)
        self.cross_frame_attn = None
        if cross_frame_type is not None:
            self.cross_frame_attn = Attention(
                query_dim=dim, cross_attention_dim=own_context_dim,
                processor=CrossFrameAttnProcessor(cross_frame_type), **heads,
            )
            nn.init.zeros_(self.cross_frame_attn.to_out[0].weight)
            self.norm_cross_frame = nn.LayerNorm(dim)
        self.attn_temp = None
        self.norm_temp = None
        if temp_attn:
            self.attn_temp = Attention(query_dim=dim, cross_attention_dim=own_context_dim, **heads)
            nn.init.zeros_(self.attn_temp.to_out[0].weight)
            self.norm_temp = nn.LayerNorm(dim)

    def forward(self, hidden_states: torch.Tensor, text: torch.Tensor, num_frames: int) -> torch.Tensor:
        """hidden_states [(b f), h*w, dim], text [(b f), N, cross_attention_dim] -> [(b f), h*w, dim]."""
        normed = self.norm1(hidden_states)
        hidden_states = self.attn1(normed, text if self.only_cross_attention else None) + hidden_states
        if self.lan_cross_attn is not None:
            text = self.lan_cross_attn(self.lan_norm(text), encoder_hidden_states=hidden_states) + text
        hidden_states = self.attn2(self.norm2(hidden_states), encoder_hidden_states=text) + hidden_states
        if self.attn_temp is not None:
            pixels = hidden_states.shape[1]
            hidden_states = rearrange(hidden_states, "(b f) d c -> (b d) f c", f=num_frames)
            hidden_states = self.attn_temp(self.norm_temp(hidden_states)) + hidden_states
            hidden_states = rearrange(hidden_states, "(b d) f c -> (b f) d c", d=pixels)
        hidden_states = self.ff(self.norm3(hidden_states)) + hidden_states
        if self.cross_frame_attn is not None:
            normed = self.norm_cross_frame(hidden_states)
            hidden_states = self.cross_frame_attn(normed, num_frames=num_frames) + hidden_states
        return hidden_states


class RoviTransformer(nn.Module):
    """GroupNorm, 1x1 projection, one `RoviTransformerBlock` and the projection back, with a residual (per frame)."""

    def __init__(
        self, channels: int, num_heads: int, cross_attention_dim: int, norm_num_groups: int,
        use_linear_projection: bool = False, **block_options,
    ):
        super().__init__()
        self.use_linear_projection = use_linear_projection
        self.norm = nn.GroupNorm(num_groups=norm_num_groups, num_channels=channels, eps=1e-6, affine=True)
        projection = (lambda a, b: nn.Linear(a, b)) if use_linear_projection else (lambda a, b: nn.Conv2d(a, b, 1))
        self.proj_in = projection(channels, channels)
        self.transformer_blocks = nn.ModuleList(
            [RoviTransformerBlock(channels, num_heads, channels // num_heads, cross_attention_dim, **block_options)]
        )
        self.proj_out = projection(channels, channels)

    def forward(self, hidden_states: torch.Tensor, text: torch.Tensor, num_frames: int) -> torch.Tensor:
        height, width = hidden_states.shape[-2:]
        residual = hidden_states
        hidden_states = self.norm(hidden_states)
        if not self.use_linear_projection:
            hidden_states = self.proj_in(hidden_states)
        hidden_states = rearrange(hidden_states, "n c h w -> n (h w) c")
        if self.use_linear_projection:
            hidden_states = self.proj_in(hidden_states)
        for block in self.transformer_blocks:
            hidden_states = block(hidden_states, text, num_frames)
        if self.use_linear_projection:
            hidden_states = self.proj_out(hidden_states)
        hidden_states = rearrange(hidden_states, "n (h w) c -> n c h w", h=height, w=width)
        if not self.use_linear_projection:
            hidden_states = self.proj_out(hidden_states)
        return hidden_states + residual


class RoviResnetBlock(nn.Module):
    """Pre-norm ResNet block on folded frames; GroupNorms over all frames, the time embedding shared by them."""

    def __init__(
        self, in_channels: int, out_channels: int, temb_channels: int, eps: float, groups: int, act_fn: str,
        time_embedding_norm: str = "default", output_scale_factor: float = 1.0,
    ):
        super().__init__()
        if time_embedding_norm not in ("default", "scale_shift"):
            raise ValueError(f"resnet_time_scale_shift={time_embedding_norm!r} must be 'default' or 'scale_shift'")
        self.time_embedding_norm = time_embedding_norm
        self.output_scale_factor = output_scale_factor
        self.norm1 = nn.GroupNorm(num_groups=groups, num_channels=in_channels, eps=eps, affine=True)
        self.conv1 = nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1)
        scale_shift = 2 if time_embedding_norm == "scale_shift" else 1
        self.time_emb_proj = nn.Linear(temb_channels, out_channels * scale_shift)
        self.norm2 = nn.GroupNorm(num_groups=groups, num_channels=out_channels, eps=eps, affine=True)
        self.dropout = nn.Dropout(0.0)
        self.conv2 = nn.Conv2d(out_channels, out_channels, kernel_size=3, padding=1)
        self.nonlinearity = get_activation(act_fn)
        self.conv_shortcut = (
            nn.Conv2d(in_channels, out_channels, kernel_size=1) if in_channels != out_channels else None
        )

    def forward(self, input_tensor: torch.Tensor, temb: torch.Tensor, num_frames: int) -> torch.Tensor:
        hidden_states = self.nonlinearity(_norm_over_frames(self.norm1, input_tensor, num_frames))
        hidden_states = self.conv1(hidden_states)
        temb = self.time_emb_proj(self.nonlinearity(temb))
        temb = repeat(temb, "b c -> (b f) c 1 1", f=num_frames)
        if self.time_embedding_norm == "default":
            hidden_states = _norm_over_frames(self.norm2, hidden_states + temb, num_frames)
        else:
            scale, shift = temb.chunk(2, dim=1)
            hidden_states = _norm_over_frames(self.norm2, hidden_states, num_frames) * (1 + scale) + shift
        hidden_states = self.conv2(self.dropout(self.nonlinearity(hidden_states)))
        if self.conv_shortcut is not None:
            input_tensor = self.conv_shortcut(input_tensor)
        return (input_tensor + hidden_states) / self.output_scale_factor


class RoviDownBlock(nn.Module):
    """Down block: `num_layers` ResNets (each then a transformer when `cross_attention`), then a stride-2 conv."""

    def __init__(
        self, in_channels: int, out_channels: int, num_layers: int, add_downsample: bool, downsample_padding: int,
        resnet_options: dict, transformer_options: Optional[dict],
    ):
        super().__init__()
        self.has_cross_attention = transformer_options is not None
        self.resnets = nn.ModuleList(
            [RoviResnetBlock(in_channels if i == 0 else out_channels, out_channels, **resnet_options)
             for i in range(num_layers)]
        )
        if self.has_cross_attention:
            self.attentions = nn.ModuleList(
                [RoviTransformer(out_channels, **transformer_options) for _ in range(num_layers)]
            )
        self.downsamplers = None
        if add_downsample:
            self.downsamplers = nn.ModuleList(
                [Downsample2D(out_channels, use_conv=True, out_channels=out_channels, padding=downsample_padding,
                              name="op")]
            )

    def forward(self, hidden_states, temb, text, num_frames) -> Tuple[torch.Tensor, Tuple[torch.Tensor, ...]]:
        outputs = ()
        for i, resnet in enumerate(self.resnets):
            hidden_states = resnet(hidden_states, temb, num_frames)
            if self.has_cross_attention:
                hidden_states = self.attentions[i](hidden_states, text, num_frames)
            outputs += (hidden_states,)
        if self.downsamplers is not None:
            for downsampler in self.downsamplers:
                hidden_states = downsampler(hidden_states)
            outputs += (hidden_states,)
        return hidden_states, outputs


class RoviUpBlock(nn.Module):
    """Up block: `num_layers` ResNets on [h ; skip] (each then a transformer when `cross_attention`), then 2x."""

    def __init__(
        self, in_channels: int, prev_output_channel: int, out_channels: int, num_layers: int, add_upsample: bool,
        resnet_options: dict, transformer_options: Optional[dict],
    ):
        super().__init__()
        self.has_cross_attention = transformer_options is not None
        self.resnets = nn.ModuleList(
            [
                RoviResnetBlock(
                    (prev_output_channel if i == 0 else out_channels)
                    + (in_channels if i == num_layers - 1 else out_channels),
                    out_channels, **resnet_options,
                )
                for i in range(num_layers)
            ]
        )
        if self.has_cross_attention:
            self.attentions = nn.ModuleList(
                [RoviTransformer(out_channels, **transformer_options) for _ in range(num_layers)]
            )
        self.upsamplers = None
        if add_upsample:
            self.upsamplers = nn.ModuleList([Upsample2D(out_channels, use_conv=True, out_channels=out_channels)])

    def forward(self, hidden_states, skips, temb, text, num_frames, upsample_size=None) -> torch.Tensor:
        for i, resnet in enumerate(self.resnets):
            hidden_states = torch.cat([hidden_states, skips[-1 - i]], dim=1)
            hidden_states = resnet(hidden_states, temb, num_frames)
            if self.has_cross_attention:
                hidden_states = self.attentions[i](hidden_states, text, num_frames)
        if self.upsamplers is not None:
            for upsampler in self.upsamplers:
                hidden_states = upsampler(hidden_states, upsample_size)
        return hidden_states


class RoviMidBlock(nn.Module):
    """ResNet, transformer, ResNet at the lowest resolution (no language cross-attention, as the official)."""

    def __init__(self, channels: int, resnet_options: dict, transformer_options: dict):
        super().__init__()
        self.resnets = nn.ModuleList([RoviResnetBlock(channels, channels, **resnet_options) for _ in range(2)])
        self.attentions = nn.ModuleList([RoviTransformer(channels, **transformer_options)])

    def forward(self, hidden_states, temb, text, num_frames) -> torch.Tensor:
        hidden_states = self.resnets[0](hidden_states, temb, num_frames)
        hidden_states = self.attentions[0](hidden_states, text, num_frames)
        return self.resnets[1](hidden_states, temb, num_frames)


class RoviMaskProjection(nn.Module):
    """Two 3x3 convs per frame and a temporal conv over the frames of each pixel, each GroupNorm + ReLU."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, 1, 1, bias=False)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.conv_temp = nn.Conv1d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.norm1 = nn.GroupNorm(MASK_DECODER_GROUPS, out_channels)
        self.norm2 = nn.GroupNorm(MASK_DECODER_GROUPS, out_channels)
        self.norm_temp = nn.GroupNorm(MASK_DECODER_GROUPS, out_channels)

    def forward(self, x: torch.Tensor, num_frames: int) -> torch.Tensor:
        x = F.relu(_norm_over_frames(self.norm1, self.conv1(x), num_frames))
        x = F.relu(_norm_over_frames(self.norm2, self.conv2(x), num_frames))
        height, width = x.shape[-2:]
        x = rearrange(x, "(b f) c h w -> (b h w) c f", f=num_frames)
        x = F.relu(self.norm_temp(self.conv_temp(x)))
        return rearrange(x, "(b h w) c f -> (b f) c h w", h=height, w=width)


class RoviMaskDecoder(nn.Module):
    """Edit-mask head (official `MaskDecoder`): coarse-to-fine over the cross-attention up blocks' features."""

    def __init__(self, in_channels: Sequence[int]):
        super().__init__()
        self.num_levels = len(in_channels)
        self.projects = nn.ModuleList(
            [
                RoviMaskProjection(channels + (MASK_DECODER_CHANNELS if i else 0), MASK_DECODER_CHANNELS)
                for i, channels in enumerate(in_channels)
            ]
        )
        self.final_conv = nn.Conv2d(MASK_DECODER_CHANNELS, 1, 1)

    def forward(self, features: List[torch.Tensor], num_frames: int) -> torch.Tensor:
        """features: folded `(b f) c h w` maps, coarse to fine -> mask `(b f) 1 h w` in 0..1."""
        x = features[0]
        for i, project in enumerate(self.projects):
            x = project(x, num_frames)
            if i < self.num_levels - 2:
                x = F.interpolate(x, scale_factor=2, mode="nearest")
            if i < self.num_levels - 1:
                x = torch.cat([x, features[i + 1]], dim=1)
        return torch.sigmoid(self.final_conv(x))


class RoviUNet3DConditionModel(CheckedLoadingMixin, ModelMixin, ConfigMixin, PeftAdapterMixin):
    """The ROVI video UNet (official `RoviModel`); config arguments and state-dict keys equal the official ones.

    Args (as the official `RoviModel.__init__`; the SD-1.5 geometry by default):
        sample_size (`int`, *optional*): latent size the model was trained at (informational).
        in_channels (`int`, defaults to 4): 4 (video latents added through `condition_conv_in`) or 8 (concatenated).
        out_channels (`int`, defaults to 4).
        center_input_sample (`bool`, defaults to False), flip_sin_to_cos (`bool`, defaults to True),
        freq_shift (`int`, defaults to 0): timestep embedding and input options of diffusers' UNet2DConditionModel.
        down_block_types, up_block_types (`Tuple[str]`): "CrossAttnDownBlock3D"/"DownBlock3D" and
            "CrossAttnUpBlock3D"/"UpBlock3D"; mid_block_type (`str`): "UNetMidBlock3DCrossAttn".
        only_cross_attention (`bool` or `Tuple[bool]`), block_out_channels (`Tuple[int]`), layers_per_block (`int`),
        downsample_padding (`int`), mid_block_scale_factor (`float`), act_fn (`str`), norm_num_groups (`int`),
        norm_eps (`float`), cross_attention_dim (`int`), use_linear_projection (`bool`), class_embed_type (`str`),
        num_class_embeds (`int`), upcast_attention (`bool`), resnet_time_scale_shift (`str`): as UNet2DConditionModel.
        attention_head_dim (`int` or `Tuple[int]`, defaults to 8): the NUMBER of attention heads per block (old
            SD naming); each head has channels // heads dimensions.
        dual_cross_attention (`bool`, defaults to False): not supported (the official raises too).
        temp_attn (`bool`, defaults to False): temporal self-attention across frames in every transformer block.
        ref_frame_type_2 (`str`, *optional*): stored; has no effect (as in the official code).
        cross_frame_type (`str`, *optional*): "previous" or "first": attention to another frame's keys/values.
        mask_decoder_type (`str`, *optional*): "MaskDecoder" adds the edit-mask head.
        lan_cross_attn (`bool`, defaults to False): text tokens attend to the frame before the text cross-attention
            (down and up blocks).
    """

    @register_to_config
    def __init__(
        self,
        sample_size: Optional[int] = None,
        in_channels: int = 4,
        out_channels: int = 4,
        center_input_sample: bool = False,
        flip_sin_to_cos: bool = True,
        freq_shift: int = 0,
        down_block_types: Tuple[str, ...] = (
            "CrossAttnDownBlock3D", "CrossAttnDownBlock3D", "CrossAttnDownBlock3D", "DownBlock3D",
        ),
        mid_block_type: str = "UNetMidBlock3DCrossAttn",
        up_block_types: Tuple[str, ...] = (
            "UpBlock3D", "CrossAttnUpBlock3D", "CrossAttnUpBlock3D", "CrossAttnUpBlock3D"
        ),
        only_cross_attention: Union[bool, Tuple[bool, ...]] = False,
        block_out_channels: Tuple[int, ...] = (320, 640, 1280, 1280),
        layers_per_block: int = 2,
        downsample_padding: int = 1,
        mid_block_scale_factor: float = 1,
        act_fn: str = "silu",
        norm_num_groups: int = 32,
        norm_eps: float = 1e-5,
        cross_attention_dim: int = 1280,
        attention_head_dim: Union[int, Tuple[int, ...]] = 8,
        dual_cross_attention: bool = False,
        use_linear_projection: bool = False,
        class_embed_type: Optional[str] = None,
        num_class_embeds: Optional[int] = None,
        upcast_attention: bool = False,
        resnet_time_scale_shift: str = "default",
        temp_attn: bool = False,
        ref_frame_type_2: Optional[str] = None,
        cross_frame_type: Optional[str] = None,
        mask_decoder_type: Optional[str] = None,
        lan_cross_attn: bool = False,
    ):
        super().__init__()
        self._check_config(in_channels, down_block_types, mid_block_type, up_block_types, block_out_channels,
                           dual_cross_attention, cross_frame_type, mask_decoder_type, class_embed_type)
        num_blocks = len(block_out_channels)
        time_embed_dim = block_out_channels[0] * 4
        self.conv_in = nn.Conv2d(in_channels, block_out_channels[0], kernel_size=3, padding=1)
        self.condition_conv_in = None
        if in_channels == 4:
            self.condition_conv_in = nn.Conv2d(in_channels, block_out_channels[0], kernel_size=3, padding=1)
            nn.init.zeros_(self.condition_conv_in.weight)
            nn.init.zeros_(self.condition_conv_in.bias)

        self.time_proj = Timesteps(block_out_channels[0], flip_sin_to_cos, freq_shift)
        self.time_embedding = TimestepEmbedding(block_out_channels[0], time_embed_dim)
        self.class_embedding = None
        if class_embed_type is None and num_class_embeds is not None:
            self.class_embedding = nn.Embedding(num_class_embeds, time_embed_dim)
        elif class_embed_type == "timestep":
            self.class_embedding = TimestepEmbedding(block_out_channels[0], time_embed_dim)
        elif class_embed_type == "identity":
            self.class_embedding = nn.Identity()

        if isinstance(only_cross_attention, bool):
            only_cross_attention = (only_cross_attention,) * num_blocks
        if isinstance(attention_head_dim, int):
            attention_head_dim = (attention_head_dim,) * num_blocks
        resnet_options = dict(
            temb_channels=time_embed_dim, eps=norm_eps, groups=norm_num_groups, act_fn=act_fn,
            time_embedding_norm=resnet_time_scale_shift,
        )

        def transformer_options(num_heads: int, only_cross: bool, language: bool) -> dict:
            return dict(
                num_heads=num_heads, cross_attention_dim=cross_attention_dim, norm_num_groups=norm_num_groups,
                use_linear_projection=use_linear_projection, only_cross_attention=only_cross,
                upcast_attention=upcast_attention, temp_attn=temp_attn, cross_frame_type=cross_frame_type,
                lan_cross_attn=language,
            )

        self.down_blocks = nn.ModuleList()
        output_channel = block_out_channels[0]
        for i, block_type in enumerate(down_block_types):
            input_channel, output_channel = output_channel, block_out_channels[i]
            attention = _block_type(block_type) == "CrossAttnDownBlock3D"
            self.down_blocks.append(
                RoviDownBlock(
                    input_channel, output_channel, layers_per_block, add_downsample=i < num_blocks - 1,
                    downsample_padding=downsample_padding, resnet_options=resnet_options,
                    transformer_options=(
                        transformer_options(attention_head_dim[i], only_cross_attention[i], lan_cross_attn)
                        if attention else None
                    ),
                )
            )

        self.mid_block = RoviMidBlock(
            block_out_channels[-1], dict(resnet_options, output_scale_factor=mid_block_scale_factor),
            transformer_options(attention_head_dim[-1], False, False),
        )

        self.num_upsamplers = num_blocks - 1
        reversed_channels = list(reversed(block_out_channels))
        reversed_heads = list(reversed(attention_head_dim))
        reversed_only_cross = list(reversed(only_cross_attention))
        self.up_blocks = nn.ModuleList()
        output_channel = reversed_channels[0]
        for i, block_type in enumerate(up_block_types):
            prev_output_channel, output_channel = output_channel, reversed_channels[i]
            attention = _block_type(block_type) == "CrossAttnUpBlock3D"
            self.up_blocks.append(
                RoviUpBlock(
                    reversed_channels[min(i + 1, num_blocks - 1)], prev_output_channel, output_channel,
                    layers_per_block + 1, add_upsample=i < num_blocks - 1, resnet_options=resnet_options,
                    transformer_options=transformer_options(reversed_heads[i], reversed_only_cross[i], lan_cross_attn)
                    if attention else None,
                )
            )

        self.conv_norm_out = nn.GroupNorm(num_channels=block_out_channels[0], num_groups=norm_num_groups, eps=norm_eps)
        self.conv_act = nn.SiLU()
        self.conv_out = nn.Conv2d(block_out_channels[0], out_channels, kernel_size=3, padding=1)
        self.mask_decoder = RoviMaskDecoder(reversed_channels[1:]) if mask_decoder_type == "MaskDecoder" else None

    @staticmethod
    def _check_config(in_channels, down_block_types, mid_block_type, up_block_types, block_out_channels,
                      dual_cross_attention, cross_frame_type, mask_decoder_type, class_embed_type) -> None:
        if in_channels not in (4, 8):
            raise ValueError(f"in_channels={in_channels!r} must be 4 (condition added) or 8 (condition concatenated)")
        if not len(down_block_types) == len(up_block_types) == len(block_out_channels):
            raise ValueError(
                f"down_block_types ({len(down_block_types)}), up_block_types ({len(up_block_types)}) and "
                f"block_out_channels ({len(block_out_channels)}) must have the same length"
            )
        for name, types, allowed in (("down_block_types", down_block_types, DOWN_BLOCK_TYPES),
                                     ("up_block_types", up_block_types, UP_BLOCK_TYPES)):
            unknown = [t for t in types if _block_type(t) not in allowed]
            if unknown:
                raise ValueError(f"{name} has {unknown}; allowed: {allowed}")
        if mid_block_type != "UNetMidBlock3DCrossAttn":
            raise ValueError(f"mid_block_type={mid_block_type!r} must be 'UNetMidBlock3DCrossAttn'")
        if dual_cross_attention:
            raise ValueError("dual_cross_attention=True is not supported (the official RoviModel does not build it)")
        if cross_frame_type is not None and cross_frame_type not in CROSS_FRAME_TYPES:
            raise ValueError(f"cross_frame_type={cross_frame_type!r} must be one of {CROSS_FRAME_TYPES} or None")
        if mask_decoder_type not in (None, "MaskDecoder"):
            raise ValueError(f"mask_decoder_type={mask_decoder_type!r} must be 'MaskDecoder' or None")
        if class_embed_type not in (None, "timestep", "identity"):
            raise ValueError(f"class_embed_type={class_embed_type!r} must be None, 'timestep' or 'identity'")

    def forward(
        self,
        sample: torch.Tensor,
        timestep: Union[torch.Tensor, float, int],
        encoder_hidden_states: torch.Tensor,
        img_condition: torch.Tensor,
        class_labels: Optional[torch.Tensor] = None,
        return_dict: bool = True,
    ) -> Union[RoviUNetOutput, Tuple[torch.Tensor, ...]]:
        """Predicts the noise of `sample` given the text and the video to edit.

        Args:
            sample (`torch.Tensor` [B, 4, F, h, w]): noisy latents.
            timestep (`torch.Tensor`, `float` or `int`): one timestep, or one per sample.
            encoder_hidden_states (`torch.Tensor` [B, N, cross_attention_dim]): text embeddings (shared by frames).
            img_condition (`torch.Tensor` [B, 4, F, h, w]): scaled VAE latents of the video to edit.
            class_labels (`torch.Tensor`, *optional*): for models with a class embedding.
            return_dict (`bool`, defaults to True): return a `RoviUNetOutput` instead of a tuple.
        """
        batch, _, num_frames, height, width = sample.shape
        forward_upsample_size = height % 2**self.num_upsamplers != 0 or width % 2**self.num_upsamplers != 0
        if self.config.center_input_sample:
            sample = 2 * sample - 1.0

        timesteps = timestep
        if not torch.is_tensor(timesteps):
            dtype = torch.float64 if isinstance(timestep, float) else torch.int64
            timesteps = torch.tensor([timesteps], dtype=dtype, device=sample.device)
        elif timesteps.ndim == 0:
            timesteps = timesteps[None].to(sample.device)
        emb = self.time_embedding(self.time_proj(timesteps.expand(batch)).to(dtype=self.dtype))
        if self.class_embedding is not None:
            if class_labels is None:
                raise ValueError("class_labels is required: this model has a class embedding")
            if self.config.class_embed_type == "timestep":
                class_labels = self.time_proj(class_labels)
            emb = emb + self.class_embedding(class_labels).to(dtype=self.dtype)

        text = repeat(encoder_hidden_states, "b n c -> (b f) n c", f=num_frames)
        sample = rearrange(sample, "b c f h w -> (b f) c h w")
        condition = rearrange(img_condition, "b c f h w -> (b f) c h w")
        if self.condition_conv_in is not None:
            hidden_states = self.conv_in(sample) + self.condition_conv_in(condition)
        else:
            hidden_states = self.conv_in(torch.cat([sample, condition], dim=1))

        skips = (hidden_states,)
        for block in self.down_blocks:
            hidden_states, outputs = block(hidden_states, emb, text, num_frames)
            skips += outputs
        hidden_states = self.mid_block(hidden_states, emb, text, num_frames)

        mask_features = []
        for i, block in enumerate(self.up_blocks):
            block_skips = skips[-len(block.resnets):]
            skips = skips[: -len(block.resnets)]
            upsample_size = None
            if forward_upsample_size and i < len(self.up_blocks) - 1:
                upsample_size = skips[-1].shape[-2:]
            hidden_states = block(hidden_states, block_skips, emb, text, num_frames, upsample_size)
            if block.has_cross_attention:
                mask_features.append(hidden_states)

        hidden_states = self.conv_act(_norm_over_frames(self.conv_norm_out, hidden_states, num_frames))
        hidden_states = rearrange(self.conv_out(hidden_states), "(b f) c h w -> b c f h w", f=num_frames)
        mask = None
        if self.mask_decoder is not None:
            dtype = self.mask_decoder.final_conv.weight.dtype
            mask = self.mask_decoder([feature.to(dtype) for feature in mask_features], num_frames)
            mask = rearrange(mask, "(b f) c h w -> b c f h w", f=num_frames)
        output = RoviUNetOutput(sample=hidden_states, mask=mask)
        return output if return_dict else output.to_tuple()
