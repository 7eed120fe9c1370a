"""The embedded Vchitect-2.0 model: a small ``VchitectRepVideoPipeline`` trained on the shapes world, shipped inside
the package (``embedded_models/vchitect``), the default of ``vdp generate`` and the tiny ComfyUI loader.

``save_embedded_start`` writes the folder the training starts from: the tiny layout's CLIP-L / CLIP-G / T5 stand-ins
(random, frozen; the T5 vocabulary holds the shapes grammar's words as whole pieces), a 4x-downsampling
``AutoencoderKL`` (trained first as an autoencoder on the world's frames, then frozen) and a freshly initialised
transformer with RepVideo's aggregation on. ``load_embedded_vchitect_pipeline`` loads the trained folder.
``patch_one_start`` copies a folder with its transformer converted to one token a latent pixel (a start for
training at patch 1; see the model card's "What was tried").
"""

import pathlib
from typing import Union

import torch

__all__ = ["EMBEDDED_TRANSFORMER_CONFIG", "EMBEDDED_VAE_CONFIG", "EMBEDDED_WORDS", "embedded_folder", "export_embedded",
           "load_embedded_vchitect_pipeline", "patch_one_start", "save_embedded_start"]

# every word of the shapes grammar, as whole T5 pieces (the rest of the vocabulary is single characters)
EMBEDDED_WORDS = (
    "a", "an", "the", "on", "and", "of", "background", "moving", "growing", "shrinking", "rotating",
    "left", "right", "up", "down", "above", "below", "to",
    "circle", "square", "triangle", "star",
    "red", "orange", "yellow", "green", "blue", "purple", "white", "black",
    "panda", "rolling", "hill", "cat", "dog", "in",
)

# the blocks of the embedded models' image VAEs (diffusers' AutoencoderKL): three, so 4x spatial compression
SMALL_VAE_BLOCKS = dict(
    in_channels=3,
    out_channels=3,
    down_block_types=("DownEncoderBlock2D",) * 3,
    up_block_types=("UpDecoderBlock2D",) * 3,
    block_out_channels=(16, 16, 32),
    layers_per_block=1,
    act_fn="silu",
    norm_num_groups=8,
)

# SD3's VAE family at 4x spatial compression (three blocks): 48x48 frames -> 12x12x16 latents
EMBEDDED_VAE_CONFIG = dict(
    SMALL_VAE_BLOCKS,
    latent_channels=16,
    sample_size=48,
    scaling_factor=1.0,
    shift_factor=0.0,
    use_quant_conv=False,
    use_post_quant_conv=False,
    mid_block_add_attention=False,
)

EMBEDDED_TRANSFORMER_CONFIG = {
    "sample_size": 12,
    "patch_size": 2,
    "in_channels": 16,
    "num_layers": 4,
    "attention_head_dim": 16,
    "num_attention_heads": 4,
    "joint_attention_dim": 32,
    "caption_projection_dim": 64,
    "pooled_projection_dim": 16,
    "out_channels": 16,
    "pos_embed_max_size": 16,
    "tp_size": 1,
    "rope_scaling_factor": 1.0,
    "repvideo_aggregation": True,
    "repvideo_window_size": 2,
}


# tokens of each text encoder (CLIP-L, CLIP-G and T5 alike): a one-object caption takes at most 16
EMBEDDED_TEXT_TOKENS = 24


def _word_merges(words):
    """BPE merges that join each word's characters left to right (``w o`` -> ``wo``, ``wo r`` -> ``wor``, ...)."""
    merges = []
    for word in sorted(words, key=len, reverse=True):
        pieces = list(word[:-1]) + [word[-1] + "</w>"]
        current = pieces[0]
        for piece in pieces[1:]:
            merges.append((current, piece))
            current += piece
    return list(dict.fromkeys(merges))


def embedded_folder(name: str = "vchitect") -> pathlib.Path:
    """The shipped folder of an embedded model (``embedded_models/<name>`` in the package)."""
    return pathlib.Path(__file__).resolve().parents[2] / "embedded_models" / name


def save_embedded_start(path: Union[str, pathlib.Path], seed: int = 0, vae=None,
                        transformer_config: dict = None) -> pathlib.Path:
    """Writes the pipeline folder the embedded model's training starts from (see the module docstring).

    Args:
        path: folder to create.
        seed: seed of the random text encoders and of the transformer's initialisation.
        vae: a trained ``AutoencoderKL`` to use (default: a random one of ``EMBEDDED_VAE_CONFIG``).
        transformer_config: overrides of ``EMBEDDED_TRANSFORMER_CONFIG``.
    """
    import diffusers

    from ...models.vchitect_transformer import VchitectXLTransformer3DModel
    from . import tiny

    root = tiny.start_layout(path, seed, diffusers.__version__,
                             {"model_index.json": tiny._MODEL_INDEX,
                              "scheduler/scheduler_config.json": tiny._SCHEDULER_CONFIG})
    config = {**EMBEDDED_TRANSFORMER_CONFIG, **(transformer_config or {})}
    merges = _word_merges(EMBEDDED_WORDS)
    clip_l_vocab = tiny._write_clip_tokenizer(root / "tokenizer", "<|endoftext|>", merges, EMBEDDED_TEXT_TOKENS)
    clip_g_vocab = tiny._write_clip_tokenizer(root / "tokenizer_2", "!", merges, EMBEDDED_TEXT_TOKENS)
    t5_vocab_size = tiny._write_t5_tokenizer(root / "tokenizer_3", EMBEDDED_WORDS, EMBEDDED_TEXT_TOKENS)
    tiny._save_clip_text_encoder(root / "text_encoder", tiny._CLIP_L, clip_l_vocab, "<|endoftext|>", seed,
                                 "text_encoder")
    tiny._save_clip_text_encoder(root / "text_encoder_2", tiny._CLIP_G, clip_g_vocab, "!", seed, "text_encoder_2")
    tiny._save_t5_text_encoder(root / "text_encoder_3", t5_vocab_size, config["joint_attention_dim"], seed)
    if vae is None:
        tiny._save_vae(root / "vae", seed, EMBEDDED_VAE_CONFIG)
    else:
        vae.save_pretrained(root / "vae", safe_serialization=True)
    torch.manual_seed(seed)
    transformer = VchitectXLTransformer3DModel(**config)
    transformer.save_pretrained(root / "transformer", safe_serialization=True)
    return root


def load_embedded_vchitect_pipeline(device: Union[str, torch.device] = "cpu", dtype: torch.dtype = torch.float32):
    """The trained embedded model (fp16 files, loaded in ``dtype``), from the package's ``embedded_models``."""
    from ..tiny_weights import load_embedded
    from .pipeline import VchitectRepVideoPipeline

    return load_embedded(VchitectRepVideoPipeline, embedded_folder("vchitect"), "Vchitect-2.0", device, dtype)


def export_embedded(run_folder: Union[str, pathlib.Path], destination: Union[str, pathlib.Path],
                    dtype: torch.dtype = torch.float16) -> pathlib.Path:
    """Writes the pipeline folder ``vdp train`` exported into ``run_folder`` to ``destination`` with its weights in
    ``dtype`` (the shipped files; :func:`load_embedded_vchitect_pipeline` loads them back in float32)."""
    from ..tiny_weights import save_embedded
    from .pipeline import VchitectRepVideoPipeline

    return save_embedded(VchitectRepVideoPipeline.from_pretrained(str(run_folder)), destination, dtype)


def _float32_transformer(folder: pathlib.Path):
    """The transformer of the pipeline folder ``folder``, in float32 (the shipped files are float16)."""
    from ...models.vchitect_transformer import VchitectXLTransformer3DModel

    return VchitectXLTransformer3DModel.from_pretrained(folder / "transformer", dtype=torch.float32)


def _copy_with_transformer(source: pathlib.Path, destination: Union[str, pathlib.Path], transformer,
                           state) -> pathlib.Path:
    """Writes a copy of the pipeline folder ``source`` whose transformer is ``transformer`` holding exactly ``state``;
    every other part is copied as it is."""
    import shutil

    destination = pathlib.Path(destination)
    transformer.load_state_dict(state, strict=True)
    shutil.copytree(source, destination,
                    ignore=lambda folder, names: {"transformer"} if pathlib.Path(folder) == source else set())
    transformer.save_pretrained(destination / "transformer", safe_serialization=True)
    return destination


def patch_one_start(source: Union[str, pathlib.Path], destination: Union[str, pathlib.Path]) -> pathlib.Path:
    """Writes a copy of the pipeline folder ``source`` whose transformer reads each latent pixel as a token
    (``patch_size: 1``), started from ``source``'s transformer of a larger patch: the start of the embedded model's
    last stage (its model card), where a shape's outline is drawn inside a token instead of across a few.

    Every weight is kept but three, chosen so that a video whose latent is constant within each old patch embeds
    and reads out as before:

    - the patch embedding's kernel summed over its positions (a token of one pixel embeds as a token of ``p x p``
      equal pixels did);
    - the output projection averaged over the ``p x p`` positions it wrote;
    - the positional table: the sine-cosine table of the larger patch taken at each latent pixel's centre, in the
      old token units (the table travels in the weights, as in SD3, so the copy keeps it).

    Attention then sees ``p x p`` times as many video tokens beside the same text tokens, so the copy is a start to
    train from, not an equal model.
    """
    from diffusers.models.embeddings import get_2d_sincos_pos_embed_from_grid

    from ...models.vchitect_transformer import VchitectXLTransformer3DModel

    source = pathlib.Path(source)
    old = _float32_transformer(source)
    patch, size, table = old.config.patch_size, old.config.sample_size, old.config.pos_embed_max_size
    if patch == 1:
        raise ValueError(f"{source}: its transformer already has patch_size=1")
    if table is None or table < size:
        raise ValueError(f"{source}: pos_embed_max_size={table} must be at least sample_size={size} (one table row "
                         "a latent pixel)")
    state = old.state_dict()
    channels = old.config.out_channels
    state["pos_embed.proj.weight"] = state["pos_embed.proj.weight"].sum(dim=(2, 3), keepdim=True)
    state["proj_out.weight"] = state["proj_out.weight"].reshape(patch * patch, channels, -1).mean(dim=0)
    state["proj_out.bias"] = state["proj_out.bias"].reshape(patch * patch, channels).mean(dim=0)
    # the old table: token j at row top + j, position (top + j) * spacing; pixel y lies at token (y + 0.5) / p - 0.5
    tokens = size // patch
    spacing, old_top, new_top = tokens / table, (table - tokens) // 2, (table - size) // 2
    rows = torch.arange(table, dtype=torch.float32) - new_top
    positions = (old_top + (rows + 0.5) / patch - 0.5) * spacing
    grid = torch.stack(torch.meshgrid(positions, positions, indexing="xy")).reshape(2, 1, table, table)
    state["pos_embed.pos_embed"] = get_2d_sincos_pos_embed_from_grid(old.inner_dim, grid)[None].float()
    new = VchitectXLTransformer3DModel.from_config({**old.config, "patch_size": 1})
    return _copy_with_transformer(source, destination, new, state)


def widen_start(source: Union[str, pathlib.Path], destination: Union[str, pathlib.Path], seed: int = 0,
                split_noise: float = 0.2) -> pathlib.Path:
    """Writes a copy of the pipeline folder ``source`` whose transformer has twice the heads (twice the width, the
    same head size), computing exactly what ``source``'s transformer computes (net2net widening).

    Every activation of the model width (the residual streams, each head, each chunk of an AdaLN modulation, the
    feed-forward hidden layer) is held twice, ``[x, x]``: a layer norm over ``[x, x]`` is ``[LN(x), LN(x)]``, each
    attention head is repeated and the output rows of every layer are repeated chunk by chunk. A layer that reads a
    repeated activation takes half of each old weight from each copy, ``W/2 + N`` and ``W/2 - N``: ``N`` is Gaussian
    noise of ``split_noise`` times the weight's standard deviation (seeded), which leaves the output unchanged while
    the copies are equal and lets training tell them apart. A start to train a wider model from, not a new model.
    """
    from ...models.vchitect_transformer import VchitectXLTransformer3DModel

    source = pathlib.Path(source)
    old = _float32_transformer(source)
    width = old.inner_dim
    heads = old.config.num_attention_heads
    new = VchitectXLTransformer3DModel.from_config(
        {**old.config, "num_attention_heads": 2 * heads, "caption_projection_dim": 2 * width})
    generator = torch.Generator().manual_seed(seed)

    def repeat(tensor, dim):
        # each chunk of ``width`` along ``dim`` held twice in a row: [c1, c1, c2, c2, ...]
        chunks = tensor.unflatten(dim, (tensor.shape[dim] // width, 1, width))
        return chunks.repeat_interleave(2, dim=dim + 1).flatten(dim, dim + 2)

    def split(weight):
        # a layer reading [x, x]: W/2 + N from the first copy of each chunk, W/2 - N from the second
        noise = torch.randn(weight.shape, generator=generator) * split_noise * weight.std()
        halves = torch.stack([weight / 2 + noise, weight / 2 - noise], dim=-1)  # [..., in, 2]
        columns = halves.unflatten(1, (weight.shape[1] // width, width)).transpose(-1, -2)
        return columns.flatten(1, 3)

    state = {}
    targets = new.state_dict()
    for name, tensor in old.state_dict().items():
        target = targets[name].shape
        if name in ("pos_embed.pos_embed", "frame_pos_embed"):
            tensor = repeat(tensor, tensor.ndim - 1)
        elif tensor.shape != target:
            if target[0] != tensor.shape[0]:
                tensor = repeat(tensor, 0)
            if tensor.ndim == 2 and target[1] != tensor.shape[1]:
                tensor = split(tensor)
        if tensor.shape != target:
            raise RuntimeError(f"{name}: widened to {tuple(tensor.shape)}, the wider model holds {tuple(target)}")
        state[name] = tensor.contiguous()
    return _copy_with_transformer(source, destination, new, state)
