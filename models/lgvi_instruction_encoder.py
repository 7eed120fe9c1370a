"""LGVI-I's instruction encoder: LLaVA-1.5 reads the first frame and a chat request, writes the inpainting prompt,
and a transfer head turns its last-layer states into the video UNet's cross-attention tokens.

The multimodal LLM is transformers' ``LlavaForConditionalGeneration`` (LLaMA, a CLIP vision tower whose
second-to-last layer's patch features, CLS dropped, pass a two-layer GELU projector). The official LGVI-I code
(``LlavaLlamaInpaint`` in jianzongwu/Language-Driven-Video-Inpainting) adds ``transfer_head``:
Linear(hidden, hidden) -> ReLU -> Linear(hidden, 768, bias=False). ``LGVIInstructionEncoder.from_official`` loads
the released weights: ``liuhaotian/llava-v1.5-7b`` (original LLaVA layout), ``openai/clip-vit-large-patch14-336``
and the fine-tuned overlay ``jianzongwu/lgvi-i/llava/llava_weights.pth`` (token embeddings, projector, transfer head).

``encode_instruction`` follows the official inference: the "v1_inpaint" conversation, the ``<image>`` marker
replaced by the image features, sampled generation (temperature 0.2, top-k 50 as transformers' default), the
final-norm hidden state of the last prompt position and of every generated token but the last -> transfer head,
sliced from the prompt start (the token count of the answer before ``{{prompt}}``).
"""

import json
import os
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from PIL import Image
from torch import nn

from .lgvi_instruction_prompt import (
    IMAGE_MARKER,
    TINY_BYTE_TOKEN_IDS,
    _ids_around_images,
    build_inpaint_conversation,
    prompt_start_index,
    train_tiny_llama_tokenizer,
)

__all__ = ["LGVIInstructionEncoder", "build_tiny_lgvi_instruction_encoder", "split_llava_checkpoint"]

# CLIP's normalisation (clip-vit-large-patch14-336), as the official first-frame transform hard-codes it
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

# Original LLaVA checkpoint key prefixes -> LlavaForConditionalGeneration's.
_LLAVA_KEY_PREFIXES = (
    ("model.mm_projector.0.", "model.multi_modal_projector.linear_1."),
    ("model.mm_projector.2.", "model.multi_modal_projector.linear_2."),
    ("model.", "model.language_model."),
    ("lm_head.", "lm_head."),
)
# Buffers older transformers versions saved with the weights; they are recomputed, never loaded.
_IGNORED_SUFFIXES = ("rotary_emb.inv_freq", "embeddings.position_ids")
_OVERLAY_PARTS = {
    "language_embedding": "model.language_model.embed_tokens.",
    "vision_embedding": None,  # mm_projector "0."/"2." -> linear_1/linear_2
    "transfer_layer": "transfer_head.",
}


def _resize_shortest_side_and_centre_crop(image: Image.Image, size: int) -> Image.Image:
    """torchvision's ``Resize(size, BICUBIC)`` + ``CenterCrop(size)`` on a PIL image, the official first-frame path."""
    width, height = image.size
    short, long = min(width, height), max(width, height)
    new_short, new_long = size, int(size * long / short)
    new_width, new_height = (new_short, new_long) if width <= height else (new_long, new_short)
    image = image.resize((new_width, new_height), Image.BICUBIC)
    top = int(round((new_height - size) / 2.0))
    left = int(round((new_width - size) / 2.0))
    return image.crop((left, top, left + size, top + size))


def split_llava_checkpoint(state_dict: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """Original LLaVA keys (``model.layers.*``, ``model.embed_tokens``, ``model.mm_projector.{0,2}``, ``lm_head``)
    -> ``LlavaForConditionalGeneration`` keys; saved rotary / position-id buffers are dropped."""
    mapped = {}
    for key, tensor in state_dict.items():
        if key.endswith(_IGNORED_SUFFIXES):
            continue
        for old, new in _LLAVA_KEY_PREFIXES:
            if key.startswith(old):
                mapped[new + key[len(old):]] = tensor
                break
        else:
            mapped[key] = tensor
    return mapped


def _read_weight_files(folder: str, stem: str) -> Dict[str, torch.Tensor]:
    """All tensors of a transformers checkpoint folder: ``{stem}.safetensors`` / ``pytorch_model.bin`` or an index."""
    from safetensors.torch import load_file

    candidates = [
        ("model.safetensors.index.json", True), ("model.safetensors", False),
        ("pytorch_model.bin.index.json", True), ("pytorch_model.bin", False),
    ]
    for name, is_index in candidates:
        path = os.path.join(folder, name)
        if not os.path.isfile(path):
            continue
        if is_index:
            with open(path, encoding="utf-8") as f:
                files = sorted(set(json.load(f)["weight_map"].values()))
            paths = [os.path.join(folder, file) for file in files]
        else:
            paths = [path]
        tensors: Dict[str, torch.Tensor] = {}
        for shard in paths:
            if not os.path.isfile(shard):
                raise FileNotFoundError(f"{stem} weights shard {shard!r} listed in {path!r} is missing")
            try:
                if shard.endswith(".safetensors"):
                    tensors.update(load_file(shard))
                else:
                    tensors.update(torch.load(shard, map_location="cpu", weights_only=True, mmap=True))
            except Exception as error:  # noqa: BLE001 - any read failure is reported with the file
                raise ValueError(f"corrupt {stem} weights file {shard!r}: {error}") from None
        return tensors
    raise FileNotFoundError(
        f"no {stem} weights in {folder!r}: expected one of {[name for name, _ in candidates]}"
    )


def _read_json(path: str, what: str) -> dict:
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{what}: {path!r} does not exist")
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _check_keys(found: Dict[str, torch.Tensor], expected: Dict[str, torch.Tensor], source: str) -> None:
    from .checkpoint import key_table_problems

    problems = key_table_problems({k: v.shape for k, v in expected.items()}, {k: v.shape for k, v in found.items()})
    if problems:
        raise ValueError(f"{source} does not match LGVIInstructionEncoder: " + "; ".join(problems))


class LGVIInstructionEncoder(ModelMixin, ConfigMixin):
    """LLaVA-1.5 + LGVI-I's transfer head: (first frame, chat request) -> (cross-attention tokens, answer text).

    Args:
        text_config (`dict`): the LLaMA config (``LlamaConfig`` fields).
        vision_config (`dict`): the CLIP vision config (``CLIPVisionConfig`` fields; ``image_size`` is the
            first-frame crop size).
        vision_feature_layer (`int`, defaults to -2): vision tower hidden state whose patch features are used.
        cross_attention_dim (`int`, defaults to 768): width of the transfer head's output.
        max_new_tokens (`int`, defaults to 1024): generation length limit.
        temperature (`float`, defaults to 0.2): sampling temperature.
        top_k (`int`, defaults to 50): sampling top-k (transformers' default, which the official run keeps).
        eos_token_id (`int`, defaults to 2): the token that ends the answer.
    """

    config_name = "config.json"
    tokenizer_subfolder = "tokenizer"

    @register_to_config
    def __init__(
        self,
        text_config: dict,
        vision_config: dict,
        vision_feature_layer: int = -2,
        cross_attention_dim: int = 768,
        max_new_tokens: int = 1024,
        temperature: float = 0.2,
        top_k: int = 50,
        eos_token_id: int = 2,
    ):
        super().__init__()
        from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig, LlavaForConditionalGeneration

        llava_config = LlavaConfig(
            text_config=LlamaConfig(**text_config),
            vision_config=CLIPVisionConfig(**vision_config),
            vision_feature_layer=vision_feature_layer,
            vision_feature_select_strategy="default",
            projector_hidden_act="gelu",
            multimodal_projector_bias=True,
            # the image features are spliced in at the official "<image>" position by this class (as LLaVA does),
            # so no placeholder token is added to the vocabulary: the id is one past its end and never looked up
            image_token_id=text_config["vocab_size"],
        )
        self.mllm = LlavaForConditionalGeneration(llava_config)
        hidden = text_config["hidden_size"]
        self.transfer_head = nn.Sequential(
            nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, cross_attention_dim, bias=False)
        )
        self.tokenizer = None

    # ---------------------------------------------------------------- loading and saving
    @classmethod
    def from_official(cls, llava_dir: str, clip_dir: str, lgvi_i_llava_weights: str,
                      torch_dtype: torch.dtype = torch.float32, cross_attention_dim: Optional[int] = None,
                      max_new_tokens: int = 1024):
        """Load the released LGVI-I instruction encoder.

        Args:
            llava_dir (`str`): ``liuhaotian/llava-v1.5-7b`` (original LLaVA layout: config.json with mm_* fields,
                tokenizer.model, pytorch_model*.bin or safetensors).
            clip_dir (`str`): ``openai/clip-vit-large-patch14-336`` (a CLIP or CLIP-vision folder).
            lgvi_i_llava_weights (`str`): ``jianzongwu/lgvi-i/llava/llava_weights.pth``.
            torch_dtype (`torch.dtype`, defaults to float32): dtype of the weights.
            cross_attention_dim (`int`, *optional*): expected transfer-head output width (read from the overlay).
            max_new_tokens (`int`, defaults to 1024): the answer length limit (the official setting).
        """
        from accelerate import init_empty_weights
        from transformers import LlamaTokenizer

        for name, folder in (("llava_dir", llava_dir), ("clip_dir", clip_dir)):
            if not isinstance(folder, (str, os.PathLike)) or not os.path.isdir(folder):
                raise FileNotFoundError(f"{name}={folder!r} is not a folder")
        if not isinstance(lgvi_i_llava_weights, (str, os.PathLike)) or not os.path.isfile(lgvi_i_llava_weights):
            raise FileNotFoundError(
                f"lgvi_i_llava_weights={lgvi_i_llava_weights!r} is not a file (expected lgvi-i/llava/llava_weights.pth)"
            )
        if not isinstance(torch_dtype, torch.dtype) or not torch_dtype.is_floating_point:
            raise ValueError(f"torch_dtype={torch_dtype!r} must be a floating torch.dtype")
        if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens < 1:
            raise ValueError(f"max_new_tokens={max_new_tokens!r} must be a positive int")

        llava_config = _read_json(os.path.join(llava_dir, "config.json"), "llava_dir config")
        for field in ("mm_hidden_size", "mm_projector_type", "hidden_size", "vocab_size"):
            if field not in llava_config:
                raise ValueError(f"{llava_dir}/config.json has no {field!r}: not an original-layout LLaVA config")
        if llava_config["mm_projector_type"] != "mlp2x_gelu":
            raise ValueError(
                f"{llava_dir}/config.json mm_projector_type={llava_config['mm_projector_type']!r}: "
                "only 'mlp2x_gelu' (LLaVA-1.5) is supported"
            )
        if llava_config.get("mm_vision_select_feature", "patch") != "patch":
            raise ValueError(f"{llava_dir}/config.json mm_vision_select_feature must be 'patch'")
        clip_config = _read_json(os.path.join(clip_dir, "config.json"), "clip_dir config")
        vision_config = clip_config.get("vision_config", clip_config)
        if vision_config.get("hidden_size") != llava_config["mm_hidden_size"]:
            raise ValueError(
                f"{clip_dir}/config.json vision hidden_size={vision_config.get('hidden_size')} != "
                f"mm_hidden_size={llava_config['mm_hidden_size']} of {llava_dir}/config.json"
            )
        from transformers import CLIPVisionConfig, LlamaConfig

        text_fields = set(LlamaConfig().to_dict())
        text_config = {k: v for k, v in llava_config.items() if k in text_fields and not k.startswith("_")}
        for key in ("architectures", "transformers_version", "torch_dtype", "dtype", "model_type"):
            text_config.pop(key, None)
        vision_fields = set(CLIPVisionConfig().to_dict())
        vision_config = {k: v for k, v in vision_config.items() if k in vision_fields and not k.startswith("_")}
        for key in ("architectures", "transformers_version", "torch_dtype", "dtype", "model_type"):
            vision_config.pop(key, None)

        try:
            overlay = torch.load(lgvi_i_llava_weights, map_location="cpu", weights_only=True)
        except Exception as error:  # noqa: BLE001 - any read failure is reported with the file
            raise ValueError(f"corrupt LGVI-I overlay {lgvi_i_llava_weights!r}: {error}") from None
        if not isinstance(overlay, dict) or set(overlay) != set(_OVERLAY_PARTS):
            found = sorted(overlay) if isinstance(overlay, dict) else type(overlay).__name__
            raise ValueError(f"{lgvi_i_llava_weights!r} holds {found}; expected the parts {sorted(_OVERLAY_PARTS)}")
        head_out = overlay["transfer_layer"].get("2.weight")
        if head_out is None:
            raise ValueError(
                f"{lgvi_i_llava_weights!r} transfer_layer has no '2.weight': {sorted(overlay['transfer_layer'])}"
            )
        if cross_attention_dim is not None and cross_attention_dim != head_out.shape[0]:
            raise ValueError(
                f"cross_attention_dim={cross_attention_dim} but the transfer head of {lgvi_i_llava_weights!r} "
                f"outputs {head_out.shape[0]}"
            )

        with init_empty_weights():
            encoder = cls(
                text_config=text_config,
                vision_config=vision_config,
                vision_feature_layer=llava_config.get("mm_vision_select_layer", -2),
                cross_attention_dim=head_out.shape[0],
                max_new_tokens=max_new_tokens,
                eos_token_id=llava_config.get("eos_token_id", 2),
            )
        expected = encoder.state_dict()
        # transformers versions differ in whether the Llava vision tower keeps CLIP's "vision_model." level
        vision_prefix = "model.vision_tower.vision_model."
        if not any(key.startswith("mllm." + vision_prefix) for key in expected):
            vision_prefix = "model.vision_tower."
        state = split_llava_checkpoint(_read_weight_files(llava_dir, "LLaVA"))
        clip_state = _read_weight_files(clip_dir, "CLIP")
        # a CLIP checkpoint keeps its vision tower under "vision_model."; a vision-only one may have no prefix
        has_level = any(key.startswith("vision_model.") for key in clip_state)
        for key, tensor in clip_state.items():
            if key.endswith(_IGNORED_SUFFIXES) or (has_level and not key.startswith("vision_model.")):
                continue
            state[vision_prefix + key.removeprefix("vision_model.")] = tensor
        for part, tensors in overlay.items():
            for key, tensor in tensors.items():
                if part == "vision_embedding":
                    layer = {"0.": "linear_1.", "2.": "linear_2."}.get(key[:2])
                    if layer is None:
                        raise ValueError(f"{lgvi_i_llava_weights!r} vision_embedding has an unexpected key {key!r}")
                    state["model.multi_modal_projector." + layer + key[2:]] = tensor
                else:
                    state[_OVERLAY_PARTS[part] + key] = tensor
        state = {("mllm." + k if not k.startswith("transfer_head.") else k): v for k, v in state.items()}

        _check_keys(state, expected, f"{llava_dir} + {clip_dir} + {lgvi_i_llava_weights}")
        encoder.load_state_dict({k: v.to(torch_dtype) for k, v in state.items()}, strict=True, assign=True)
        # LlamaTokenizer by name: AutoTokenizer would follow config.json's model_type "llava" to a generic tokenizer
        encoder.tokenizer = LlamaTokenizer.from_pretrained(llava_dir)
        return encoder.eval()

    def save_pretrained(self, save_directory: Union[str, os.PathLike], **kwargs):
        """Config and weights as any diffusers model, plus the tokenizer in ``tokenizer/``."""
        super().save_pretrained(save_directory, **kwargs)
        if self.tokenizer is not None:
            self.tokenizer.save_pretrained(os.path.join(save_directory, self.tokenizer_subfolder))

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: Union[str, os.PathLike], **kwargs):
        """Load what ``save_pretrained`` wrote (config, weights and the tokenizer in ``tokenizer/``)."""
        from transformers import LlamaTokenizer

        encoder = super().from_pretrained(pretrained_model_name_or_path, **kwargs)
        folder = os.path.join(pretrained_model_name_or_path, kwargs.get("subfolder") or "")
        tokenizer_dir = os.path.join(folder, cls.tokenizer_subfolder)
        if not os.path.isdir(tokenizer_dir):
            raise FileNotFoundError(
                f"{folder!r} has no {cls.tokenizer_subfolder}/ folder: the encoder needs its tokenizer"
            )
        encoder.tokenizer = LlamaTokenizer.from_pretrained(tokenizer_dir)
        return encoder

    # ---------------------------------------------------------------- inference
    def preprocess_first_frame(self, frame: torch.Tensor) -> torch.Tensor:
        """[3,H,W] in 0..1 -> [1,3,S,S] CLIP input: shortest side to S (PIL bicubic), centre crop S, CLIP mean/std."""
        size = self.config.vision_config["image_size"]
        pixels = (frame.detach().float().clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
        image = _resize_shortest_side_and_centre_crop(Image.fromarray(pixels, mode="RGB"), size)
        tensor = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0).permute(2, 0, 1)
        mean = torch.tensor(CLIP_MEAN).view(3, 1, 1)
        std = torch.tensor(CLIP_STD).view(3, 1, 1)
        return ((tensor - mean) / std).unsqueeze(0)

    def _prompt_embeddings(self, pixel_values: torch.Tensor, request: str) -> torch.Tensor:
        pieces = _ids_around_images(build_inpaint_conversation(request), self.tokenizer)
        embed = self.mllm.get_input_embeddings()
        device, dtype = embed.weight.device, embed.weight.dtype
        image_features = self.mllm.get_image_features(
            pixel_values=pixel_values.to(device=device, dtype=self.mllm.model.vision_tower.dtype),
            vision_feature_layer=self.config.vision_feature_layer,
            vision_feature_select_strategy="default",
        ).pooler_output[0].to(dtype)
        parts = [embed(torch.tensor(pieces[0], dtype=torch.long, device=device)), image_features,
                 embed(torch.tensor(pieces[1], dtype=torch.long, device=device))]
        return torch.cat(parts, dim=0).unsqueeze(0)

    def _next_token(self, logits: torch.Tensor, do_sample: bool, temperature: float, generator) -> torch.Tensor:
        scores = logits.float()
        if not do_sample:
            return scores.argmax(dim=-1)
        scores = scores / temperature
        top_k = min(max(self.config.top_k, 1), scores.shape[-1])
        threshold = torch.topk(scores, top_k)[0][..., -1, None]
        scores = scores.masked_fill(scores < threshold, -float("inf"))
        probs = torch.softmax(scores, dim=-1)
        # draw where the generator lives (a CPU generator, as ComfyUI passes, with the model on a GPU)
        draw_device = generator.device if generator is not None else probs.device
        token = torch.multinomial(probs.to(draw_device), num_samples=1, generator=generator)
        return token.squeeze(1).to(probs.device)

    @torch.no_grad()
    def generate_one(self, pixel_values: torch.Tensor, request: str, *, do_sample: bool = True,
                     temperature: Optional[float] = None, max_new_tokens: Optional[int] = None,
                     generator: Optional[torch.Generator] = None) -> Tuple[torch.Tensor, torch.Tensor, str]:
        """Answer one request about one preprocessed frame ``[1,3,S,S]``.

        Returns the generated ids ``[n]`` (the end token included when reached), the transfer-head features of the
        last prompt position and of every generated token but the last ``[1,n,D]``, and the stripped answer text.
        """
        from transformers import DynamicCache

        temperature = self.config.temperature if temperature is None else temperature
        max_new_tokens = self.config.max_new_tokens if max_new_tokens is None else max_new_tokens
        language_model = self.mllm.model.language_model
        cache = DynamicCache(config=self.mllm.config.text_config)
        inputs_embeds = self._prompt_embeddings(pixel_values, request)
        states, tokens = [], []
        for _ in range(max_new_tokens):
            output = language_model(inputs_embeds=inputs_embeds, past_key_values=cache, use_cache=True)
            hidden = output.last_hidden_state
            last = hidden[:, -1:, :]
            states.append(last)
            token = self._next_token(self.mllm.lm_head(last)[:, -1, :], do_sample, temperature, generator)
            tokens.append(token)
            if int(token) == self.config.eos_token_id:
                break
            inputs_embeds = self.mllm.get_input_embeddings()(token[:, None])
        ids = torch.cat(tokens)
        features = self.transfer_head(torch.cat(states, dim=1))
        text = self.tokenizer.batch_decode([ids.tolist()], skip_special_tokens=True)[0].strip()
        return ids, features, text

    def _check_encode_inputs(self, first_frames, requests, max_new_tokens, temperature) -> None:
        if self.tokenizer is None:
            raise ValueError(
                "this LGVIInstructionEncoder has no tokenizer; load it with from_official or from_pretrained"
            )
        if not isinstance(first_frames, torch.Tensor) or first_frames.ndim != 4 or first_frames.shape[1] != 3:
            shape = tuple(first_frames.shape) if isinstance(first_frames, torch.Tensor) else type(first_frames).__name__
            raise ValueError(f"first_frames={shape} must be a float tensor [batch, 3, height, width] in 0..1")
        if not first_frames.is_floating_point():
            raise ValueError(f"first_frames has dtype {first_frames.dtype}; expected a float tensor in 0..1")
        if (isinstance(requests, str) or not isinstance(requests, Sequence)
                or not all(isinstance(request, str) for request in requests)):
            raise ValueError(f"requests={requests!r} must be a list of strings, one per frame")
        if len(requests) != first_frames.shape[0]:
            raise ValueError(f"{len(requests)} requests for {first_frames.shape[0]} first frames; give one per frame")
        for request in requests:
            if not request.strip():
                raise ValueError(f"request={request!r} is empty; say what to remove")
            if IMAGE_MARKER in request:
                raise ValueError(f"request={request!r} contains {IMAGE_MARKER!r}, the image placeholder of the prompt")
        if max_new_tokens is not None and (isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int)
                                           or max_new_tokens < 1):
            raise ValueError(f"max_new_tokens={max_new_tokens!r} must be a positive int")
        if temperature is not None and (not isinstance(temperature, (int, float)) or temperature <= 0):
            raise ValueError(f"temperature={temperature!r} must be a positive number")

    @torch.no_grad()
    def encode_instruction(self, first_frames: torch.Tensor, requests: List[str],
                           generator: Optional[Union[torch.Generator, List[torch.Generator]]] = None, *,
                           do_sample: bool = True, temperature: Optional[float] = None,
                           max_new_tokens: Optional[int] = None) -> Tuple[torch.Tensor, List[str]]:
        """The pipeline's ``instruction_encoder`` contract: first frames + requests -> (prompt_embeds, answers).

        Each sample is generated on its own (a loop over the batch: answers end at different lengths). Every
        sample's features are sliced from its prompt start (``prompt_start_index``; the whole sequence when the
        start lies past its end, as the official code); shorter ones are right-padded with zeros to the longest,
        zeros being the pipeline's unconditional embedding. At batch size 1 nothing is padded.

        Args:
            first_frames (`torch.Tensor`): ``[B,3,H,W]`` float in 0..1, the first frame of each video.
            requests (`List[str]`): one chat request per frame.
            generator (`torch.Generator` or a list of B, *optional*): sampling randomness.
            do_sample (`bool`, defaults to True): sample as the official run; False decodes greedily.
            temperature (`float`, *optional*): defaults to the config's (0.2).
            max_new_tokens (`int`, *optional*): defaults to the config's (1024).
        """
        self._check_encode_inputs(first_frames, requests, max_new_tokens, temperature)
        if isinstance(generator, list) and len(generator) != len(requests):
            raise ValueError(f"{len(generator)} generators for {len(requests)} requests; give one or one per request")
        features, texts = [], []
        for index, request in enumerate(requests):
            sample_generator = generator[index] if isinstance(generator, list) else generator
            pixel_values = self.preprocess_first_frame(first_frames[index])
            _, sample_features, text = self.generate_one(
                pixel_values, request, do_sample=do_sample, temperature=temperature,
                max_new_tokens=max_new_tokens, generator=sample_generator,
            )
            start = prompt_start_index(text, self.tokenizer)
            if start <= sample_features.shape[1]:
                sample_features = sample_features[:, start:]
            if sample_features.shape[1] == 0:
                raise ValueError(
                    f"the answer {text!r} to request {index} leaves no tokens after its prompt start ({start}); "
                    f"raise max_new_tokens (now {max_new_tokens or self.config.max_new_tokens})"
                )
            features.append(sample_features[0])
            texts.append(text)
        longest = max(f.shape[0] for f in features)
        padded = torch.zeros(len(features), longest, features[0].shape[-1], dtype=features[0].dtype,
                             device=features[0].device)
        for index, sample_features in enumerate(features):
            padded[index, : sample_features.shape[0]] = sample_features
        return padded, texts


def tiny_lgvi_text_config(vocab_size: int = 320) -> dict:
    """The tiny LLaMA of the smoke-test encoder (2 layers, hidden 64)."""
    return dict(vocab_size=vocab_size, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=2048, rms_norm_eps=1e-5,
                rope_theta=10000.0, hidden_act="silu", bos_token_id=1, eos_token_id=2, pad_token_id=0,
                tie_word_embeddings=False)


def tiny_lgvi_vision_config() -> dict:
    """The tiny CLIP vision tower of the smoke-test encoder (28 px, patch 14: 4 image tokens)."""
    return dict(hidden_size=32, intermediate_size=64, num_hidden_layers=3, num_attention_heads=2, image_size=28,
                patch_size=14, projection_dim=16, hidden_act="quick_gelu", layer_norm_eps=1e-5)


def build_tiny_lgvi_instruction_encoder(seed: int = 0, cross_attention_dim: int = 32,
                                        max_new_tokens: int = 8) -> LGVIInstructionEncoder:
    """A tiny random-weight ``LGVIInstructionEncoder`` (LLaMA hidden 64, CLIP 28 px, head 64->64->D), no download.

    Its answers are noise; it checks wiring, shapes and speed.

    Args:
        seed (`int`, defaults to 0): seed of the weights.
        cross_attention_dim (`int`, defaults to 32): width of the output tokens (the UNet's cross-attention width).
        max_new_tokens (`int`, defaults to 8): generation length limit.
    """
    import tempfile

    from transformers import LlamaTokenizer

    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed={seed!r} must be a non-negative int")
    if isinstance(cross_attention_dim, bool) or not isinstance(cross_attention_dim, int) or cross_attention_dim < 1:
        raise ValueError(f"cross_attention_dim={cross_attention_dim!r} must be a positive int")
    generator = torch.Generator().manual_seed(seed)
    encoder = LGVIInstructionEncoder(
        text_config=tiny_lgvi_text_config(), vision_config=tiny_lgvi_vision_config(),
        cross_attention_dim=cross_attention_dim, max_new_tokens=max_new_tokens,
    )
    with torch.no_grad():
        for name, tensor in sorted(encoder.state_dict().items()):
            if tensor.is_floating_point():
                if name.endswith("norm.weight") or name.endswith("layer_norm1.weight") or name.endswith(
                        "layer_norm2.weight") or "layrnorm.weight" in name:
                    tensor.fill_(1.0)
                else:
                    tensor.copy_(torch.randn(tensor.shape, generator=generator) * 0.2)
        # byte-fallback tokens never win, so that the random answers decode to word pieces
        encoder.mllm.lm_head.weight[TINY_BYTE_TOKEN_IDS.start:TINY_BYTE_TOKEN_IDS.stop] = 0.0
    with tempfile.TemporaryDirectory(prefix="vdp_tiny_lgvi_tokenizer_") as folder:
        train_tiny_llama_tokenizer(folder)
        encoder.tokenizer = LlamaTokenizer.from_pretrained(folder)
    return encoder.eval()
