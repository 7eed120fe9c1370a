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

from typing import Any, Dict, Optional, Tuple, Union

import torch
from diffusers.configuration_utils import register_to_config
from diffusers.models.modeling_outputs import Transformer2DModelOutput

# diffusers' pipeline loader looks the loadable base class up in the module that model_index.json names
from diffusers.models.modeling_utils import ModelMixin  # noqa: F401
from diffusers.models.transformers.cogvideox_transformer_3d import CogVideoXTransformer3DModel
from diffusers.utils import apply_lora_scale

from ._cogvideox import CogVideoXExtension, cogvideox_config_arguments
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


class CogVideoXRepVideoTransformer3DModel(RepVideoSwitchMixin, CogVideoXExtension):
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
    _extension_config_key = "repvideo_aggregation"

    @register_to_config
    @cogvideox_config_arguments
    def __init__(self, repvideo_aggregation: bool = True, repvideo_window_size: int = 6, **kwargs):
        if not isinstance(repvideo_aggregation, bool):
            raise ValueError(f"repvideo_aggregation={repvideo_aggregation!r} must be True or False")
        super().__init__(**kwargs)
        num_layers = self.config.num_layers
        self.repvideo = RepVideoAggregation(num_layers, repvideo_window_size) if repvideo_aggregation else None

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

        def gates(model, base_state, like):
            gating = torch.full(model.repvideo.learnable_gating.shape, float(gate_init), dtype=like.dtype)
            return {"repvideo.learnable_gating": gating.to(like.device)}

        config = dict(repvideo_aggregation=True, repvideo_window_size=window_size)
        return cls._from_cogvideox(transformer, config, gates)

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
        latent_shape = hidden_states.shape
        emb, hidden_states, encoder_hidden_states = self._embed(
            hidden_states, encoder_hidden_states, timestep, timestep_cond, ofs
        )
        # the embedding output opens the aggregation window (SAT's first cache entry); without it, the stock loop
        window = None if self.repvideo is None else self.repvideo.start((hidden_states, encoder_hidden_states))
        for index, block in enumerate(self.transformer_blocks):
            if window is not None:
                hidden_states, encoder_hidden_states = window.mix(index, (hidden_states, encoder_hidden_states))
            hidden_states, encoder_hidden_states = self._run_block(
                block, hidden_states, encoder_hidden_states, emb, image_rotary_emb, attention_kwargs
            )
            if window is not None:
                window.record(index, (hidden_states, encoder_hidden_states))
        return self._unpatchify(hidden_states, emb, latent_shape, return_dict)

    def forward_stages(
        self,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor,
        timestep: Union[int, float, torch.LongTensor],
        timestep_cond: Optional[torch.Tensor] = None,
        ofs: Optional[Union[int, float, torch.LongTensor]] = None,
        image_rotary_emb: Optional[Tuple[torch.Tensor, torch.Tensor]] = None,
        attention_kwargs: Optional[Dict[str, Any]] = None,
    ):
        """`forward` cut into ``(prelude, blocks, head)`` callables over a state dict, for training by groups.

        ``prelude()`` embeds the inputs; ``blocks[i](state)`` runs block ``i`` (with the aggregation mix and record
        when the state holds ``repvideo_window``); ``head(state)`` is the output head, [B, F, C, H, W]. Run in order
        they give exactly `forward`'s output. Each callable reads the modules through ``self`` at call time, so a
        caller may swap their parameters (``torch.func.functional_call``) to run copies.
        """
        latent_shape = hidden_states.shape

        def prelude() -> Dict[str, Any]:
            emb, video, text = self._embed(hidden_states, encoder_hidden_states, timestep, timestep_cond, ofs)
            state = {"hidden_states": video, "encoder_hidden_states": text, "temb": emb}
            if self.repvideo is not None:
                state["repvideo_window"] = self.repvideo.start((video, text))
            return state

        def block_fn(index):
            def run(state: Dict[str, Any]) -> Dict[str, Any]:
                video, text, window = state["hidden_states"], state["encoder_hidden_states"], state.get("repvideo_window")
                if window is not None:
                    video, text = window.mix(index, (video, text))
                video, text = self._run_block(self.transformer_blocks[index], video, text, state["temb"],
                                              image_rotary_emb, attention_kwargs)
                if window is not None:
                    window.record(index, (video, text))
                return {**state, "hidden_states": video, "encoder_hidden_states": text}

            return run

        def head(state: Dict[str, Any]) -> torch.Tensor:
            return self._unpatchify(state["hidden_states"], state["temb"], latent_shape, return_dict=False)[0]

        return prelude, [block_fn(i) for i in range(len(self.transformer_blocks))], head
