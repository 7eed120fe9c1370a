"""The `vdp train` command: full or LoRA fine-tuning of a model family of the pack on a data folder, on accelerate.

Every argument (and a `--config train.yaml`) is checked before torch is imported, the data folder and every video
in it before a model loads; a bad one exits with status 2 and a message naming it. One process by default;
`accelerate launch -m video_diffusion_pack.training ...` (the same arguments) runs it on several (DDP).
"""

import functools
import sys
from pathlib import Path

from ..training.families import FAMILIES
from ..training.local_learning.config import MODE_OPTIONS, MODES, parse_cut_points
from ..training.settings import LR_SCHEDULERS, MIXED_PRECISION, OPTIMIZERS, REPORT_TO, TrainingSettings

# option -> (type, help); every default is None so that a config file can fill what the command line leaves out
_OPTIONS = {
    "model": (str, f"the model family: {', '.join(FAMILIES)}"),
    "type": (str, "full: fine-tune what the family trains (DaS: the tracking branch); lora: peft adapters "
                  "(default: full)"),
    "data": (str, "the data folder: prompts.txt + videos.txt, or metadata.jsonl / metadata.csv"),
    "output": (str, "the run's folder: checkpoints, logs, training_summary.json and the export"),
    "pretrained": (str, "a pipeline folder to start from (default: the family's tiny random-weight model, a from-scratch start)"),
    "steps": (int, "optimiser steps (default: 100)"),
    "batch_size": (int, "samples per process and micro-batch (default: 1)"),
    "gradient_accumulation_steps": (int, "micro-batches per optimiser step (default: 1)"),
    "lr": (float, "learning rate (default: the family's recipe; DaS: 1e-4)"),
    "adam_beta1": (float, "AdamW beta1 (default: the recipe's)"),
    "adam_beta2": (float, "AdamW beta2 (default: the recipe's)"),
    "weight_decay": (float, "AdamW weight decay (default: the recipe's)"),
    "lr_scheduler": (str, f"diffusers' get_scheduler name: {', '.join(LR_SCHEDULERS)} (default: the recipe's)"),
    "lr_warmup_steps": (int, "warm-up steps of the schedule (default: the recipe's)"),
    "max_grad_norm": (float, "clip the gradient norm to this (default: the recipe's)"),
    "weighting_scheme": (str, "vchitect: timestep density, logit_normal (default, SD3's), none (uniform: trains the "
                              "noisiest steps more), mode, sigma_sqrt or cosmap"),
    "temporal_difference_weight": (float, "vchitect: add this weight times the squared error of the prediction's "
                                          "frame-to-frame differences to the loss, stressing motion (default: off)"),
    "ema_decay": (float, "export an exponential moving average of the weights with at most this decay, e.g. 0.999 "
                         "(diffusers' EMAModel with warm-up; default: off)"),
    "mixed_precision": (str, f"{', '.join(MIXED_PRECISION)} (default: no)"),
    "lora_rank": (int, "LoRA rank (default: 16)"),
    "lora_alpha": (float, "LoRA alpha (default: the rank)"),
    "lora_dropout": (float, "LoRA dropout (default: 0)"),
    "num_frames": (int, "frames of a clip (default: the model's: embedded DaS 9, LGVI 3; released DaS 49, LGVI 24)"),
    "height": (int, "clip height (default: the model's)"),
    "width": (int, "clip width (default: the model's)"),
    "frame_stride": (int, "take every N-th frame of a video (default: 1)"),
    "cache_dir": (str, "where --precompute keeps its caches (default: OUTPUT/cache)"),
    "checkpoint_every": (int, "accelerator.save_state every N steps (default: 0, only at the end)"),
    "checkpoints_total_limit": (int, "keep only the newest N checkpoints"),
    "resume": (str, "'latest' (the newest checkpoint in OUTPUT) or a checkpoint folder"),
    "validation_every": (int, "write a validation video every N steps to OUTPUT/validation (default: 0, never)"),
    "validation_steps": (int, "denoising steps of a validation video (default: 4)"),
    "seed": (int, "seed of the data order, noise and dropout (default: 0)"),
    "report_to": (str, f"accelerate tracker: {', '.join(REPORT_TO)} (default: auto, tensorboard when installed)"),
    "dataloader_workers": (int, "unused by the trainer's own batch order; kept at 0"),
    "optimizer": (str, f"{', '.join(OPTIMIZERS)} (default: adamw; adamw8bit needs CUDA and the bnb extra: pip install "
                       "'comfyui-video-diffusion-pack[bnb]')"),
    "push_to_hub": (str, "upload the export (pipeline folder or LoRA file) and training_summary.json to this Hub repo "
                         "(created if needed, before training starts; token from HF_TOKEN or hf auth login)"),
    "local_learning": (str, f"train by local learning: {', '.join(MODES)} (vchitect and repvideo; full training, "
                            "no gradient checkpointing)"),
    "local_groups": (int, "local learning: K groups of blocks, 2..the number of blocks"),
    "local_cuts": (str, "local learning: block indices where a group starts, e.g. 4,8 (instead of --local-groups)"),
    "auglocal_depth": (int, f"AugLocal's d: most blocks an auxiliary network copies (default: "
                            f"{MODE_OPTIONS['aux_depth'][1]})"),
    "auglocal_tau": (float, f"AugLocal's pyramid coefficient tau (default: {MODE_OPTIONS['pyramid_coeff'][1]})"),
    "man_momentum": (float, f"MAN's EMA momentum m (default: {MODE_OPTIONS['momentum'][1]})"),
    "hpff_wx": (float, f"HPFF's weight of the independent path's loss (default: {MODE_OPTIONS['wx'][1]})"),
    "hpff_wy": (float, f"HPFF's weight of the cascade path's loss (default: {MODE_OPTIONS['wy'][1]})"),
    "hpff_patches": (int, f"HPFF's n: n x n patches of the auxiliary input (default: {MODE_OPTIONS['patches'][1]})"),
}
_FLAGS = {
    "buckets": "each video keeps its own size rounded down to the model's multiple (batches of one size)",
    "precompute": "encode latents and text once into a cache; train without loading the VAE and text encoders",
    "overwrite": "start a new run in an OUTPUT folder that is not empty",
    "train_base": "DaS: train the whole transformer (base and tracking branch), not only the tracking branch as the "
                  "official recipe does (for a base trained from scratch)",
    "fsdp": "shard the denoiser with accelerate's FSDP plugin (version 2, its transformer blocks as units); CUDA GPUs "
            "only, launched with accelerate launch or torchrun",
}
# option name -> TrainingSettings field, where they differ
_FIELDS = {"type": "training_type", "lr": "learning_rate"}


def add_commands(commands) -> None:
    """Adds `train` to the `vdp` subcommands."""
    train = commands.add_parser(
        "train", help="fine-tune a model of the pack (full or LoRA) on a data folder, on accelerate",
        description=("Train a model family of the pack on a data folder (prompts.txt + videos.txt, or metadata.jsonl / "
                     "metadata.csv with file_name, caption and the family's columns) and export a pipeline folder "
                     "or a diffusers-format LoRA file. Without --pretrained it starts from the family's tiny "
                     "random-weight model, offline. Several processes: accelerate launch -m video_diffusion_pack.training ..."),
    )
    train.add_argument("--config", help="a YAML file of these options (names with - or _); the command line wins")
    for name, (kind, text) in _OPTIONS.items():
        train.add_argument("--" + name.replace("_", "-"), dest=name, type=kind, help=text)
    train.add_argument("--gradient-checkpointing", nargs="?", type=float, const=1.0, metavar="FRACTION",
                       help="recompute activations in the backward: all blocks, or the given fraction of each block "
                            "list (default: off)")
    train.add_argument("--lora-targets", nargs="+", metavar="MODULE", help="peft target modules (default: the "
                                                                            "family's attention projections)")
    for name, text in _FLAGS.items():
        train.add_argument("--" + name.replace("_", "-"), dest=name, action="store_true", default=None, help=text)
    train.set_defaults(run=functools.partial(_train, parser=train))


def _from_config(args, parser) -> None:
    """Fill every option the command line left out from --config."""
    import yaml

    path = Path(args.config)
    if not path.is_file():
        parser.error(f"argument --config: '{path}' does not exist")
    try:
        values = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        parser.error(f"argument --config: '{path}' is not YAML ({str(error).splitlines()[0]})")
    if not isinstance(values, dict):
        parser.error(f"argument --config: '{path}' holds a {type(values).__name__}; expected a mapping of options")
    known = set(_OPTIONS) | set(_FLAGS) | {"gradient_checkpointing", "lora_targets"}
    for key, value in values.items():
        name = str(key).replace("-", "_")
        if name not in known:
            parser.error(f"argument --config: '{path}' has the unknown option {key!r}")
        if getattr(args, name) is None:
            setattr(args, name, value)


def settings_from_args(args, parser) -> TrainingSettings:
    """The checked TrainingSettings of the parsed arguments; exits with status 2 on a bad one (torch-free)."""
    if args.config is not None:
        _from_config(args, parser)
    for name in ("model", "data", "output"):
        if getattr(args, name) is None:
            parser.error(f"argument --{name}: it is required (on the command line or in --config)")
    if args.model not in FAMILIES:
        parser.error(f"argument --model: model={args.model!r} is not a family the trainer knows; allowed: "
                     f"{', '.join(FAMILIES)}")
    given = {}
    for name in [*_OPTIONS, *_FLAGS, "gradient_checkpointing", "lora_targets"]:
        value = getattr(args, name)
        if value is not None:
            given[_FIELDS.get(name, name)] = tuple(value) if name == "lora_targets" else value
    if isinstance(given.get("local_cuts"), (str, int)):
        try:
            given["local_cuts"] = parse_cut_points(str(given["local_cuts"]))
        except ValueError as error:
            parser.error(f"argument --local-cuts: {error}")
    elif given.get("local_cuts") is not None:
        given["local_cuts"] = tuple(given["local_cuts"])
    try:
        return TrainingSettings(**given).check()
    except (TypeError, ValueError) as error:
        message = str(error)
        field = message.split("=", 1)[0] if "=" in message.split(" ", 1)[0] else ""
        option = {v: k for k, v in _FIELDS.items()}.get(field, field).replace("_", "-")
        parser.error(f"argument --{option}: {message}" if option else message)


def _train(args, parser) -> int:
    settings = settings_from_args(args, parser)
    from ..training.data import DataError
    from ..training.trainer import Trainer

    try:
        trainer = Trainer(settings, command=" ".join(["vdp", "train", *sys.argv[2:]]) if sys.argv[1:2] == ["train"]
                          else " ".join(sys.argv))
    except (DataError, ValueError) as error:
        parser.exit(2, f"{parser.prog}: error: {error}\n")
    try:
        summary = trainer.run()
    except (DataError, ValueError) as error:
        parser.exit(1, f"{parser.prog}: error: {error}\n")
    if summary is not None:
        print(Path(settings.output).resolve())
    return 0
