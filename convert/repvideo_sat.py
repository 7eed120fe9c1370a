"""Converts the released RepVideo SwissArmyTransformer (SAT) checkpoint into a diffusers folder of the pack.

The release (`Vchitect/RepVideo`) is a SAT save folder: a `latest` file holding the iteration (or "release") and
`<iteration>/mp_rank_00_model_states.pt`, a torch pickle whose `module` entry is the state dict of the whole
diffusion engine. Its DiT keys start with `model.diffusion_model.`; text encoder (`conditioner.`) and VAE
(`first_stage_model.`) keys, when present, are skipped: those come from `THUDM/CogVideoX-2b`.

SAT -> diffusers (`CogVideoXRepVideoTransformer3DModel`) key mapping, per block i:

    transformer.layers.i.input_layernorm             -> transformer_blocks.i.norm1.norm
    transformer.layers.i.post_attention_layernorm    -> transformer_blocks.i.norm2.norm
    transformer.layers.i.attention.query_key_value   -> transformer_blocks.i.attn1.to_q / to_k / to_v (thirds)
    transformer.layers.i.attention.dense             -> transformer_blocks.i.attn1.to_out.0
    transformer.layers.i.mlp.dense_h_to_4h / 4h_to_h -> transformer_blocks.i.ff.net.0.proj / ff.net.2
    mixins.adaln_layer.adaLN_modulations.i.1         -> transformer_blocks.i.norm1.linear (video chunks 0-2, text 6-8)
                                                        transformer_blocks.i.norm2.linear (video chunks 3-5, text 9-11)
    mixins.adaln_layer.query/key_layernorm_list.i    -> transformer_blocks.i.attn1.norm_q / norm_k

and once: `transformer.final_layernorm` -> `norm_final`, `transformer.learnable_gating` ->
`repvideo.learnable_gating`, `time_embed.0/2` -> `time_embedding.linear_1/2`, `mixins.patch_embed.*` ->
`patch_embed.*`, `mixins.final_layer.norm_final/linear/adaLN_modulation.1` -> `norm_out.norm/proj_out/norm_out.linear`.
`mixins.pos_embed.pos_embedding` is the fixed 3D sin-cos table, which diffusers computes: it is checked against the
computed table and not stored.
"""

import json
import os
import pickle
import shutil
import tempfile
import zipfile
from typing import Dict, List, Optional, Tuple, Union

import torch
from accelerate import init_empty_weights

from ..models.checkpoint import key_table_problems, listed_keys
from ..models.cogvideox_repvideo import RELEASED_CONFIG, CogVideoXRepVideoTransformer3DModel

__all__ = [
    "SAT_DIT_PREFIX",
    "SatCheckpointError",
    "convert_repvideo_sat_checkpoint",
    "read_sat_checkpoint",
    "sat_to_diffusers_state_dict",
]

SAT_DIT_PREFIX = "model.diffusion_model."
# engine parts the DiT conversion skips: the T5 text encoder and the 3D VAE (taken from THUDM/CogVideoX-2b)
SKIPPED_PREFIXES = ("conditioner.", "first_stage_model.")
SAT_MODEL_STATES = "mp_rank_00_model_states.pt"
# the sampler of the official inference (VPSDEDPMPP2MSampler, ZeroSNRDDPMDiscretization(shift_scale=3.0)) in diffusers
SCHEDULER_CONFIG = {
    "_class_name": "CogVideoXDPMScheduler",
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "beta_start": 0.00085,
    "clip_sample": False,
    "clip_sample_range": 1.0,
    "num_train_timesteps": 1000,
    "prediction_type": "v_prediction",
    "rescale_betas_zero_snr": True,
    "sample_max_value": 1.0,
    "set_alpha_to_one": True,
    "snr_shift_scale": 3.0,
    "steps_offset": 0,
    "timestep_spacing": "trailing",
    "trained_betas": None,
}
PIPELINE_CLASS = "CogVideoXRepVideoPipeline"
# components of a CogVideoX-2b diffusers folder the pipeline folder takes as they are
COPIED_COMPONENTS = ("text_encoder", "tokenizer", "vae")
COMPONENT_CLASSES = {
    "text_encoder": ["transformers", "T5EncoderModel"],
    "tokenizer": ["transformers", "T5Tokenizer"],
    "vae": ["diffusers", "AutoencoderKLCogVideoX"],
}
_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
# largest |difference| allowed between the checkpoint's sin-cos table and diffusers' (float64 vs float32 maths)
_POS_EMBED_TOLERANCE = 1e-4

_RENAMES = (
    ("transformer.final_layernorm.", "norm_final."),
    ("time_embed.0.", "time_embedding.linear_1."),
    ("time_embed.2.", "time_embedding.linear_2."),
    ("mixins.patch_embed.proj.", "patch_embed.proj."),
    ("mixins.patch_embed.text_proj.", "patch_embed.text_proj."),
    ("mixins.final_layer.norm_final.", "norm_out.norm."),
    ("mixins.final_layer.linear.", "proj_out."),
    ("mixins.final_layer.adaLN_modulation.1.", "norm_out.linear."),
)
_LAYER_RENAMES = (
    ("input_layernorm.", "norm1.norm."),
    ("post_attention_layernorm.", "norm2.norm."),
    ("attention.dense.", "attn1.to_out.0."),
    ("mlp.dense_h_to_4h.", "ff.net.0.proj."),
    ("mlp.dense_4h_to_h.", "ff.net.2."),
)
_POS_EMBED_KEY = "mixins.pos_embed.pos_embedding"
_GATES_KEY = "transformer.learnable_gating"


class SatCheckpointError(ValueError):
    """The SAT checkpoint folder, file or key set is not what the converter can convert (the message says why)."""


def _checkpoint_file(sat_dir: str) -> Tuple[str, str]:
    """(path of the model-states file, iteration tag) of a SAT save folder, following its `latest` file."""
    if not os.path.isdir(sat_dir):
        raise SatCheckpointError(f"sat_dir={sat_dir!r} is not a folder; give the SAT save folder holding `latest`")
    tracker = os.path.join(sat_dir, "latest")
    if not os.path.isfile(tracker):
        raise SatCheckpointError(
            f"no `latest` file in sat_dir={sat_dir!r}: a SAT save folder holds `latest` (the iteration) and "
            f"<iteration>/{SAT_MODEL_STATES}"
        )
    try:
        with open(tracker, encoding="utf-8") as f:
            tag = f.read().strip()
    except UnicodeDecodeError:
        raise SatCheckpointError(f"{tracker} is not a text file; it must hold a positive iteration number or "
                                 f"'release'") from None
    if tag != "release" and not (tag.isdigit() and int(tag) > 0):
        raise SatCheckpointError(f"{tracker} holds {tag!r}; it must be a positive iteration number or 'release'")
    tag = tag if tag == "release" else str(int(tag))
    path = os.path.join(sat_dir, tag, SAT_MODEL_STATES)
    if not os.path.isfile(path):
        raise SatCheckpointError(f"{tracker} names iteration {tag!r}, but {path} does not exist")
    return path, tag


def read_sat_checkpoint(sat_dir: str, allow_pickle: bool = False) -> Tuple[Dict[str, torch.Tensor], str]:
    """The engine state dict (`module` entry) of a SAT save folder, and the file it came from.

    Args:
        sat_dir (`str`): folder with `latest` and `<iteration>/mp_rank_00_model_states.pt`.
        allow_pickle (`bool`, defaults to False): load with `weights_only=False`. Only for a trusted file whose
            extra entries (e.g. DeepSpeed's random-generator states) the safe loader refuses.
    """
    path, _ = _checkpoint_file(sat_dir)
    if not zipfile.is_zipfile(path):
        raise SatCheckpointError(f"{path} is not a torch checkpoint (not a torch.save zip archive)")
    try:
        saved = torch.load(path, map_location="cpu", mmap=True, weights_only=not allow_pickle)
    except pickle.UnpicklingError as error:
        raise SatCheckpointError(
            f"{path} holds objects other than tensors that the safe loader refuses ({str(error).splitlines()[0]}); "
            f"if you trust the file, convert with allow_pickle=True (`--allow-pickle`)"
        ) from None
    except (RuntimeError, EOFError, OSError) as error:
        raise SatCheckpointError(f"{path} cannot be read as a torch checkpoint: {error}") from None
    if not isinstance(saved, dict) or not isinstance(saved.get("module"), dict):
        found = sorted(saved) if isinstance(saved, dict) else type(saved).__name__
        raise SatCheckpointError(
            f"{path} has no `module` state dict (SAT saves {{'module': state_dict}}); found {found}"
        )
    return saved["module"], path


def _map_dit_key(key: str) -> Optional[List[str]]:
    """Diffusers names of a SAT DiT key (prefix removed); None for a key the mapping does not know."""
    if key == _GATES_KEY:
        return ["repvideo.learnable_gating"]
    for old, new in _RENAMES:
        if key.startswith(old):
            return [new + key[len(old):]]
    parts = key.split(".")
    if key.startswith("transformer.layers.") and len(parts) >= 5 and parts[2].isdigit():
        layer, rest = parts[2], ".".join(parts[3:])
        if rest.startswith("attention.query_key_value."):
            suffix = parts[-1]
            return [f"transformer_blocks.{layer}.attn1.{name}.{suffix}" for name in ("to_q", "to_k", "to_v")]
        for old, new in _LAYER_RENAMES:
            if rest.startswith(old):
                return [f"transformer_blocks.{layer}.{new}{rest[len(old):]}"]
    if key.startswith("mixins.adaln_layer.adaLN_modulations.") and len(parts) == 6 and parts[4] == "1":
        layer = parts[3]
        return [f"transformer_blocks.{layer}.{norm}.linear.{parts[5]}" for norm in ("norm1", "norm2")]
    for sat_name, name in (("query_layernorm_list", "norm_q"), ("key_layernorm_list", "norm_k")):
        if key.startswith(f"mixins.adaln_layer.{sat_name}.") and len(parts) == 5:
            return [f"transformer_blocks.{parts[3]}.attn1.{name}.{parts[4]}"]
    return None


def _split_values(key: str, value: torch.Tensor) -> List[torch.Tensor]:
    if ".query_key_value." in key:
        if value.shape[0] % 3:
            raise SatCheckpointError(
                f"{key} has shape {tuple(value.shape)}; its first dimension must split in 3 (q, k, v)"
            )
        return list(value.chunk(3, dim=0))
    if ".adaLN_modulations." in key:
        if value.shape[0] % 12:
            raise SatCheckpointError(f"{key} has shape {tuple(value.shape)}; its first dimension must split in 12")
        chunks = value.chunk(12, dim=0)
        # SAT order: video shift/scale/gate msa, video shift/scale/gate mlp, then the same six for the text
        return [torch.cat(chunks[0:3] + chunks[6:9]), torch.cat(chunks[3:6] + chunks[9:12])]
    return [value]


def sat_to_diffusers_state_dict(
    sat_state: Dict[str, torch.Tensor], source: str = "the SAT state dict"
) -> Tuple[Dict[str, torch.Tensor], Optional[torch.Tensor], List[str]]:
    """Renames a SAT engine (or bare DiT) state dict to the keys of `CogVideoXRepVideoTransformer3DModel`.

    Returns:
        (diffusers state dict, the SAT sin-cos position table or None, sorted skipped encoder/VAE keys).

    Raises:
        SatCheckpointError: listing every key the mapping does not know.
    """
    has_prefix = any(key.startswith(SAT_DIT_PREFIX) for key in sat_state)
    state: Dict[str, torch.Tensor] = {}
    skipped, unknown = [], []
    pos_embedding = None
    for full_key, value in sat_state.items():
        if full_key.startswith(SKIPPED_PREFIXES):
            skipped.append(full_key)
            continue
        if has_prefix and not full_key.startswith(SAT_DIT_PREFIX):
            unknown.append(full_key)
            continue
        key = full_key[len(SAT_DIT_PREFIX):] if has_prefix else full_key
        if key == _POS_EMBED_KEY:
            pos_embedding = value
            continue
        names = _map_dit_key(key)
        if names is None or not isinstance(value, torch.Tensor):
            unknown.append(full_key)
            continue
        for name, part in zip(names, _split_values(full_key, value)):
            state[name] = part
    if unknown:
        raise SatCheckpointError(
            f"{source} has keys the RepVideo (CogVideoX-2B SAT) mapping does not know ({len(unknown)}): "
            f"{listed_keys(unknown)}"
        )
    return state, pos_embedding, sorted(skipped)


def _check_against_model(
    state: Dict[str, torch.Tensor], pos_embedding: Optional[torch.Tensor], config: dict, source: str
) -> None:
    """Raises SatCheckpointError naming missing, unexpected and mis-shaped keys, or a differing position table."""
    with init_empty_weights():
        model = CogVideoXRepVideoTransformer3DModel.from_config(config)
    problems = key_table_problems(
        {key: value.shape for key, value in model.state_dict().items()},
        {key: value.shape for key, value in state.items()},
    )
    if pos_embedding is None:
        problems.append(f"missing key {SAT_DIT_PREFIX}{_POS_EMBED_KEY} (the 3D sin-cos position table)")
    else:
        table = model.patch_embed.pos_embedding
        if tuple(pos_embedding.shape) != tuple(table.shape):
            problems.append(
                f"{SAT_DIT_PREFIX}{_POS_EMBED_KEY} has shape {tuple(pos_embedding.shape)}; the config's sample size "
                f"gives {tuple(table.shape)} (max_text_seq_length + latent patches, hidden size)"
            )
        else:
            difference = (pos_embedding.float() - table.float()).abs().max().item()
            if difference > _POS_EMBED_TOLERANCE:
                problems.append(
                    f"{SAT_DIT_PREFIX}{_POS_EMBED_KEY} differs from the 3D sin-cos table of the config by up to "
                    f"{difference:.3g} (> {_POS_EMBED_TOLERANCE}): the checkpoint's positions are not CogVideoX-2B's"
                )
    if problems:
        raise SatCheckpointError(
            f"{source} does not match CogVideoXRepVideoTransformer3DModel with config "
            f"{ {k: config[k] for k in ('num_layers', 'num_attention_heads', 'attention_head_dim')} }: "
            + "; ".join(problems)
        )


def _check_finite(sat_state: Dict[str, torch.Tensor], source: str) -> None:
    """Raises SatCheckpointError naming `source` and its first NaN or infinite DiT tensor (encoder/VAE keys aside)."""
    bad = [
        key for key, value in sat_state.items()
        if not key.startswith(SKIPPED_PREFIXES) and torch.is_tensor(value) and value.is_floating_point()
        and not torch.isfinite(value).all()
    ]
    if bad:
        raise SatCheckpointError(
            f"{source} holds non-finite weights (NaN or infinity): first {bad[0]!r}, {len(bad)} tensor(s) in all; "
            "the checkpoint is damaged and nothing was written"
        )


def _transformer_config(cogvideox_dir: Optional[str], transformer_config: Optional[dict]) -> dict:
    if transformer_config is not None:
        if not isinstance(transformer_config, dict):
            raise TypeError(f"transformer_config={type(transformer_config).__name__} must be a dict")
        config = dict(transformer_config)
    elif cogvideox_dir is not None and os.path.isfile(os.path.join(cogvideox_dir, "transformer", "config.json")):
        config_file = os.path.join(cogvideox_dir, "transformer", "config.json")
        try:
            with open(config_file, encoding="utf-8") as f:
                config = json.load(f)
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise SatCheckpointError(f"{config_file} is not valid JSON ({error})") from None
        if not isinstance(config, dict):
            raise SatCheckpointError(f"{config_file} holds a JSON {type(config).__name__}; expected an object (the "
                                     f"transformer's config)")
    else:
        config = dict(RELEASED_CONFIG)
    config = {key: value for key, value in config.items() if not key.startswith("_")}
    config.update(repvideo_aggregation=True, repvideo_window_size=config.get("repvideo_window_size", 6))
    return config


def _check_cogvideox_dir(cogvideox_dir: str) -> None:
    """Raises SatCheckpointError when the CogVideoX-2b folder lacks a component the pipeline folder copies."""
    if not os.path.isdir(cogvideox_dir):
        raise SatCheckpointError(f"cogvideox_dir={cogvideox_dir!r} is not a folder")
    absent = [name for name in COPIED_COMPONENTS if not os.path.isdir(os.path.join(cogvideox_dir, name))]
    if absent:
        raise SatCheckpointError(
            f"cogvideox_dir={cogvideox_dir!r} lacks the component folders {absent}; give a THUDM/CogVideoX-2b "
            f"download with {list(COPIED_COMPONENTS)}"
        )


def convert_repvideo_sat_checkpoint(
    sat_dir: Union[str, os.PathLike],
    output_dir: Union[str, os.PathLike],
    cogvideox_dir: Optional[Union[str, os.PathLike]] = None,
    transformer_config: Optional[dict] = None,
    dtype: Optional[str] = None,
    allow_pickle: bool = False,
) -> str:
    """Converts a RepVideo SAT save folder into a diffusers transformer folder, or a whole pipeline folder.

    Without `cogvideox_dir`, `output_dir` becomes a transformer folder (config.json naming
    `CogVideoXRepVideoTransformer3DModel` + safetensors). With it, `output_dir` becomes a
    `CogVideoXRepVideoPipeline` folder: `transformer/` converted, `text_encoder/`, `tokenizer/` and `vae/` copied
    from the CogVideoX-2b folder, `scheduler/` the official sampler's `CogVideoXDPMScheduler` config. Everything is
    written into a temporary folder next to `output_dir` and renamed at the end.

    Args:
        sat_dir (`str`): SAT save folder (`latest` + `<iteration>/mp_rank_00_model_states.pt`), e.g. the released
            `Vchitect/RepVideo` download.
        output_dir (`str`): folder to create; it must not exist yet.
        cogvideox_dir (`str`, *optional*): a `THUDM/CogVideoX-2b` download with `text_encoder/`, `tokenizer/` and
            `vae/`; a `transformer/config.json` there, if any, gives the geometry unless `transformer_config` does.
        transformer_config (`dict`, *optional*): transformer config (defaults to the CogVideoX folder's, else
            `RELEASED_CONFIG`); the RepVideo fields are set on.
        dtype (`str`, *optional*): "fp32", "fp16" or "bf16" for the saved weights; default: as stored.
        allow_pickle (`bool`, defaults to False): see `read_sat_checkpoint`.

    Returns:
        `output_dir` as a string.
    """
    if dtype is not None and dtype not in _DTYPES:
        raise ValueError(f"dtype={dtype!r} must be one of {sorted(_DTYPES)} or None (as stored)")
    output_dir = os.path.abspath(os.fspath(output_dir))
    if os.path.exists(output_dir):
        raise FileExistsError(f"output_dir={output_dir!r} already exists; give a new folder")
    if not os.path.isdir(os.path.dirname(output_dir)):
        raise FileNotFoundError(f"output_dir={output_dir!r}: its parent folder does not exist")
    sat_dir = os.fspath(sat_dir)
    cogvideox_dir = None if cogvideox_dir is None else os.fspath(cogvideox_dir)
    if cogvideox_dir is not None:
        _check_cogvideox_dir(cogvideox_dir)
    config = _transformer_config(cogvideox_dir, transformer_config)

    sat_state, path = read_sat_checkpoint(sat_dir, allow_pickle=allow_pickle)
    state, pos_embedding, _ = sat_to_diffusers_state_dict(sat_state, source=path)
    try:
        _check_against_model(state, pos_embedding, config, source=path)
    except SatCheckpointError:
        raise
    except (TypeError, ValueError) as error:  # a config the model class refuses
        where = ("the given transformer_config" if transformer_config is not None or cogvideox_dir is None
                 else os.path.join(cogvideox_dir, "transformer", "config.json"))
        raise SatCheckpointError(f"{where} does not describe a CogVideoX-RepVideo transformer: {error}") from None
    _check_finite(sat_state, path)
    if dtype is not None:
        state = {key: value.to(_DTYPES[dtype]) for key, value in state.items()}

    with init_empty_weights():
        model = CogVideoXRepVideoTransformer3DModel.from_config(config)
    model.load_state_dict({key: value.contiguous() for key, value in state.items()}, strict=True, assign=True)

    staging = tempfile.mkdtemp(prefix=f".{os.path.basename(output_dir)}.", dir=os.path.dirname(output_dir))
    try:
        os.chmod(staging, 0o755)
        if cogvideox_dir is None:
            model.save_pretrained(staging)
        else:
            model.save_pretrained(os.path.join(staging, "transformer"))
            for name in COPIED_COMPONENTS:
                shutil.copytree(os.path.join(cogvideox_dir, name), os.path.join(staging, name))
            import diffusers

            os.makedirs(os.path.join(staging, "scheduler"))
            with open(os.path.join(staging, "scheduler", "scheduler_config.json"), "w", encoding="utf-8") as f:
                scheduler_config = {**SCHEDULER_CONFIG, "_diffusers_version": diffusers.__version__}
                json.dump(scheduler_config, f, indent=2, sort_keys=True)
            pipeline_index = {
                "_class_name": PIPELINE_CLASS,
                "_diffusers_version": diffusers.__version__,
                "scheduler": ["diffusers", SCHEDULER_CONFIG["_class_name"]],
                "transformer": [
                    CogVideoXRepVideoTransformer3DModel.__module__, CogVideoXRepVideoTransformer3DModel.__name__
                ],
                **COMPONENT_CLASSES,
            }
            with open(os.path.join(staging, "model_index.json"), "w", encoding="utf-8") as f:
                json.dump(pipeline_index, f, indent=2, sort_keys=True)
        os.replace(staging, output_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return output_dir
