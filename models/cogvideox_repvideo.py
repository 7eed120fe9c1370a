"""RepVideo as released: the CogVideoX-2B transformer with cross-layer representation aggregation.

The released `Vchitect/RepVideo` checkpoint is CogVideoX-2B in SwissArmyTransformer (SAT) form, fine-tuned whole,
with one extra parameter: `learnable_gating`, one scalar gate per layer. Its `sat/transformer_gating.py` mixes a
windowed mean of earlier layer outputs into the input of every block (see `models/repvideo.py` for the formula).
SAT runs its blocks on the concatenated [text ; video] sequence; diffusers' CogVideoX blocks take the two token
streams apart. The mix is elementwise per token, so mixing each stream on its own equals mixing their concatenation.

This class is diffusers' `CogVideoXTransformer3DModel` with the aggregation around its block loop: the same
submodules and key names, plus `repvideo.learnable_gating` [num_layers]. `repvideo_aggregation=False` runs (and
stores) exactly the stock CogVideoX transformer. `convert/repvideo_sat.py` converts the released SAT checkpoint.
"""

import os
from typing import Any, Dict, Optional, Tuple, Union

import torch
from accelerate import init_empty_weights
from diffusers.configuration_utils import register_to_config
from diffusers.models.modeling_outputs import Transformer2DModelOutput

# diffusers' pipeline loader looks the loadable base class up in the module that model_index.json names
from diffusers.models.modeling_utils import ModelMixin  # noqa: F401
from diffusers.models.transformers.cogvideox_transformer_3d import CogVideoXTransformer3DModel
from diffusers.utils import apply_lora_scale

from .checkpoint import check_checkpoint
from .repvideo import RepVideoAggregation, RepVideoSwitchMixin

# the released Vchitect/RepVideo DiT (sat/configs/cogvideox_2b.yaml) in diffusers' CogVideoX terms
RELEASED_CONFIG = dict(
    num_attention_heads=30,
    attention_head_dim=64,
    in_channels=16,
    out_channels=16,
    time_embed_dim=512,
    text_embed_dim=4096,
    num_layers=30,
    sample_width=90,
    sample_height=60,
    sample_frames=49,
    patch_size=2,
    temporal_compression_ratio=4,
    max_text_seq_length=226,
    spatial_interpolation_scale=1.875,
    temporal_interpolation_scale=1.0,
    use_rotary_positional_embeddings=False,
    use_learned_positional_embeddings=False,
    repvideo_aggregation=True,
    repvideo_window_size=6,
)


class CogVideoXRepVideoTransformer3DModel(RepVideoSwitchMixin, CogVideoXTransformer3DModel):
    """CogVideoX transformer with RepVideo's gated cross-layer aggregation (diffusers key names plus the gates).

    Args:
        repvideo_aggregation (`bool`, defaults to True): aggregation on (adds `repvideo.learnable_gating`,
            `num_layers` gates); off is exactly `CogVideoXTransformer3DModel` and holds no gates.
        repvideo_window_size (`int`, defaults to 6): the window restarts after blocks whose index is a multiple of it
            (6 in the released model).
        Every other argument is `CogVideoXTransformer3DModel`'s, with its defaults (the CogVideoX-2B geometry);
        the released RepVideo model is `RELEASED_CONFIG`.
    """

    _skip_layerwise_casting_patterns = ["patch_embed", "norm", "repvideo"]

    @register_to_config
    def __init__(
        self,
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
        repvideo_aggregation: bool = True,
        repvideo_window_size: int = 6,
    ):
        if not isinstance(repvideo_aggregation, bool):
            raise ValueError(f"repvideo_aggregation={repvideo_aggregation!r} must be True or False")
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
        self.repvideo = RepVideoAggregation(num_layers, repvideo_window_size) if repvideo_aggregation else None

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, subfolder: Optional[str] = None, **kwargs):
        """`ModelMixin.from_pretrained`, after checking a local folder's keys and shapes against this class.

        A plain CogVideoX folder (no `repvideo_aggregation` in its config) is refused: it has no gates; wrap it with
        `from_cogvideox`, or convert the released SAT checkpoint with `convert_repvideo_sat_checkpoint`.
        """
        folder = os.path.join(str(pretrained_model_name_or_path), subfolder or "")
        if os.path.isdir(folder):
            config = cls.load_config(folder)
            if "repvideo_aggregation" not in config:
                raise ValueError(
                    f"{os.path.join(folder, 'config.json')} (_class_name {config.get('_class_name')!r}) has no "
                    f"repvideo_aggregation: it is a plain CogVideoX transformer. Wrap it with "
                    f"CogVideoXRepVideoTransformer3DModel.from_cogvideox(CogVideoXTransformer3DModel.from_pretrained(...))"
                )
            check_checkpoint(cls, folder, config)
        return super().from_pretrained(pretrained_model_name_or_path, subfolder=subfolder, **kwargs)

    @classmethod
    def from_cogvideox(
        cls, transformer: CogVideoXTransformer3DModel, gate_init: float = 0.5, window_size: int = 6
    ) -> "CogVideoXRepVideoTransformer3DModel":
        """A RepVideo transformer around stock CogVideoX weights, with fresh gates (RepVideo's initialisation).

        The weights are shared with `transformer` (no copy is made). The released RepVideo model was fine-tuned
        whole, so stock weights plus gates are a starting point for training, not the released model.

        Args:
            transformer (`CogVideoXTransformer3DModel`): e.g. `THUDM/CogVideoX-2b`'s transformer.
            gate_init (`float`, defaults to 0.5): initial value of every gate.
            window_size (`int`, defaults to 6): aggregation window.
        """
        if not isinstance(transformer, CogVideoXTransformer3DModel) or isinstance(transformer, cls):
            raise TypeError(
                f"transformer={type(transformer).__name__} must be a plain diffusers CogVideoXTransformer3DModel"
            )
        config = {key: value for key, value in transformer.config.items() if not key.startswith("_")}
        config.update(repvideo_aggregation=True, repvideo_window_size=window_size)
        parameter = next(transformer.parameters())
        with init_empty_weights():
            model = cls.from_config(config)
        state = dict(transformer.state_dict())
        state["repvideo.learnable_gating"] = torch.full(
            (config["num_layers"],), float(gate_init), dtype=parameter.dtype, device=parameter.device
        )
        model.load_state_dict(state, strict=True, assign=True)
        # non-persistent buffers (the sin-cos position table) are not in the state dict: share them too
        for name, buffer in transformer.named_buffers():
            if name not in state:
                module_name, _, buffer_name = name.rpartition(".")
                setattr(model.get_submodule(module_name), buffer_name, buffer)
        return model.train(transformer.training)

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
    ) -> Union[Tuple[torch.Tensor], Transformer2DModelOutput]:
        """Predicts the denoiser output (v-prediction for CogVideoX-2B) for video latents.

        Args:
            hidden_states (`torch.Tensor` [B, F, C, H, W]): noisy latents.
            encoder_hidden_states (`torch.Tensor` [B, L, text_embed_dim]): T5 prompt embeddings.
            timestep (`torch.Tensor` [B] or number): diffusion timestep.
            timestep_cond, ofs, image_rotary_emb, attention_kwargs, return_dict: as for
                `CogVideoXTransformer3DModel.forward`.
        """
        if self.repvideo is None:
            return CogVideoXTransformer3DModel.forward.__wrapped__(
                self, hidden_states, encoder_hidden_states, timestep, timestep_cond, ofs, image_rotary_emb,
                attention_kwargs, return_dict,
            )
        batch_size, num_frames, _, height, width = hidden_states.shape

        # 1. time embedding (as in diffusers CogVideoXTransformer3DModel.forward)
        t_emb = self.time_proj(timestep).to(dtype=hidden_states.dtype)
        emb = self.time_embedding(t_emb, timestep_cond)
        if self.ofs_embedding is not None:
            emb = emb + self.ofs_embedding(self.ofs_proj(ofs).to(dtype=hidden_states.dtype))

        # 2. patch embedding: the embedding output opens the aggregation window (SAT's first cache entry)
        hidden_states = self.embedding_dropout(self.patch_embed(encoder_hidden_states, hidden_states))
        text_seq_length = encoder_hidden_states.shape[1]
        encoder_hidden_states = hidden_states[:, :text_seq_length]
        hidden_states = hidden_states[:, text_seq_length:]

        # 3. blocks; each block input is the gated mix of the window mean and the current streams
        window = self.repvideo.start((hidden_states, encoder_hidden_states))
        for index, block in enumerate(self.transformer_blocks):
            hidden_states, encoder_hidden_states = window.mix(index, (hidden_states, encoder_hidden_states))
            if torch.is_grad_enabled() and self.gradient_checkpointing:
                hidden_states, encoder_hidden_states = self._gradient_checkpointing_func(
                    block, hidden_states, encoder_hidden_states, emb, image_rotary_emb, attention_kwargs
                )
            else:
                hidden_states, encoder_hidden_states = block(
                    hidden_states=hidden_states,
                    encoder_hidden_states=encoder_hidden_states,
                    temb=emb,
                    image_rotary_emb=image_rotary_emb,
                    attention_kwargs=attention_kwargs,
                )
            window.record(index, (hidden_states, encoder_hidden_states))

        # 4. output: norm_final is per token, so normalising the video tokens alone equals SAT's normalisation of
        # [text ; video] followed by dropping the text
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
