"""Diffusion as Shader (DaS) transformer: CogVideoX-5B-I2V plus a tracking-video branch, weight-compatible with the
released `EXCAI/Diffusion-As-Shader` transformer.

The tracking branch is a ControlNet-like copy of the first `num_tracking_blocks` CogVideoX blocks (official
`models/cogvideox_tracking.py::CogVideoXTransformer3DModelTracking`). In the official order:

    emb          = time_embedding(time_proj(t))                          shared by both streams
    text, h      = patch_embed(text, [noisy latents ; image latents])    split into text and video tokens
    c            = patch_embed(text, tracking_maps)[video tokens]        the same (shared) patch embedding
    c            = initial_combine_linear(h + c)                         zero-initialised
    for i in range(num_layers):
        h, text  = transformer_blocks[i](h, text, emb, rope)
        if i < num_tracking_blocks:
            c, _ = transformer_blocks_copy[i](c, text, emb, rope)        the MAIN stream's text after block i
            c    = combine_linears[i](c)                                 zero-initialised; this value also feeds block i+1
            h    = h + c
    norm_final -> norm_out(emb) -> proj_out -> unpatchify

Differences from the official code, none of which changes its numbers:
- the copy blocks start as copies of the main blocks (the official `__init__` leaves them as uninitialised memory
  from `to_empty` until a checkpoint is loaded);
- `num_tracking_blocks` is a registered config argument, so `save_pretrained`/`from_pretrained` round-trip without
  a custom `save_pretrained`;
- `tracking_maps=None` runs the plain CogVideoX transformer (the official forward fails on it);
- nothing is frozen: which parameters train is the trainer's choice (`tracking_parameters()` lists the branch).
"""

import copy
import os
from typing import Any, Dict, Iterator, Optional, Tuple, Union

import torch
from accelerate import init_empty_weights
from diffusers.configuration_utils import register_to_config
from diffusers.models.modeling_outputs import Transformer2DModelOutput

# diffusers' pipeline loader looks the loadable base class up in the module that model_index.json names
from diffusers.models.modeling_utils import ModelMixin  # noqa: F401
from diffusers.models.transformers.cogvideox_transformer_3d import CogVideoXTransformer3DModel
from diffusers.utils import apply_lora_scale
from torch import nn

from .checkpoint import check_checkpoint

# the released EXCAI/Diffusion-As-Shader transformer (CogVideoX-5B-I2V geometry plus 18 tracking blocks)
RELEASED_CONFIG = dict(
    num_tracking_blocks=18,
    num_attention_heads=48,
    attention_head_dim=64,
    in_channels=32,
    out_channels=16,
    time_embed_dim=512,
    text_embed_dim=4096,
    num_layers=42,
    sample_width=90,
    sample_height=60,
    sample_frames=49,
    patch_size=2,
    max_text_seq_length=226,
    use_rotary_positional_embeddings=True,
    use_learned_positional_embeddings=True,
)


class DaSTransformer3DModel(CogVideoXTransformer3DModel):
    """CogVideoX transformer with the Diffusion-as-Shader tracking branch (official key names).

    Args:
        num_tracking_blocks (`int`, defaults to 18): main blocks 0..num_tracking_blocks-1 get a tracking copy.
        Every other argument is `CogVideoXTransformer3DModel`'s, with its defaults; the released DaS model is
        `RELEASED_CONFIG` (42 layers, 48 heads x 64, 32 input channels, learned positional embeddings + RoPE).
    """

    _no_split_modules = ["CogVideoXBlock", "CogVideoXPatchEmbed"]

    @register_to_config
    def __init__(
        self,
        num_tracking_blocks: int = 18,
        num_attention_heads: int = 30,
        attention_head_dim: int = 64,
        in_channels: int = 16,
        out_channels: Optional[int] = 16,
        flip_sin_to_cos: bool = True,
        freq_shift: int = 0,
        time_embed_dim: int = 512,
        ofs_embed_dim: Optional[int] = None,
        text_embed_dim: int = 4096,
        num_layers: int = 30,
        dropout: float = 0.0,
        attention_bias: bool = True,
        sample_width: int = 90,
        sample_height: int = 60,
        sample_frames: int = 49,
        patch_size: int = 2,
        patch_size_t: Optional[int] = None,
        temporal_compression_ratio: int = 4,
        max_text_seq_length: int = 226,
        activation_fn: str = "gelu-approximate",
        timestep_activation_fn: str = "silu",
        norm_elementwise_affine: bool = True,
        norm_eps: float = 1e-5,
        spatial_interpolation_scale: float = 1.875,
        temporal_interpolation_scale: float = 1.0,
        use_rotary_positional_embeddings: bool = False,
        use_learned_positional_embeddings: bool = False,
        patch_bias: bool = True,
    ):
        if not isinstance(num_tracking_blocks, int) or not 0 <= num_tracking_blocks <= num_layers:
            raise ValueError(f"num_tracking_blocks={num_tracking_blocks!r} must be an integer in 0..num_layers={num_layers}")
        super().__init__(
            num_attention_heads=num_attention_heads,
            attention_head_dim=attention_head_dim,
            in_channels=in_channels,
            out_channels=out_channels,
            flip_sin_to_cos=flip_sin_to_cos,
            freq_shift=freq_shift,
            time_embed_dim=time_embed_dim,
            ofs_embed_dim=ofs_embed_dim,
            text_embed_dim=text_embed_dim,
            num_layers=num_layers,
            dropout=dropout,
            attention_bias=attention_bias,
            sample_width=sample_width,
            sample_height=sample_height,
            sample_frames=sample_frames,
            patch_size=patch_size,
            patch_size_t=patch_size_t,
            temporal_compression_ratio=temporal_compression_ratio,
            max_text_seq_length=max_text_seq_length,
            activation_fn=activation_fn,
            timestep_activation_fn=timestep_activation_fn,
            norm_elementwise_affine=norm_elementwise_affine,
            norm_eps=norm_eps,
            spatial_interpolation_scale=spatial_interpolation_scale,
            temporal_interpolation_scale=temporal_interpolation_scale,
            use_rotary_positional_embeddings=use_rotary_positional_embeddings,
            use_learned_positional_embeddings=use_learned_positional_embeddings,
            patch_bias=patch_bias,
        )
        inner_dim = num_attention_heads * attention_head_dim
        # ControlNet-style start: the branch copies the pretrained blocks and its outputs are switched off
        self.transformer_blocks_copy = nn.ModuleList(
            [copy.deepcopy(self.transformer_blocks[index]) for index in range(num_tracking_blocks)]
        )
        self.combine_linears = nn.ModuleList([nn.Linear(inner_dim, inner_dim) for _ in range(num_tracking_blocks)])
        self.initial_combine_linear = nn.Linear(inner_dim, inner_dim)
        for linear in (*self.combine_linears, self.initial_combine_linear):
            nn.init.zeros_(linear.weight)
            nn.init.zeros_(linear.bias)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, subfolder: Optional[str] = None, **kwargs):
        """`ModelMixin.from_pretrained`, after checking a local folder's keys and shapes against this class.

        The released `transformer/` folder (config `_class_name` "CogVideoXTransformer3DModelTracking") loads as it
        is. A plain CogVideoX folder is refused with the list of missing tracking keys: use `from_cogvideox`.
        """
        folder = os.path.join(str(pretrained_model_name_or_path), subfolder or "")
        if os.path.isdir(folder):
            config = cls.load_config(folder)
            if "num_tracking_blocks" not in config:
                raise ValueError(
                    f"{os.path.join(folder, 'config.json')} (_class_name {config.get('_class_name')!r}) has no "
                    f"num_tracking_blocks: it is a plain CogVideoX transformer, not a DaS one. Build the DaS model "
                    f"from it with DaSTransformer3DModel.from_cogvideox(CogVideoXTransformer3DModel.from_pretrained(...))"
                )
            check_checkpoint(cls, folder, config)
        return super().from_pretrained(pretrained_model_name_or_path, subfolder=subfolder, **kwargs)

    @classmethod
    def from_cogvideox(cls, transformer: CogVideoXTransformer3DModel, num_tracking_blocks: int = 18) -> "DaSTransformer3DModel":
        """A DaS transformer whose main stream is `transformer` and whose tracking branch is switched off.

        Copy block i starts as a copy of main block i and the combine linears are zero, so the result computes
        exactly what `transformer` computes until the branch is trained (the official conversion). The main
        weights are shared with `transformer` (no copy of the base model is made); the copy blocks own their
        weights.

        Args:
            transformer (`CogVideoXTransformer3DModel`): e.g. `THUDM/CogVideoX-5b-I2V`'s transformer.
            num_tracking_blocks (`int`, defaults to 18): how many main blocks get a tracking copy.
        """
        if not isinstance(transformer, CogVideoXTransformer3DModel) or isinstance(transformer, cls):
            raise TypeError(
                f"transformer={type(transformer).__name__} must be a plain diffusers CogVideoXTransformer3DModel"
            )
        config = {key: value for key, value in transformer.config.items() if not key.startswith("_")}
        config["num_tracking_blocks"] = num_tracking_blocks
        parameter = next(transformer.parameters())
        with init_empty_weights():
            model = cls.from_config(config)
        base_state = transformer.state_dict()
        state = dict(base_state)
        for index in range(num_tracking_blocks):
            prefix = f"transformer_blocks.{index}."
            for key, value in base_state.items():
                if key.startswith(prefix):
                    state[f"transformer_blocks_copy.{index}.{key[len(prefix):]}"] = value.clone()
        for name, module in [("initial_combine_linear", model.initial_combine_linear)] + [
            (f"combine_linears.{index}", linear) for index, linear in enumerate(model.combine_linears)
        ]:
            state[f"{name}.weight"] = torch.zeros(module.weight.shape, dtype=parameter.dtype, device=parameter.device)
            state[f"{name}.bias"] = torch.zeros(module.bias.shape, dtype=parameter.dtype, device=parameter.device)
        model.load_state_dict(state, strict=True, assign=True)
        return model.eval() if not transformer.training else model

    def tracking_parameters(self) -> Iterator[nn.Parameter]:
        """The parameters the official training updates: copy blocks, combine linears, initial combine linear."""
        for module in (self.transformer_blocks_copy, self.combine_linears, self.initial_combine_linear):
            yield from module.parameters()

    def _run_block(self, block, hidden_states, encoder_hidden_states, emb, image_rotary_emb, attention_kwargs):
        if torch.is_grad_enabled() and self.gradient_checkpointing:
            return self._gradient_checkpointing_func(
                block, hidden_states, encoder_hidden_states, emb, image_rotary_emb, attention_kwargs
            )
        return block(
            hidden_states=hidden_states,
            encoder_hidden_states=encoder_hidden_states,
            temb=emb,
            image_rotary_emb=image_rotary_emb,
            attention_kwargs=attention_kwargs,
        )

    @apply_lora_scale("attention_kwargs")
    def forward(
        self,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor,
        timestep: Union[int, float, torch.LongTensor],
        timestep_cond: Optional[torch.Tensor] = None,
        ofs: Optional[Union[int, float, torch.LongTensor]] = None,
        image_rotary_emb: Optional[Tuple[torch.Tensor, torch.Tensor]] = None,
        attention_kwargs: Optional[Dict[str, Any]] = None,
        return_dict: bool = True,
        tracking_maps: Optional[torch.Tensor] = None,
    ) -> Union[Tuple[torch.Tensor], Transformer2DModelOutput]:
        """Predicts the denoiser output for `hidden_states`, steered by `tracking_maps`.

        Args:
            hidden_states (`torch.Tensor` [B, F, C, H, W]): noisy latents concatenated on channels with the image
                latents (C = in_channels).
            encoder_hidden_states (`torch.Tensor` [B, L, text_embed_dim]): T5 prompt embeddings.
            timestep (`torch.Tensor` [B] or number): diffusion timestep.
            timestep_cond, ofs, image_rotary_emb, attention_kwargs: as for `CogVideoXTransformer3DModel`.
            return_dict (`bool`, defaults to True): return a `Transformer2DModelOutput`.
            tracking_maps (`torch.Tensor` [B, F, C, H, W], *optional*): tracking-video latents concatenated on
                channels with the tracking first-frame latents, same shape as `hidden_states`. None runs the plain
                CogVideoX transformer.
        """
        if tracking_maps is not None and tracking_maps.shape != hidden_states.shape:
            raise ValueError(
                f"tracking_maps has shape {tuple(tracking_maps.shape)}; it must equal hidden_states' shape "
                f"{tuple(hidden_states.shape)} (tracking latents and tracking first-frame latents on channels)"
            )
        batch_size, num_frames, _, height, width = hidden_states.shape

        # 1. time embedding, shared by both streams
        t_emb = self.time_proj(timestep).to(dtype=hidden_states.dtype)
        emb = self.time_embedding(t_emb, timestep_cond)
        if self.ofs_embedding is not None:
            emb = emb + self.ofs_embedding(self.ofs_proj(ofs).to(dtype=hidden_states.dtype))

        # 2. patch embedding, shared by both streams; the tracking stream's text tokens are dropped
        text_seq_length = encoder_hidden_states.shape[1]
        tracking = None
        if tracking_maps is not None:
            tracking = self.embedding_dropout(self.patch_embed(encoder_hidden_states, tracking_maps))
            tracking = tracking[:, text_seq_length:]
        hidden_states = self.embedding_dropout(self.patch_embed(encoder_hidden_states, hidden_states))
        encoder_hidden_states = hidden_states[:, :text_seq_length]
        hidden_states = hidden_states[:, text_seq_length:]
        if tracking is not None:
            tracking = self.initial_combine_linear(hidden_states + tracking)

        # 3. main blocks; copy block i runs after main block i, on the main stream's text tokens
        num_branch_blocks = len(self.transformer_blocks_copy) if tracking is not None else 0
        for index, block in enumerate(self.transformer_blocks):
            hidden_states, encoder_hidden_states = self._run_block(
                block, hidden_states, encoder_hidden_states, emb, image_rotary_emb, attention_kwargs
            )
            if index < num_branch_blocks:
                tracking, _ = self._run_block(
                    self.transformer_blocks_copy[index], tracking, encoder_hidden_states, emb, image_rotary_emb,
                    attention_kwargs,
                )
                # the value after the zero linear is both what is added and what feeds the next copy block
                tracking = self.combine_linears[index](tracking)
                hidden_states = hidden_states + tracking

        # 4. output: norm_final is per token, so normalising the video tokens alone equals the official
        # normalisation of [text ; video] followed by dropping the text
        hidden_states = self.norm_final(hidden_states)
        hidden_states = self.norm_out(hidden_states, temb=emb)
        hidden_states = self.proj_out(hidden_states)

        # 5. unpatchify (as in diffusers CogVideoXTransformer3DModel.forward)
        p = self.config.patch_size
        p_t = self.config.patch_size_t
        if p_t is None:
            output = hidden_states.reshape(batch_size, num_frames, height // p, width // p, -1, p, p)
            output = output.permute(0, 1, 4, 2, 5, 3, 6).flatten(5, 6).flatten(3, 4)
        else:
            output = hidden_states.reshape(
                batch_size, (num_frames + p_t - 1) // p_t, height // p, width // p, -1, p_t, p, p
            )
            output = output.permute(0, 1, 5, 4, 2, 6, 3, 7).flatten(6, 7).flatten(4, 5).flatten(1, 2)
        if not return_dict:
            return (output,)
        return Transformer2DModelOutput(sample=output)
