"""Vchitect-2.0 (VchitectXL) video transformer, weight-compatible with the released `Vchitect/Vchitect-2.0-2B`.

Each block is SD3's MMDiT block whose attention runs three branches in parallel on the same normalised input
(official `VchitectAttnProcessor`):

1. spatial joint attention per frame over [video tokens ; text tokens];
2. temporal attention: every token position (text positions included) attends across the frames of its sample,
   with 1D rotary embeddings over the frame index (interleaved pairs, theta 1e6);
3. cross attention from every token of every frame to the text tokens of the sample's first frame.

    h      = 1.1 * spatial + to_out_context(cross)
    video' = to_out[0](h_video) + to_out_temporal(temporal_video)          (temporal term absent when F == 1)
    text'  = to_add_out(h_text) + to_add_out_temporal(temporal_text)       (not in the last block)

Differences from the official code, none of which changes its numbers at batch size 1:
- batch size > 1 is correct: each sample gets its own timestep embedding and cross-attends to its own text
  (the official code tiles `temb` and takes the text keys of batch element 0);
- rotary tables are built for the frames in use only, not a 1,000,000-row table;
- the last block computes queries for video tokens only, since its text outputs are discarded;
- the temporal branch is skipped at F == 1 instead of computed and multiplied by zero;
- attention goes through diffusers' attention dispatch (torch SDPA by default); no apex/xformers;
- RepVideo's cross-layer aggregation is available as a config switch (`repvideo_aggregation`).
"""

from typing import Any, Dict, Optional, Tuple, Union

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.loaders import PeftAdapterMixin
from diffusers.models.attention import FeedForward
from diffusers.models.attention_dispatch import dispatch_attention_fn
from diffusers.models.cache_utils import CacheMixin
from diffusers.models.embeddings import (
    CombinedTimestepTextProjEmbeddings,
    PatchEmbed,
    get_1d_rotary_pos_embed,
    get_1d_sincos_pos_embed_from_grid,
)
from diffusers.models.modeling_outputs import Transformer2DModelOutput
from diffusers.models.modeling_utils import ModelMixin
from diffusers.models.normalization import AdaLayerNormContinuous, AdaLayerNormZero
from einops import rearrange
from torch import nn

from ._checked import CheckedLoadingMixin
from .repvideo import RepVideoAggregation, RepVideoSwitchMixin

# the official processor scales the spatial branch by this constant before adding the cross-attention branch
SPATIAL_BRANCH_SCALE = 1.1


def _linear_stack(x: torch.Tensor, layers) -> torch.Tensor:
    """One GEMM for several linears that read the same input; the result is split by the caller.

    The weights are cast to the input's dtype (a no-op unless they are stored in another one, e.g. fp8 storage with
    diffusers' layerwise casting, whose hooks do not run when the weights are read directly). Layers that are not plain
    ``nn.Linear`` (peft's LoRA layers, which add their adapters in their own forward) are called one by one instead:
    reading their base weight would leave the adapters out.
    """
    if any(type(layer) is not nn.Linear for layer in layers):
        return torch.cat([layer(x) for layer in layers], dim=-1)
    weight = torch.cat([layer.weight.to(x.dtype) for layer in layers], dim=0)
    bias = torch.cat([layer.bias.to(x.dtype) for layer in layers], dim=0)
    return F.linear(x, weight, bias)


def _apply_interleaved_rope(x: torch.Tensor, freqs_cis: torch.Tensor) -> torch.Tensor:
    """Rotates interleaved channel pairs of x [..., T, heads, head_dim] by freqs_cis [T, head_dim/2] (complex64).

    The official complex product `view_as_complex(x.float()) * freqs_cis`, computed in float32 and cast back.
    """
    x_complex = torch.view_as_complex(x.float().unflatten(-1, (-1, 2)))
    return torch.view_as_real(x_complex * freqs_cis[:, None, :]).flatten(-2).to(x.dtype)


def _spatial_rotations(head_dim: int, rows: int, columns: int, theta: float) -> torch.Tensor:
    """2D RoPE table [1, rows*columns, 1, head_dim/2] (complex64) over the patch grid, row-major as the tokens.

    The first half of each head's channel pairs turns with the token's row, the second half with its column, at the
    frequencies of diffusers' 1D RoPE over head_dim/2 channels. The leading 1 keeps the table from being read as a
    batch (FasterCache splits batch-first tensor arguments). ``head_dim`` is a multiple of 4 (the model's config check).
    """
    by_row = get_1d_rotary_pos_embed(head_dim // 2, torch.arange(rows, dtype=torch.float32), theta=theta)
    by_column = get_1d_rotary_pos_embed(head_dim // 2, torch.arange(columns, dtype=torch.float32), theta=theta)
    table = torch.cat([by_row[:, None].expand(-1, columns, -1), by_column[None].expand(rows, -1, -1)], dim=-1)
    return table.reshape(1, rows * columns, 1, head_dim // 2).to(torch.complex64)


class VchitectAttention(nn.Module):
    """Vchitect-2.0 parallel attention: spatial joint, temporal (RoPE over frames) and text cross attention.

    Parameter names equal the official `models/attention.py::Attention` as the Vchitect block builds it.

    Args:
        dim (`int`): model width (heads * head_dim).
        num_heads (`int`): attention heads.
        context_pre_only (`bool`): last block: no text output projection (`to_add_out`).
    """

    def __init__(self, dim: int, num_heads: int, context_pre_only: bool = False):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim={dim} must be divisible by num_heads={num_heads}")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.context_pre_only = context_pre_only

        self.to_q = nn.Linear(dim, dim)
        self.to_k = nn.Linear(dim, dim)
        self.to_v = nn.Linear(dim, dim)
        self.to_q_cross = nn.Linear(dim, dim)
        self.to_q_temp = nn.Linear(dim, dim)
        self.to_k_temp = nn.Linear(dim, dim)
        self.to_v_temp = nn.Linear(dim, dim)
        self.add_k_proj = nn.Linear(dim, dim)
        self.add_v_proj = nn.Linear(dim, dim)
        self.add_q_proj = nn.Linear(dim, dim)
        self.to_out = nn.ModuleList([nn.Linear(dim, dim), nn.Dropout(0.0)])
        self.to_out_temporal = nn.Linear(dim, dim)
        if not context_pre_only:
            self.to_add_out = nn.Linear(dim, dim)
        self.to_add_out_temporal = nn.Linear(dim, dim)
        self.to_out_context = nn.Linear(dim, dim)
        # the branches added to a pretrained image model start at zero, as in the official code
        for layer in (self.to_out_temporal, self.to_add_out_temporal, self.to_out_context):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        return x.unflatten(-1, (self.num_heads, self.head_dim))

    def _attend(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
        """[batch, tokens, D] inputs -> [batch, tokens, D], through diffusers' attention dispatch (SDPA by default)."""
        return dispatch_attention_fn(self._heads(query), self._heads(key), self._heads(value)).flatten(-2)

    def _spatial_with_rotations(self, query, keys, values, rotations):
        """Spatial attention of video queries where video-video logits see 2D RoPE and video-text logits do not.

        One attention call over doubled channels: the query is [rotated q ; q], a video key [rotated k ; 0] and a
        text key [0 ; k], so each logit is exactly rot(q).rot(k) or q.k, at the head dim's own scale.
        """
        rotations = rotations[0, :, 0]  # [S, head_dim/2]
        video_tokens = rotations.shape[0]
        query, keys, values = self._heads(query), self._heads(keys), self._heads(values)
        video_keys, text_keys = keys[:, :video_tokens], keys[:, video_tokens:]
        query = torch.cat([_apply_interleaved_rope(query, rotations), query], dim=-1)
        keys = torch.cat([
            torch.cat([_apply_interleaved_rope(video_keys, rotations), torch.zeros_like(video_keys)], dim=-1),
            torch.cat([torch.zeros_like(text_keys), text_keys], dim=-1),
        ], dim=1)
        return dispatch_attention_fn(query, keys, values, scale=self.head_dim ** -0.5).flatten(-2)

    def _spatial_and_cross(self, query, cross_query, keys, values, first_keys, first_values, num_frames,
                           rotations=None):
        """1.1 * spatial attention + to_out_context(cross attention) for one group of query tokens (``rotations``:
        the 2D RoPE table for video queries when the model has spatial RoPE, else None)."""
        if rotations is None:
            spatial = self._attend(query, keys, values)
        else:
            spatial = self._spatial_with_rotations(query, keys, values, rotations)
        cross = self._attend(
            rearrange(cross_query, "(b f) s d -> b (f s) d", f=num_frames), first_keys, first_values
        )
        cross = rearrange(cross, "b (f s) d -> (b f) s d", f=num_frames)
        return torch.add(self.to_out_context(cross), spatial, alpha=SPATIAL_BRANCH_SCALE)

    def _temporal(self, query, key, value, num_frames, freqs_cis):
        """Each token position attends across the frames of its sample, with RoPE over the frame index."""
        batch = query.shape[0] // num_frames
        query, key, value = (
            rearrange(self._heads(t), "(b f) s h c -> (b s) f h c", f=num_frames) for t in (query, key, value)
        )
        query = _apply_interleaved_rope(query, freqs_cis)
        key = _apply_interleaved_rope(key, freqs_cis)
        out = dispatch_attention_fn(query, key, value)
        return rearrange(out, "(b s) f h c -> (b f) s (h c)", b=batch)

    def forward(
        self,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor,
        num_frames: int,
        rope: Optional[torch.Tensor],
        spatial_rope: Optional[torch.Tensor] = None,
    ) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
        """Args: hidden_states [B*F, S, D] (video), encoder_hidden_states [B*F, L, D] (text, per frame);
        rope: complex rotations [F, head_dim/2], None when F == 1; spatial_rope: the 2D RoPE table
        [1, S, 1, head_dim/2] of a model with `spatial_rope_theta`, else None (video-video spatial logits only).
        Returns (video [B*F,S,D], text [B*F,L,D] or None).

        Queries never mix: each video or text token's outputs depend on its own query only, so video and text
        queries are attended separately (no concatenated query tensors), and the last block, whose text outputs
        are discarded, computes none for text. Only the spatial keys/values span both token groups.
        """
        text_out = not self.context_pre_only
        temporal = num_frames > 1
        batch = hidden_states.shape[0] // num_frames

        # every projection of the video tokens in one GEMM, and of the text tokens in another
        video_layers = [self.to_q, self.to_k, self.to_v, self.to_q_cross]
        if temporal:
            video_layers += [self.to_q_temp, self.to_k_temp, self.to_v_temp]
        video_proj = _linear_stack(hidden_states, video_layers).chunk(len(video_layers), dim=-1)
        q, k, v, q_cross = video_proj[:4]
        text_q, text_k, text_v = _linear_stack(
            encoder_hidden_states, [self.add_q_proj, self.add_k_proj, self.add_v_proj]
        ).chunk(3, dim=-1)

        keys = torch.cat([k, text_k], dim=1)
        values = torch.cat([v, text_v], dim=1)
        # cross attention reads the text tokens of each sample's first frame
        first_keys = text_k.unflatten(0, (batch, num_frames))[:, 0]
        first_values = text_v.unflatten(0, (batch, num_frames))[:, 0]
        branches = (keys, values, first_keys, first_values, num_frames)

        video = self.to_out[0](self._spatial_and_cross(q, q_cross, *branches, rotations=spatial_rope))
        if temporal:
            video = video + self.to_out_temporal(self._temporal(*video_proj[4:], num_frames, rope))
        if not text_out:
            return video, None
        # text tokens use their add_q projection for all three branches, as in the official processor
        text = self.to_add_out(self._spatial_and_cross(text_q, text_q, *branches))
        if temporal:
            text = text + self.to_add_out_temporal(self._temporal(text_q, text_k, text_v, num_frames, rope))
        return video, text


class VchitectTransformerBlock(nn.Module):
    """SD3 MMDiT block with Vchitect's parallel attention; key names equal the official `JointTransformerBlock`.

    Args:
        dim (`int`): model width.
        num_heads (`int`): attention heads.
        context_pre_only (`bool`): last block: the text stream is read but not updated.
    """

    def __init__(self, dim: int, num_heads: int, context_pre_only: bool = False):
        super().__init__()
        self.context_pre_only = context_pre_only
        self.norm1 = AdaLayerNormZero(dim)
        if context_pre_only:
            self.norm1_context = AdaLayerNormContinuous(
                dim, dim, elementwise_affine=False, eps=1e-6, bias=True, norm_type="layer_norm"
            )
        else:
            self.norm1_context = AdaLayerNormZero(dim)
        self.attn = VchitectAttention(dim, num_heads, context_pre_only=context_pre_only)
        self.norm2 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.ff = FeedForward(dim=dim, dim_out=dim, activation_fn="gelu-approximate")
        if not context_pre_only:
            self.norm2_context = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
            self.ff_context = FeedForward(dim=dim, dim_out=dim, activation_fn="gelu-approximate")

    def forward(
        self,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor,
        temb: torch.Tensor,
        num_frames: int,
        rope: Optional[torch.Tensor],
        spatial_rope: Optional[torch.Tensor] = None,
    ) -> Tuple[Optional[torch.Tensor], torch.Tensor]:
        """Args: hidden_states [B*F,S,D], encoder_hidden_states [B*F,L,D], temb [B,D] (one per sample);
        rope and spatial_rope as `VchitectAttention.forward` takes them.
        Returns (encoder_hidden_states or None in the last block, hidden_states), as the official block."""
        dim = hidden_states.shape[-1]
        silu_temb = F.silu(temb)

        def per_frame(modulation: torch.Tensor) -> torch.Tensor:
            # [B, k*D] -> [B*F, 1, k*D]: every frame of a sample shares its modulation
            return modulation.repeat_interleave(num_frames, dim=0)[:, None]

        shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = per_frame(
            self.norm1.linear(silu_temb)
        ).split(dim, dim=-1)
        norm_hidden = torch.addcmul(shift_msa, self.norm1.norm(hidden_states), 1 + scale_msa)
        if self.context_pre_only:
            c_scale, c_shift = per_frame(self.norm1_context.linear(silu_temb).to(encoder_hidden_states.dtype)).split(
                dim, dim=-1
            )
            norm_context = torch.addcmul(c_shift, self.norm1_context.norm(encoder_hidden_states), 1 + c_scale)
        else:
            c_shift_msa, c_scale_msa, c_gate_msa, c_shift_mlp, c_scale_mlp, c_gate_mlp = per_frame(
                self.norm1_context.linear(silu_temb)
            ).split(dim, dim=-1)
            norm_context = torch.addcmul(c_shift_msa, self.norm1_context.norm(encoder_hidden_states), 1 + c_scale_msa)

        attn_video, attn_text = self.attn(norm_hidden, norm_context, num_frames, rope, spatial_rope)

        hidden_states = torch.addcmul(hidden_states, gate_msa, attn_video)
        norm_hidden = torch.addcmul(shift_mlp, self.norm2(hidden_states), 1 + scale_mlp)
        hidden_states = torch.addcmul(hidden_states, gate_mlp, self.ff(norm_hidden))

        if self.context_pre_only:
            return None, hidden_states
        encoder_hidden_states = torch.addcmul(encoder_hidden_states, c_gate_msa, attn_text)
        norm_context = torch.addcmul(c_shift_mlp, self.norm2_context(encoder_hidden_states), 1 + c_scale_mlp)
        encoder_hidden_states = torch.addcmul(encoder_hidden_states, c_gate_mlp, self.ff_context(norm_context))
        return encoder_hidden_states, hidden_states


class VchitectXLTransformer3DModel(
    CheckedLoadingMixin, RepVideoSwitchMixin, ModelMixin, ConfigMixin, PeftAdapterMixin, CacheMixin
):
    """Vchitect-2.0 text-to-video transformer; loads the released `transformer/` folder as it is.

    Args:
        sample_size (`int`, defaults to 128): latent size the 2D sin-cos position table was built for.
        patch_size (`int`, defaults to 2): spatial patch size.
        in_channels (`int`, defaults to 16): latent channels in.
        num_layers (`int`, defaults to 18): transformer blocks (24 in the released 2B model).
        attention_head_dim (`int`, defaults to 64): channels per head.
        num_attention_heads (`int`, defaults to 18): heads (24 in the released 2B model).
        joint_attention_dim (`int`, defaults to 4096): width of the prompt embeddings.
        caption_projection_dim (`int`, defaults to 1152): width the prompt is projected to; must equal
            heads * head_dim.
        pooled_projection_dim (`int`, defaults to 2048): width of the pooled prompt embedding.
        out_channels (`int`, defaults to 16): latent channels out.
        pos_embed_max_size (`int`, defaults to 96): side of the stored position table (192 in the 2B model).
        tp_size (`int`, defaults to 1): accepted for config compatibility with the official class; tensor
            parallelism is not implemented by this class and values other than 1 are refused.
        rope_scaling_factor (`float`, defaults to 1.0): frame positions are divided by it for the temporal RoPE.
        rope_theta (`float`, defaults to 1e6): temporal RoPE base, as the official code hard-codes.
        repvideo_aggregation (`bool`, defaults to False): RepVideo cross-layer aggregation on; off is exactly
            Vchitect-2.0 and adds no parameters, on adds `num_layers` gates (`repvideo.learnable_gating`).
        repvideo_window_size (`int`, defaults to 6): RepVideo window.
        frame_positions (`int`, defaults to 0): not part of the released model (0, the default, is exactly
            Vchitect-2.0): a learned embedding of the frame index for up to this many frames, added to every patch
            token of its frame (`frame_pos_embed`, a centred sine-cosine table at first). The temporal RoPE only
            tells frames apart relative to each other, and attention over identical frames returns identical
            values, so without it a model cannot place a moving object differently in frame 0 and frame 7 where
            sampling starts (for small models trained from scratch, such as the shapes-world experiments).
        spatial_rope_theta (`float`, defaults to 0.0): not part of the released model (0, the default, is exactly
            Vchitect-2.0): when > 0, 2D RoPE over the patch grid with this base, on the logits between video
            tokens of the spatial branch (video-text logits stay as they are). The released model places tokens by
            its absolute sine-cosine table only, so a small model learns what it draws place by place; relative
            positions let attention relate tokens by their offset wherever they lie (for the shapes world's four
            outlines at nine places on the token grid: 14 of 24 drawn right after 1500 steps, 6 without; the embedded
            model's card).
    """

    _supports_gradient_checkpointing = True
    _no_split_modules = ["VchitectTransformerBlock"]
    _skip_layerwise_casting_patterns = ["pos_embed", "norm", "repvideo"]

    @register_to_config
    def __init__(
        self,
        sample_size: int = 128,
        patch_size: int = 2,
        in_channels: int = 16,
        num_layers: int = 18,
        attention_head_dim: int = 64,
        num_attention_heads: int = 18,
        joint_attention_dim: int = 4096,
        caption_projection_dim: int = 1152,
        pooled_projection_dim: int = 2048,
        out_channels: int = 16,
        pos_embed_max_size: int = 96,
        tp_size: int = 1,
        rope_scaling_factor: float = 1.0,
        rope_theta: float = 1e6,
        repvideo_aggregation: bool = False,
        repvideo_window_size: int = 6,
        frame_positions: int = 0,
        spatial_rope_theta: float = 0.0,
    ):
        super().__init__()
        for name, value in (("num_layers", num_layers), ("num_attention_heads", num_attention_heads),
                            ("attention_head_dim", attention_head_dim), ("patch_size", patch_size),
                            ("in_channels", in_channels), ("out_channels", out_channels),
                            ("joint_attention_dim", joint_attention_dim),
                            ("caption_projection_dim", caption_projection_dim),
                            ("pooled_projection_dim", pooled_projection_dim)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}={value!r} must be an integer >= 1 (transformer config)")
        inner_dim = num_attention_heads * attention_head_dim
        if caption_projection_dim != inner_dim:
            raise ValueError(
                f"caption_projection_dim={caption_projection_dim} must equal num_attention_heads * attention_head_dim"
                f" = {inner_dim}: text tokens enter attention at the model width"
            )
        if tp_size != 1:
            raise ValueError(f"tp_size={tp_size}: only 1 is supported (shard with accelerate/FSDP instead)")
        if isinstance(frame_positions, bool) or not isinstance(frame_positions, int) or frame_positions < 0:
            raise ValueError(f"frame_positions={frame_positions!r} must be an integer >= 0 (0: off, as released)")
        if isinstance(spatial_rope_theta, bool) or not isinstance(spatial_rope_theta, (int, float)) or not (
            spatial_rope_theta == 0 or spatial_rope_theta > 1
        ):
            raise ValueError(
                f"spatial_rope_theta={spatial_rope_theta!r} must be 0 (off, as released) or a RoPE base > 1"
            )
        if spatial_rope_theta and attention_head_dim % 4:
            raise ValueError(
                f"attention_head_dim={attention_head_dim} must be divisible by 4 for spatial_rope_theta (2D RoPE)"
            )
        self.inner_dim = inner_dim
        self.out_channels = out_channels if out_channels is not None else in_channels

        self.pos_embed = PatchEmbed(
            height=sample_size,
            width=sample_size,
            patch_size=patch_size,
            in_channels=in_channels,
            embed_dim=inner_dim,
            pos_embed_max_size=pos_embed_max_size,
        )
        self.time_text_embed = CombinedTimestepTextProjEmbeddings(
            embedding_dim=inner_dim, pooled_projection_dim=pooled_projection_dim
        )
        self.context_embedder = nn.Linear(joint_attention_dim, caption_projection_dim)
        self.transformer_blocks = nn.ModuleList(
            [
                VchitectTransformerBlock(inner_dim, num_attention_heads, context_pre_only=i == num_layers - 1)
                for i in range(num_layers)
            ]
        )
        self.norm_out = AdaLayerNormContinuous(inner_dim, inner_dim, elementwise_affine=False, eps=1e-6)
        self.proj_out = nn.Linear(inner_dim, patch_size * patch_size * self.out_channels, bias=True)
        self.repvideo = RepVideoAggregation(num_layers, repvideo_window_size) if repvideo_aggregation else None
        # not in the released model: a learned embedding of each frame's index, added to its patch tokens
        self.frame_pos_embed = None
        if frame_positions:
            # starts as a 1-D sine-cosine table of the frame index (the spatial table's kind) less its mean over
            # the frames, so only what tells frames apart is added; a zero start would stay near zero, as the
            # gradients of videos moving opposite ways cancel on a table both share
            table = get_1d_sincos_pos_embed_from_grid(inner_dim, torch.arange(frame_positions), output_type="pt")
            self.frame_pos_embed = nn.Parameter((table - table.mean(dim=0)).float())
        self.gradient_checkpointing = False
        self._rope_cache: Dict[tuple, torch.Tensor] = {}

    def _temporal_rope(self, num_frames: int, device: torch.device) -> torch.Tensor:
        """Complex rotations [F, head_dim/2] of the official temporal RoPE for frames 0..F-1, cached by (F, device)."""
        key = (num_frames, str(device))
        if key not in self._rope_cache:
            positions = torch.arange(num_frames, dtype=torch.float32) / self.config.rope_scaling_factor
            freqs_cis = get_1d_rotary_pos_embed(
                self.config.attention_head_dim, positions, theta=self.config.rope_theta
            )
            self._rope_cache[key] = freqs_cis.to(device=device, dtype=torch.complex64)
        return self._rope_cache[key]

    def _spatial_rope(self, height: int, width: int, device: torch.device) -> Optional[torch.Tensor]:
        """The 2D RoPE table [1, S, 1, head_dim/2] for a latent of height x width (None without spatial RoPE)."""
        if not self.config.spatial_rope_theta:
            return None
        patch = self.config.patch_size
        key = (height // patch, width // patch, str(device))
        if key not in self._rope_cache:
            table = _spatial_rotations(self.config.attention_head_dim, key[0], key[1], self.config.spatial_rope_theta)
            self._rope_cache[key] = table.to(device)
        return self._rope_cache[key]

    def _check_inputs(self, hidden_states, encoder_hidden_states, pooled_projections) -> None:
        cfg = self.config
        if hidden_states.ndim != 5:
            raise ValueError(f"hidden_states must be [B, F, C, H, W]; got shape {tuple(hidden_states.shape)}")
        batch, _, channels, height, width = hidden_states.shape
        if channels != cfg.in_channels:
            raise ValueError(f"hidden_states has {channels} channels; the model takes in_channels={cfg.in_channels}")
        if height % cfg.patch_size or width % cfg.patch_size:
            raise ValueError(f"latent size {height}x{width} must be divisible by patch_size={cfg.patch_size}")
        max_latent = cfg.pos_embed_max_size * cfg.patch_size
        if height > max_latent or width > max_latent:
            raise ValueError(
                f"latent size {height}x{width} exceeds pos_embed_max_size={cfg.pos_embed_max_size} patches"
                f" ({max_latent} latent pixels)"
            )
        if encoder_hidden_states.ndim != 3 or encoder_hidden_states.shape[0] != batch:
            raise ValueError(
                f"encoder_hidden_states must be [B={batch}, L, {cfg.joint_attention_dim}];"
                f" got {tuple(encoder_hidden_states.shape)}"
            )
        if pooled_projections.ndim != 2 or pooled_projections.shape[0] != batch:
            raise ValueError(
                f"pooled_projections must be [B={batch}, {cfg.pooled_projection_dim}];"
                f" got {tuple(pooled_projections.shape)}"
            )

    def forward(
        self,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor,
        pooled_projections: torch.Tensor,
        timestep: Union[torch.Tensor, float],
        joint_attention_kwargs: Optional[Dict[str, Any]] = None,
        return_dict: bool = True,
    ) -> Union[Transformer2DModelOutput, Tuple[torch.Tensor]]:
        """Predicts the flow-matching velocity for video latents.

        Args:
            hidden_states (`torch.Tensor`): latents [B, F, C, H, W].
            encoder_hidden_states (`torch.Tensor`): prompt embeddings [B, L, joint_attention_dim].
            pooled_projections (`torch.Tensor`): pooled prompt embeddings [B, pooled_projection_dim].
            timestep (`torch.Tensor` or `float`): flow-matching time in (0, 1000], one per sample or shared.
            joint_attention_kwargs (`dict`, *optional*): accepted for diffusers compatibility; unused.
            return_dict (`bool`, defaults to True): return a `Transformer2DModelOutput`.

        Returns:
            `.sample` [B, F, out_channels, H, W].
        """
        state = self._embed(hidden_states, encoder_hidden_states, pooled_projections, timestep)
        window = None
        if self.repvideo is not None:
            window = self.repvideo.start((state["hidden_states"], state["encoder_hidden_states"]))
        for index in range(len(self.transformer_blocks)):
            state = self._run_block(index, state, window)
        output = self._project_out(state)
        if not return_dict:
            return (output,)
        return Transformer2DModelOutput(sample=output)

    # -- the forward pass in pieces: embedding, one block, output head (also what local learning runs by group) --
    def _embed(self, hidden_states, encoder_hidden_states, pooled_projections, timestep) -> Dict[str, Any]:
        """The state entering the first block: patch tokens, per-frame text tokens, temb, RoPE and the geometry."""
        self._check_inputs(hidden_states, encoder_hidden_states, pooled_projections)
        batch, num_frames, _, height, width = hidden_states.shape
        timestep = torch.as_tensor(timestep, device=hidden_states.device)
        timestep = timestep.reshape(-1).expand(batch) if timestep.numel() == 1 else timestep.reshape(batch)

        tokens = self.pos_embed(rearrange(hidden_states, "b f c h w -> (b f) c h w"))
        if self.frame_pos_embed is not None:
            if num_frames > self.config.frame_positions:
                raise ValueError(f"{num_frames} frames: this transformer embeds the index of at most "
                                 f"frame_positions={self.config.frame_positions} frames")
            tokens = tokens + self.frame_pos_embed[:num_frames].to(tokens.dtype).repeat(batch, 1)[:, None, :]
        temb = self.time_text_embed(timestep, pooled_projections)
        # the text stream becomes per-frame after the first block; it starts as a copy per frame
        text = self.context_embedder(encoder_hidden_states).repeat_interleave(num_frames, dim=0)
        rope = self._temporal_rope(num_frames, tokens.device) if num_frames > 1 else None
        return {"hidden_states": tokens, "encoder_hidden_states": text, "temb": temb, "rope": rope,
                "spatial_rope": self._spatial_rope(height, width, tokens.device),
                "shape": (batch, num_frames, height, width)}

    def _run_block(self, index: int, state: Dict[str, Any], window=None) -> Dict[str, Any]:
        """``state`` after block ``index`` (RepVideo's mix before it and its record after it when ``window`` is given)."""
        hidden_states, encoder_hidden_states = state["hidden_states"], state["encoder_hidden_states"]
        if window is not None:
            hidden_states, encoder_hidden_states = window.mix(index, (hidden_states, encoder_hidden_states))
        block = self.transformer_blocks[index]
        arguments = (hidden_states, encoder_hidden_states, state["temb"], state["shape"][1], state["rope"],
                     state["spatial_rope"])
        if torch.is_grad_enabled() and self.gradient_checkpointing:
            encoder_hidden_states, hidden_states = self._gradient_checkpointing_func(block, *arguments)
        else:
            encoder_hidden_states, hidden_states = block(*arguments)
        if window is not None:
            window.record(index, (hidden_states, encoder_hidden_states))
        return {**state, "hidden_states": hidden_states, "encoder_hidden_states": encoder_hidden_states}

    def _project_out(self, state: Dict[str, Any], norm_out: Optional[nn.Module] = None,
                     proj_out: Optional[nn.Module] = None) -> torch.Tensor:
        """The output head on the state after the last block: [B, F, out_channels, H, W] (another head's modules when
        given: local learning's auxiliary heads have the same shape)."""
        norm_out = self.norm_out if norm_out is None else norm_out
        proj_out = self.proj_out if proj_out is None else proj_out
        hidden_states, temb = state["hidden_states"], state["temb"]
        batch, num_frames, height, width = state["shape"]
        scale, shift = (
            norm_out.linear(F.silu(temb)).to(hidden_states.dtype).repeat_interleave(num_frames, dim=0)[:, None]
        ).chunk(2, dim=-1)
        hidden_states = proj_out(torch.addcmul(shift, norm_out.norm(hidden_states), 1 + scale))
        patch = self.config.patch_size
        return rearrange(
            hidden_states, "(b f) (h w) (p q c) -> b f c (h p) (w q)",
            b=batch, h=height // patch, w=width // patch, p=patch, q=patch,
        )

    def forward_stages(self, hidden_states, encoder_hidden_states, pooled_projections, timestep):
        """The forward pass cut into ``(prelude, blocks, head)`` callables over a state dict, for training by groups.

        ``prelude()`` embeds the inputs; ``blocks[i](state)`` runs block ``i``; ``head(state)`` is the output head.
        Run in order they give exactly ``forward``'s output. With RepVideo on, the aggregation window travels in the
        state (``state["repvideo_window"]``), so a caller that detaches the state between blocks detaches it too.
        """

        def prelude() -> Dict[str, Any]:
            state = self._embed(hidden_states, encoder_hidden_states, pooled_projections, timestep)
            if self.repvideo is not None:
                state["repvideo_window"] = self.repvideo.start((state["hidden_states"], state["encoder_hidden_states"]))
            return state

        def block_fn(index):
            return lambda state: self._run_block(index, state, state.get("repvideo_window"))

        return prelude, [block_fn(i) for i in range(len(self.transformer_blocks))], self._project_out
