"""Embedded smoke-test model: a deterministic tiny random-weight Vchitect-2.0 family in the official layout.

``save_tiny_official_layout`` writes a directory shaped exactly like the released
``Vchitect/Vchitect-2.0-2B`` repository (SD3-style ``model_index.json``, three text encoders with
their tokenizers, the SD3 ``AutoencoderKL``, a ``FlowMatchEulerDiscreteScheduler`` and the
``VchitectXLTransformerModel`` weights), but with every model a few kilobytes large and every weight
drawn from a seeded ``torch.Generator``. Nothing is downloaded: the tokenizers are built here from
a byte-level CLIP vocabulary and a small Unigram T5 vocabulary.

The transformer state dict is produced from a key/shape table (``official_transformer_state_dict_shapes``)
that mirrors the official module tree, so the files load with ``strict=True`` into the official class
as well as into ours. The official code zero-initialises three output linears of the temporal and
text cross-attention branches; here they are random so that parity tests exercise those branches.
"""

import pathlib
import tempfile
from typing import Dict, Optional, Tuple, Union

import torch

from ..tiny_weights import random_tensor, start_layout, write_json

__all__ = [
    "TINY_TEXT_PROMPT",
    "build_tiny_vchitect_pipeline",
    "official_transformer_state_dict_shapes",
    "save_tiny_official_layout",
    "tiny_transformer_config",
    "tiny_transformer_state_dict",
]

# A prompt whose words the tiny tokenizers cover with merged pieces, for examples and tests.
TINY_TEXT_PROMPT = "a red panda rolling down a hill"

_CLIP_MAX_LENGTH = 77
_CLIP_SPECIAL_TOKENS = ("<|startoftext|>", "<|endoftext|>")
# A few BPE merges so that common words become multi-byte pieces (as with the real vocabulary).
_CLIP_MERGES = (
    ("t", "h"), ("th", "e</w>"), ("a", "n"), ("i", "n"), ("e", "r"), ("o", "n"), ("r", "e"),
    ("re", "d</w>"), ("an", "d"), ("in", "g</w>"), ("o", "w"), ("h", "i"), ("l", "l"), ("d", "ow"),
    ("l", "l</w>"), ("p", "an"),
)
# (hidden, projection, layers, heads, activation) of the CLIP-L and CLIP-G stand-ins. Their
# hidden sizes differ so that a swapped concatenation order shows; hidden_L + hidden_G <= the
# transformer's joint_attention_dim (the pipeline zero-pads) and proj_L + proj_G == pooled dim.
_CLIP_L = dict(hidden_size=8, projection_dim=8, num_hidden_layers=2, num_attention_heads=2, hidden_act="quick_gelu")
_CLIP_G = dict(hidden_size=16, projection_dim=8, num_hidden_layers=2, num_attention_heads=2, hidden_act="gelu")

_T5_MODEL_MAX_LENGTH = 512
_T5_WORDS = ("a", "red", "panda", "rolling", "down", "hill", "the", "cat", "dog", "on", "in", "of", "and")

_VAE_CONFIG = dict(
    in_channels=3,
    out_channels=3,
    down_block_types=("DownEncoderBlock2D",) * 4,
    up_block_types=("UpDecoderBlock2D",) * 4,
    block_out_channels=(8, 8, 8, 8),
    layers_per_block=1,
    act_fn="silu",
    latent_channels=16,
    norm_num_groups=4,
    sample_size=32,
    scaling_factor=1.5305,
    shift_factor=0.0609,
    use_quant_conv=False,
    use_post_quant_conv=False,
)

_SCHEDULER_CONFIG = {
    "_class_name": "FlowMatchEulerDiscreteScheduler",
    "num_train_timesteps": 1000,
    "shift": 3.0,
}

# The released repository carries Stable Diffusion 3's model_index.json (it is tagged
# StableDiffusion3Pipeline); its transformer entry names SD3's class although transformer/config.json
# names VchitectXLTransformerModel.
_MODEL_INDEX = {
    "_class_name": "StableDiffusion3Pipeline",
    "scheduler": ["diffusers", "FlowMatchEulerDiscreteScheduler"],
    "text_encoder": ["transformers", "CLIPTextModelWithProjection"],
    "text_encoder_2": ["transformers", "CLIPTextModelWithProjection"],
    "text_encoder_3": ["transformers", "T5EncoderModel"],
    "tokenizer": ["transformers", "CLIPTokenizer"],
    "tokenizer_2": ["transformers", "CLIPTokenizer"],
    "tokenizer_3": ["transformers", "T5TokenizerFast"],
    "transformer": ["diffusers", "SD3Transformer2DModel"],
    "vae": ["diffusers", "AutoencoderKL"],
}

# Separate generator streams per component, so resizing one never changes the others' weights.
_COMPONENT_SEED_OFFSETS = {"text_encoder": 1, "text_encoder_2": 2, "text_encoder_3": 3, "vae": 4, "transformer": 5}


def tiny_transformer_config() -> Dict[str, Union[int, float]]:
    """Config of the tiny ``VchitectXLTransformerModel`` (every ``__init__`` argument, as save_pretrained writes it)."""
    return {
        "sample_size": 16,
        "patch_size": 2,
        "in_channels": 16,
        "num_layers": 3,
        "attention_head_dim": 16,
        "num_attention_heads": 2,
        "joint_attention_dim": 32,
        "caption_projection_dim": 32,
        "pooled_projection_dim": 16,
        "out_channels": 16,
        "pos_embed_max_size": 16,
        "tp_size": 1,
        "rope_scaling_factor": 1.0,
    }


def official_transformer_state_dict_shapes(config: Dict[str, Union[int, float]]) -> Dict[str, Tuple[int, ...]]:
    """Key -> shape table of the official ``VchitectXLTransformerModel`` state dict, in the official key order.

    Derived from the official module tree (Vchitect-2.0 commit 299618f): diffusers ``PatchEmbed`` with a
    persistent ``pos_embed`` buffer, ``CombinedTimestepTextProjEmbeddings``, a ``context_embedder``, then
    per block AdaLN-Zero norms, the Vchitect attention (SD3 joint projections plus ``to_q_cross``,
    ``to_q_temp``/``to_k_temp``/``to_v_temp``, ``to_out_temporal``, ``to_add_out_temporal``,
    ``to_out_context``) and tanh-GELU feed-forwards; the last block is context-pre-only (continuous AdaLN
    on the text stream, no ``to_add_out``, no text feed-forward); then ``norm_out`` and ``proj_out``.

    Args:
        config (`dict`): the transformer config (see ``tiny_transformer_config``).
    """
    inner = config["num_attention_heads"] * config["attention_head_dim"]
    if config["caption_projection_dim"] != inner:
        raise ValueError(
            f"caption_projection_dim={config['caption_projection_dim']} must equal num_attention_heads * "
            f"attention_head_dim = {inner}: the text stream enters attention at the inner width"
        )
    patch, out_channels = config["patch_size"], config["out_channels"]
    grid = config["pos_embed_max_size"]
    ff_inner = 4 * inner

    def linear(prefix: str, fan_in: int, fan_out: int) -> Dict[str, Tuple[int, ...]]:
        return {f"{prefix}.weight": (fan_out, fan_in), f"{prefix}.bias": (fan_out,)}

    shapes: Dict[str, Tuple[int, ...]] = {
        "pos_embed.pos_embed": (1, grid * grid, inner),
        "pos_embed.proj.weight": (inner, config["in_channels"], patch, patch),
        "pos_embed.proj.bias": (inner,),
    }
    shapes.update(linear("time_text_embed.timestep_embedder.linear_1", 256, inner))
    shapes.update(linear("time_text_embed.timestep_embedder.linear_2", inner, inner))
    shapes.update(linear("time_text_embed.text_embedder.linear_1", config["pooled_projection_dim"], inner))
    shapes.update(linear("time_text_embed.text_embedder.linear_2", inner, inner))
    shapes.update(linear("context_embedder", config["joint_attention_dim"], config["caption_projection_dim"]))
    for index in range(config["num_layers"]):
        block = f"transformer_blocks.{index}"
        context_pre_only = index == config["num_layers"] - 1
        shapes.update(linear(f"{block}.norm1.linear", inner, 6 * inner))
        shapes.update(linear(f"{block}.norm1_context.linear", inner, (2 if context_pre_only else 6) * inner))
        attention_linears = [
            "to_q", "to_k", "to_v", "to_q_cross", "to_q_temp", "to_k_temp", "to_v_temp",
            "add_k_proj", "add_v_proj", "add_q_proj", "to_out.0", "to_out_temporal",
        ]
        if not context_pre_only:
            attention_linears.append("to_add_out")
        attention_linears += ["to_add_out_temporal", "to_out_context"]
        for name in attention_linears:
            shapes.update(linear(f"{block}.attn.{name}", inner, inner))
        shapes.update(linear(f"{block}.ff.net.0.proj", inner, ff_inner))
        shapes.update(linear(f"{block}.ff.net.2", ff_inner, inner))
        if not context_pre_only:
            shapes.update(linear(f"{block}.ff_context.net.0.proj", inner, ff_inner))
            shapes.update(linear(f"{block}.ff_context.net.2", ff_inner, inner))
    shapes.update(linear("norm_out.linear", inner, 2 * inner))
    shapes.update(linear("proj_out", inner, patch * patch * out_channels))
    return shapes


def _sincos_pos_embed(config: Dict[str, Union[int, float]]) -> torch.Tensor:
    """The ``pos_embed`` buffer exactly as diffusers' ``PatchEmbed`` computes it for this config."""
    from diffusers.models.embeddings import get_2d_sincos_pos_embed

    inner = config["num_attention_heads"] * config["attention_head_dim"]
    kwargs = dict(base_size=config["sample_size"] // config["patch_size"], interpolation_scale=1)
    try:
        table = get_2d_sincos_pos_embed(inner, config["pos_embed_max_size"], output_type="pt", **kwargs)
    except TypeError:  # diffusers < 0.32 returns numpy and has no output_type
        table = torch.from_numpy(get_2d_sincos_pos_embed(inner, config["pos_embed_max_size"], **kwargs))
    return table.float().unsqueeze(0)


def tiny_transformer_state_dict(seed: int = 0, config: Dict[str, Union[int, float]] = None) -> Dict[str, torch.Tensor]:
    """Seeded random state dict of the official ``VchitectXLTransformerModel`` layout.

    Args:
        seed (`int`, defaults to 0): seed of the ``torch.Generator`` that draws the weights.
        config (`dict`, *optional*): transformer config; defaults to ``tiny_transformer_config()``.
    """
    config = tiny_transformer_config() if config is None else config
    generator = torch.Generator().manual_seed(_component_seed(seed, "transformer"))
    state_dict = {}
    for name, shape in official_transformer_state_dict_shapes(config).items():
        if name == "pos_embed.pos_embed":
            state_dict[name] = _sincos_pos_embed(config)
        else:
            state_dict[name] = random_tensor(name, shape, generator)
    return state_dict


def _component_seed(seed: int, component: str) -> int:
    return 1000 * int(seed) + _COMPONENT_SEED_OFFSETS[component]


def _randomize_parameters(module: torch.nn.Module, seed: int, component: str) -> torch.nn.Module:
    """Overwrite every parameter in name order from a seeded generator (independent of the global RNG)."""
    generator = torch.Generator().manual_seed(_component_seed(seed, component))
    with torch.no_grad():
        for name, parameter in sorted(module.named_parameters(), key=lambda item: item[0]):
            parameter.copy_(random_tensor(name, tuple(parameter.shape), generator))
    return module.eval()


def _bytes_to_unicode() -> Dict[int, str]:
    """GPT-2/CLIP's reversible byte -> printable unicode character table."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    characters = printable[:]
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            characters.append(256 + extra)
            extra += 1
    return dict(zip(printable, (chr(c) for c in characters)))


def _write_clip_tokenizer(directory: pathlib.Path, pad_token: str, merges=_CLIP_MERGES,
                          max_length: int = _CLIP_MAX_LENGTH) -> Dict[str, int]:
    """Write vocab.json / merges.txt / tokenizer_config.json / special_tokens_map.json; return the vocab."""
    directory.mkdir(parents=True, exist_ok=True)
    byte_characters = list(_bytes_to_unicode().values())
    tokens = byte_characters + [character + "</w>" for character in byte_characters]
    tokens += list(dict.fromkeys("".join(pair) for pair in merges))
    tokens += list(_CLIP_SPECIAL_TOKENS)
    vocab = {token: index for index, token in enumerate(tokens)}
    write_json(directory / "vocab.json", vocab)
    (directory / "merges.txt").write_text("#version: 0.2\n" + "".join(f"{left} {right}\n" for left, right in merges),
                                          encoding="utf-8")
    special = {"bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>", "pad_token": pad_token}
    write_json(directory / "special_tokens_map.json", special)
    write_json(
        directory / "tokenizer_config.json",
        {**special, "tokenizer_class": "CLIPTokenizer", "model_max_length": max_length, "do_lower_case": True,
         "errors": "replace", "add_prefix_space": False, "clean_up_tokenization_spaces": True},
    )
    return vocab


def _t5_unigram_vocab(words=_T5_WORDS):
    """Unigram pieces: the three T5 specials, the metaspace, single characters and a few whole words."""
    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("\u2581", -2.0)]
    pieces += [(f"\u2581{word}", -1.0 - 0.01 * index) for index, word in enumerate(words)]
    characters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,!?'\"-:;()"
    pieces += [(character, -5.0 - 0.01 * index) for index, character in enumerate(characters)]
    return pieces


def _write_t5_tokenizer(directory: pathlib.Path, words=_T5_WORDS, max_length: int = _T5_MODEL_MAX_LENGTH) -> int:
    """Write tokenizer.json / tokenizer_config.json / special_tokens_map.json; return the vocabulary size."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    directory.mkdir(parents=True, exist_ok=True)
    pieces = _t5_unigram_vocab(words)
    tokenizer = Tokenizer(models.Unigram(pieces, unk_id=2, byte_fallback=False))
    tokenizer.normalizer = normalizers.Sequence([normalizers.Strip(), normalizers.Replace("  ", " ")])
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always", split=True)
    tokenizer.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="always", split=True)
    tokenizer.post_processor = processors.TemplateProcessing(
        single="$A </s>", pair="$A </s> $B </s>", special_tokens=[("</s>", 1)]
    )
    tokenizer.save(str(directory / "tokenizer.json"))
    special = {"eos_token": "</s>", "pad_token": "<pad>", "unk_token": "<unk>"}
    write_json(directory / "special_tokens_map.json", special)
    write_json(
        directory / "tokenizer_config.json",
        {**special, "tokenizer_class": "T5Tokenizer", "model_max_length": max_length, "extra_ids": 0,
         "additional_special_tokens": [], "clean_up_tokenization_spaces": True},
    )
    return len(pieces)


def _save_clip_text_encoder(directory: pathlib.Path, sizes: dict, vocab: Dict[str, int], pad_token: str, seed: int, component: str) -> None:
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection

    config = CLIPTextConfig(
        vocab_size=len(vocab),
        intermediate_size=2 * sizes["hidden_size"],
        max_position_embeddings=_CLIP_MAX_LENGTH,
        bos_token_id=vocab["<|startoftext|>"],
        eos_token_id=vocab["<|endoftext|>"],
        pad_token_id=vocab[pad_token],
        attention_dropout=0.0,
        dropout=0.0,
        **sizes,
    )
    model = _randomize_parameters(CLIPTextModelWithProjection(config), seed, component)
    model.save_pretrained(directory, safe_serialization=True)


def _save_t5_text_encoder(directory: pathlib.Path, vocab_size: int, d_model: int, seed: int) -> None:
    from transformers import T5Config, T5EncoderModel

    config = T5Config(
        vocab_size=vocab_size,
        d_model=d_model,
        d_kv=8,
        d_ff=64,
        num_layers=2,
        num_heads=4,
        relative_attention_num_buckets=8,
        relative_attention_max_distance=16,
        dropout_rate=0.0,
        feed_forward_proj="gated-gelu",
        is_encoder_decoder=False,
        use_cache=False,
        pad_token_id=0,
        eos_token_id=1,
        decoder_start_token_id=0,
    )
    model = _randomize_parameters(T5EncoderModel(config), seed, "text_encoder_3")
    model.save_pretrained(directory, safe_serialization=True)


def _save_vae(directory: pathlib.Path, seed: int, config: dict = _VAE_CONFIG) -> None:
    from diffusers import AutoencoderKL

    vae = _randomize_parameters(AutoencoderKL(**config), seed, "vae")
    vae.save_pretrained(directory, safe_serialization=True)


def _save_transformer(directory: pathlib.Path, seed: int) -> None:
    import diffusers
    from safetensors.torch import save_file

    directory.mkdir(parents=True, exist_ok=True)
    config = tiny_transformer_config()
    write_json(
        directory / "config.json",
        {"_class_name": "VchitectXLTransformerModel", "_diffusers_version": diffusers.__version__, **config},
    )
    state_dict = tiny_transformer_state_dict(seed, config)
    save_file(state_dict, str(directory / "diffusion_pytorch_model.safetensors"), metadata={"format": "pt"})


def save_tiny_official_layout(path: Union[str, pathlib.Path], seed: int = 0) -> pathlib.Path:
    """Write the tiny Vchitect-2.0 family in the released ``Vchitect/Vchitect-2.0-2B`` directory layout.

    Every weight is drawn from generators seeded by ``seed``, in fp32; the directory is about 1 MB.

    Args:
        path (`str` or `pathlib.Path`): directory to create (it may exist; files in it are overwritten).
        seed (`int`, defaults to 0): seed of the weights.

    Returns:
        `pathlib.Path`: ``path``.
    """
    import diffusers

    root = start_layout(path, seed, diffusers.__version__, {"model_index.json": _MODEL_INDEX,
                                                            "scheduler/scheduler_config.json": _SCHEDULER_CONFIG})

    transformer_config = tiny_transformer_config()
    clip_l_vocab = _write_clip_tokenizer(root / "tokenizer", pad_token="<|endoftext|>")
    # CLIP-G pads with "!" as in the released SD3 tokenizer_2.
    clip_g_vocab = _write_clip_tokenizer(root / "tokenizer_2", pad_token="!")
    t5_vocab_size = _write_t5_tokenizer(root / "tokenizer_3")

    if _CLIP_L["hidden_size"] + _CLIP_G["hidden_size"] > transformer_config["joint_attention_dim"]:
        raise AssertionError("CLIP hidden sizes exceed joint_attention_dim")
    if _CLIP_L["projection_dim"] + _CLIP_G["projection_dim"] != transformer_config["pooled_projection_dim"]:
        raise AssertionError("CLIP projections do not add up to pooled_projection_dim")
    _save_clip_text_encoder(root / "text_encoder", _CLIP_L, clip_l_vocab, "<|endoftext|>", seed, "text_encoder")
    _save_clip_text_encoder(root / "text_encoder_2", _CLIP_G, clip_g_vocab, "!", seed, "text_encoder_2")
    _save_t5_text_encoder(root / "text_encoder_3", t5_vocab_size, transformer_config["joint_attention_dim"], seed)
    _save_vae(root / "vae", seed)
    _save_transformer(root / "transformer", seed)
    return root


def build_tiny_vchitect_pipeline(seed: Optional[int] = None, device: Union[str, torch.device] = "cpu",
                                  weights: str = "trained"):
    """A tiny ``VchitectRepVideoPipeline``, with no download.

    ``weights="trained"`` (the default): the embedded model trained on the shapes world
    (:func:`load_embedded_vchitect_pipeline`: 48x48, 8 frames; it draws one object in the prompt's colour on the
    prompt's background, moving the prompt's way; not the named shape). ``weights="random"``: random weights from
    ``seed`` in the tiny official layout (``save_tiny_official_layout``), loaded with
    ``VchitectRepVideoPipeline.from_pretrained`` like the released weights; its outputs are noise, for tests of
    wiring, shapes and exact layouts.

    Args:
        seed (`int`, *optional*): seed of the random weights (default 0); refused with ``weights="trained"``.
        device (`str` or `torch.device`, defaults to ``"cpu"``): device the pipeline is moved to.
        weights (`str`, defaults to ``"trained"``): ``"trained"`` or ``"random"``.
    """
    from ..tiny_weights import build_tiny
    from .embedded import load_embedded_vchitect_pipeline

    return build_tiny(weights, seed, device, _build_random, load_embedded_vchitect_pipeline)


def _build_random(seed: int, device):
    from .pipeline import VchitectRepVideoPipeline

    with tempfile.TemporaryDirectory(prefix="vdp_tiny_vchitect_") as directory:
        save_tiny_official_layout(directory, seed=seed)
        pipeline = VchitectRepVideoPipeline.from_pretrained(directory)
    return pipeline.to(device)
