"""LGVI-I's instruction encoder: LLaVA-1.5 reads the first frame and a chat request, writes the inpainting prompt,
and a transfer head turns its last-layer states into the video UNet's cross-attention tokens.

The multimodal LLM is transformers' ``LlavaForConditionalGeneration`` (LLaMA, a CLIP vision tower whose
second-to-last layer's patch features, CLS dropped, pass a two-layer GELU projector). The official LGVI-I code
(``LlavaLlamaInpaint`` in jianzongwu/Language-Driven-Video-Inpainting) adds ``transfer_head``:
Linear(hidden, hidden) -> ReLU -> Linear(hidden, 768, bias=False). ``convert.llava.load_official_instruction_encoder``
loads the released weights: ``liuhaotian/llava-v1.5-7b`` (original LLaVA layout), ``openai/clip-vit-large-patch14-336``
and the fine-tuned overlay ``jianzongwu/lgvi-i/llava/llava_weights.pth`` (token embeddings, projector, transfer head).

``encode_instruction`` follows the official inference: the "v1_inpaint" conversation, the ``<image>`` marker
replaced by the image features, sampled generation (temperature 0.2, top-k 50 as transformers' default), the
final-norm hidden state of the last prompt position and of every generated token but the last -> transfer head,
sliced from the prompt start (the token count of the answer before ``{{prompt}}``).
"""

import os
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from PIL import Image
from torch import nn

from ._checked import CheckedLoadingMixin
from .lgvi_instruction_prompt import (
    IMAGE_MARKER,
    TINY_BYTE_TOKEN_IDS,
    _ids_around_images,
    build_inpaint_conversation,
    prompt_start_index,
    train_tiny_llama_tokenizer,
)

__all__ = ["LGVIInstructionEncoder", "build_tiny_lgvi_instruction_encoder"]

# CLIP's normalisation (clip-vit-large-patch14-336), as the official first-frame transform hard-codes it
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


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


class LGVIInstructionEncoder(CheckedLoadingMixin, ModelMixin, ConfigMixin):
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
    def save_pretrained(self, save_directory: Union[str, os.PathLike], **kwargs):
        """Config and weights as any diffusers model, plus the tokenizer in ``tokenizer/``."""
        super().save_pretrained(save_directory, **kwargs)
        if self.tokenizer is not None:
            self.tokenizer.save_pretrained(os.path.join(save_directory, self.tokenizer_subfolder))

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: Union[str, os.PathLike], **kwargs):
        """Load what ``save_pretrained`` wrote (config, weights and the tokenizer in ``tokenizer/``), checked as
        `CheckedLoadingMixin.from_pretrained` checks it."""
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
            is_tensor = isinstance(first_frames, torch.Tensor)
            shape = tuple(first_frames.shape) if is_tensor else type(first_frames).__name__
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
