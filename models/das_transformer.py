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
            c    = combine_linears[i](c)                                 zero-initialised; also feeds block i+1
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
from typing import Any, Dict, Iterator, Optional, Tuple, Union

import torch
from diffusers.configuration_utils import register_to_config
from diffusers.models.modeling_outputs import Transformer2DModelOutput

# diffusers' pipeline loader looks the loadable base class up in the module that model_index.json names
from diffusers.models.modeling_utils import ModelMixin  # noqa: F401
from diffusers.models.transformers.cogvideox_transformer_3d import CogVideoXTransformer3DModel
from diffusers.utils import apply_lora_scale
from torch import nn

from ._cogvideox import CogVideoXExtension, cogvideox_config_arguments

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


class DaSTransformer3DModel(CogVideoXExtension):
    """CogVideoX transformer with the Diffusion-as-Shader tracking branch (official key names).

    The released `transformer/` folder (config `_class_name` "CogVideoXTransformer3DModelTracking") loads with
    `from_pretrained` as it is; a plain CogVideoX folder is refused: use `from_cogvideox`.

    Args:
        num_tracking_blocks (`int`, defaults to 18): main blocks 0..num_tracking_blocks-1 get a tracking copy.
        Every other argument is `CogVideoXTransformer3DModel`'s, with its defaults; the released DaS model is
        `RELEASED_CONFIG` (42 layers, 48 heads x 64, 32 input channels, learned positional embeddings + RoPE).
    """

    _no_split_modules = ["CogVideoXBlock", "CogVideoXPatchEmbed"]
    _extension_config_key = "num_tracking_blocks"

    @register_to_config
    @cogvideox_config_arguments
    def __init__(self, num_tracking_blocks: int = 18, **kwargs):
        # the decorators registered the whole config (defaults included) before this body runs
        num_layers = self.config.num_layers
        if isinstance(num_tracking_blocks, bool) or not isinstance(num_tracking_blocks, int) or not (
            0 <= num_tracking_blocks <= num_layers
        ):
            raise ValueError(
                f"num_tracking_blocks={num_tracking_blocks!r} must be an integer in 0..num_layers={num_layers}"
            )
        super().__init__(**kwargs)
        inner_dim = self.config.num_attention_heads * self.config.attention_head_dim
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
    def from_cogvideox(
        cls, transformer: CogVideoXTransformer3DModel, num_tracking_blocks: int = 18
    ) -> "DaSTransformer3DModel":
        """A DaS transformer whose main stream is `transformer` and whose tracking branch is switched off.

        Copy block i starts as a copy of main block i and the combine linears are zero, so the result computes
        exactly what `transformer` computes until the branch is trained (the official conversion). The main
        weights are shared with `transformer` (no copy of the base model is made); the copy blocks own their
        weights.

        Args:
            transformer (`CogVideoXTransformer3DModel`): e.g. `THUDM/CogVideoX-5b-I2V`'s transformer.
            num_tracking_blocks (`int`, defaults to 18): how many main blocks get a tracking copy.
        """

        def tracking_branch(model, base_state, like):
            state = {}
            for index in range(num_tracking_blocks):
                prefix = f"transformer_blocks.{index}."
                for key, value in base_state.items():
                    if key.startswith(prefix):
                        state[f"transformer_blocks_copy.{index}.{key[len(prefix):]}"] = value.clone()
            for name, module in [("initial_combine_linear", model.initial_combine_linear)] + [
                (f"combine_linears.{index}", linear) for index, linear in enumerate(model.combine_linears)
            ]:
                for kind in ("weight", "bias"):
                    shape = getattr(module, kind).shape
                    state[f"{name}.{kind}"] = torch.zeros(shape, dtype=like.dtype, device=like.device)
            return state

        return cls._from_cogvideox(transformer, dict(num_tracking_blocks=num_tracking_blocks), tracking_branch)

    def tracking_parameters(self) -> Iterator[nn.Parameter]:
        """The parameters the official training updates: copy blocks, combine linears, initial combine linear."""
        for module in (self.transformer_blocks_copy, self.combine_linears, self.initial_combine_linear):
            yield from module.parameters()

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
        latent_shape = hidden_states.shape
        # the tracking stream shares the patch embedding; its text tokens are dropped
        tracking = None if tracking_maps is None else self._patch_tokens(encoder_hidden_states, tracking_maps)[1]
        emb, hidden_states, encoder_hidden_states = self._embed(
            hidden_states, encoder_hidden_states, timestep, timestep_cond, ofs
        )
        if tracking is not None:
            tracking = self.initial_combine_linear(hidden_states + tracking)

        # main blocks; copy block i runs after main block i, on the main stream's text tokens
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
        return self._unpatchify(hidden_states, emb, latent_shape, return_dict)
