"""Base of the pack's CogVideoX extensions (DaS, CogVideoX-RepVideo): the config arguments of diffusers'
`CogVideoXTransformer3DModel` taken over unchanged, checked loading, `from_cogvideox`, and its forward steps.

A subclass writes only its own config arguments, under `@register_to_config` and `@cogvideox_config_arguments`:

    @register_to_config
    @cogvideox_config_arguments
    def __init__(self, own_argument: int = 1, **kwargs):
        super().__init__(**kwargs)

`cogvideox_config_arguments` gives that `__init__` the signature (own arguments, then every
`CogVideoXTransformer3DModel` argument as keyword-only, with its default), which is what diffusers reads: the config
registers and `from_config` / `from_pretrained` pass all of them, and `**kwargs` hands the CogVideoX ones on.
"""

import inspect
from typing import Callable, Dict, Optional, Tuple

import torch
from accelerate import init_empty_weights
from diffusers.models.modeling_outputs import Transformer2DModelOutput
from diffusers.models.transformers.cogvideox_transformer_3d import CogVideoXTransformer3DModel

from ._checked import CheckedLoadingMixin


def cogvideox_config_arguments(init: Callable) -> Callable:
    """Sets `init.__signature__` to its own arguments followed by `CogVideoXTransformer3DModel`'s (keyword-only)."""
    own = inspect.signature(init)
    parameters = [p for p in own.parameters.values() if p.kind is not inspect.Parameter.VAR_KEYWORD]
    names = {p.name for p in parameters}
    inherited = list(inspect.signature(CogVideoXTransformer3DModel.__init__).parameters.values())[1:]
    parameters += [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in inherited if p.name not in names]
    init.__signature__ = own.replace(parameters=parameters)
    return init


class CogVideoXExtension(CheckedLoadingMixin, CogVideoXTransformer3DModel):
    """A `CogVideoXTransformer3DModel` with more submodules; the CogVideoX keys and forward steps are kept.

    Subclasses set `_extension_config_key`, a config argument of theirs that every folder of theirs holds and a
    plain CogVideoX folder lacks.
    """

    _extension_config_key: str

    @classmethod
    def _check_folder_config(cls, folder: str, config: dict) -> None:
        if cls._extension_config_key not in config:
            raise ValueError(
                f"{folder}/config.json (_class_name {config.get('_class_name')!r}) has no "
                f"{cls._extension_config_key}: it is a plain CogVideoX transformer, not a {cls.__name__}. Build one "
                f"from it with {cls.__name__}.from_cogvideox(CogVideoXTransformer3DModel.from_pretrained(...))"
            )

    @classmethod
    def _from_cogvideox(
        cls,
        transformer: CogVideoXTransformer3DModel,
        extension_config: dict,
        extension_state: Callable[..., Dict[str, torch.Tensor]],
    ):
        """This class around `transformer`'s weights (shared, not copied) plus the extension's tensors.

        `extension_state(model, base_state, like)` returns the tensors of the keys the extension adds, in the dtype
        and on the device of `like`; `model` is built on the meta device from `transformer`'s config updated with
        `extension_config`.
        """
        if not isinstance(transformer, CogVideoXTransformer3DModel) or isinstance(transformer, cls):
            raise TypeError(
                f"transformer={type(transformer).__name__} must be a plain diffusers CogVideoXTransformer3DModel"
            )
        config = {key: value for key, value in transformer.config.items() if not key.startswith("_")}
        config.update(extension_config)
        with init_empty_weights():
            model = cls.from_config(config)
        state = dict(transformer.state_dict())
        state.update(extension_state(model, state, next(transformer.parameters())))
        model.load_state_dict(state, strict=True, assign=True)
        # non-persistent buffers (the sin-cos position table) are not in the state dict: share them too
        for name, buffer in transformer.named_buffers():
            if name not in state:
                module_name, _, buffer_name = name.rpartition(".")
                setattr(model.get_submodule(module_name), buffer_name, buffer)
        return model.train(transformer.training)

    def _patch_tokens(self, encoder_hidden_states: torch.Tensor, latents: torch.Tensor):
        """Step 2 of `CogVideoXTransformer3DModel.forward`: (text tokens, video tokens) of the patch embedding."""
        tokens = self.embedding_dropout(self.patch_embed(encoder_hidden_states, latents))
        text_seq_length = encoder_hidden_states.shape[1]
        return tokens[:, :text_seq_length], tokens[:, text_seq_length:]

    def _embed(
        self,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor,
        timestep,
        timestep_cond: Optional[torch.Tensor],
        ofs,
    ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Steps 1-2 of `CogVideoXTransformer3DModel.forward`: (time embedding, video tokens, text tokens)."""
        emb = self.time_embedding(self.time_proj(timestep).to(dtype=hidden_states.dtype), timestep_cond)
        if self.ofs_embedding is not None:
            emb = emb + self.ofs_embedding(self.ofs_proj(ofs).to(dtype=hidden_states.dtype))
        text, video = self._patch_tokens(encoder_hidden_states, hidden_states)
        return emb, video, text

    def _run_block(self, block, hidden_states, encoder_hidden_states, emb, image_rotary_emb, attention_kwargs):
        """One CogVideoX block, under gradient checkpointing when it is on: (video tokens, text tokens)."""
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

    def _unpatchify(self, hidden_states: torch.Tensor, emb: torch.Tensor, latent_shape, return_dict: bool):
        """Steps 4-5 of `CogVideoXTransformer3DModel.forward`: final norms, projection, video tokens -> latents.

        `norm_final` is per token, so normalising the video tokens alone equals the official normalisation of
        [text ; video] followed by dropping the text.
        """
        hidden_states = self.proj_out(self.norm_out(self.norm_final(hidden_states), temb=emb))
        batch_size, num_frames, _, height, width = latent_shape
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
