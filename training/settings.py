"""The settings of a training run, checked without importing torch: what `vdp train` and a config file give the
trainer.

``None`` in an optimiser field means "the specification's recipe" (DaS: the official AdamW lr 1e-4, betas 0.9/0.95,
weight decay 1e-3, cosine with restarts, 100 warm-up steps, clip 1.0); the trainer resolves them.
"""

import dataclasses
import json
import math
import os
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

from .families import FAMILIES, family_rules
from .local_learning.config import MODES, LocalLearningConfig, check_training_setup

__all__ = ["LR_SCHEDULERS", "MIXED_PRECISION", "OPTIMIZERS", "TRAINING_TYPES", "TRAINER_FILES", "TrainingSettings"]

TRAINING_TYPES = ("full", "lora")
MIXED_PRECISION = ("no", "fp16", "bf16")
# diffusers.optimization.get_scheduler's names
LR_SCHEDULERS = ("constant", "constant_with_warmup", "linear", "cosine", "cosine_with_restarts", "polynomial")
REPORT_TO = ("auto", "tensorboard", "none")
#: torch's AdamW, or bitsandbytes' 8-bit AdamW (the ``bnb`` extra; CUDA only)
OPTIMIZERS = ("adamw", "adamw8bit")
#: SD3's timestep densities (diffusers' ``compute_density_for_timestep_sampling``), for the flow-matching family
WEIGHTING_SCHEMES = ("logit_normal", "mode", "sigma_sqrt", "cosmap", "none")
WEIGHTING_SCHEME_MODELS = ("vchitect",)
#: what the trainer writes in the output folder besides the export (removed by ``overwrite``)
TRAINER_FILES = ("checkpoints", "logs", "validation", "metrics.jsonl", "training_summary.json")
#: settings field of each local-learning option -> the LocalLearningConfig field it fills
LOCAL_LEARNING_FIELDS = {"local_groups": "groups", "local_cuts": "cut_points", "auglocal_depth": "aux_depth",
                         "auglocal_tau": "pyramid_coeff", "man_momentum": "momentum", "hpff_wx": "wx",
                         "hpff_wy": "wy", "hpff_patches": "patches"}


@dataclasses.dataclass
class TrainingSettings:
    """Everything one run needs; field names are the `vdp train` options with ``_`` for ``-``.

    Args:
        model (`str`): the family (``das``, ``lgvi``, ...). training_type (`str`): ``full`` or ``lora``.
        data (`str`): the data folder (``training/data.py``). output (`str`): the run's folder: checkpoints, logs,
            ``training_summary.json`` and the export (a pipeline folder, or ``pytorch_lora_weights.safetensors``).
        pretrained (`str`, *optional*): a pipeline folder to start from; ``None``: the family's tiny random-weight model.
        steps (`int`): optimiser steps. batch_size (`int`): samples per process and micro-batch.
        gradient_accumulation_steps (`int`): micro-batches per optimiser step.
        learning_rate, adam_beta1, adam_beta2, weight_decay, lr_scheduler, lr_warmup_steps, max_grad_norm: the
            optimiser; ``None`` takes the specification's recipe.
        weighting_scheme (`str`, *optional*): Vchitect-2.0's timestep density (SD3's: ``logit_normal`` by default,
            ``none`` for uniform, ``mode``, ``sigma_sqrt``, ``cosmap``).
        temporal_difference_weight (`float`, *optional*): Vchitect-2.0: add this weight times the squared error of
            the prediction's frame-to-frame differences (``pred[:, 1:] - pred[:, :-1]`` against the target's) to the
            loss, which stresses what changes between frames (motion) next to what every frame shares; ``None``
            or 0: off.
        ema_decay (`float`, *optional*): keep an exponential moving average of the trained weights (diffusers'
            ``EMAModel`` with its warm-up, decay at most this) and export it instead of the last weights.
        mixed_precision (`str`): ``no``, ``fp16`` or ``bf16`` (accelerate's autocast).
        gradient_checkpointing (`float`): fraction of each block list recomputed in the backward (0: none, 1: all).
        lora_rank, lora_alpha, lora_dropout, lora_targets: the LoRA (``alpha`` defaults to the rank, ``targets`` to
            the specification's).
        num_frames, height, width (`int`, *optional*): the clip; ``None``: the embedded or released model's geometry
            (``height``/``width`` ``None`` with ``buckets``: each video's own size rounded down).
        frame_stride (`int`): take every n-th frame.
        precompute (`bool`): encode latents and text once into a cache, train without the VAE and text encoders.
        cache_dir (`str`, *optional*): where caches live (default ``<output>/cache``).
        checkpoint_every (`int`): ``accelerator.save_state`` every N steps (0: only at the end).
        checkpoints_total_limit (`int`, *optional*): keep only the newest N checkpoints.
        resume (`str`, *optional*): ``latest`` or a checkpoint folder.
        validation_every (`int`): write a validation video every N steps (0: never). validation_steps: its
            denoising steps.
        seed (`int`), report_to (`str`: auto = tensorboard when installed), overwrite (`bool`), dataloader_workers.
        optimizer (`str`): ``adamw`` or ``adamw8bit`` (bitsandbytes, CUDA only).
        fsdp (`bool`): shard the denoiser with accelerate's FSDP plugin (version 2, its blocks as units); GPUs only.
        push_to_hub (`str`, *optional*): a Hub repo id the export is uploaded to (created if needed) at the end.
        local_learning (`str`, *optional*): train by local learning: ``auglocal``, ``man``, ``hpff`` or ``infopro``
            (``training/local_learning``); full fine-tuning, without gradient checkpointing.
        local_groups (`int`, *optional*): K, the number of local groups (2..blocks); or local_cuts (`tuple`): the
            block indices where a group starts, strictly increasing.
        auglocal_depth, auglocal_tau: AugLocal's d and tau (2, 0.5). man_momentum: MAN's EMA momentum (0.995).
        hpff_wx, hpff_wy, hpff_patches: HPFF's loss weights of the independent and cascade paths (0.001, 0.999)
            and its n x n patch split (2). Each option belongs to its mode and is refused with another.
        train_base (`bool`): DaS only, full training: train the whole transformer (the CogVideoX base and the
            tracking branch) instead of the tracking branch alone (the official recipe); for a base trained from
            scratch, as the embedded DaS model.
    """

    model: str
    data: str
    output: str
    training_type: str = "full"
    pretrained: Optional[str] = None
    steps: int = 100
    batch_size: int = 1
    gradient_accumulation_steps: int = 1
    learning_rate: Optional[float] = None
    adam_beta1: Optional[float] = None
    adam_beta2: Optional[float] = None
    weight_decay: Optional[float] = None
    lr_scheduler: Optional[str] = None
    lr_warmup_steps: Optional[int] = None
    max_grad_norm: Optional[float] = None
    ema_decay: Optional[float] = None
    weighting_scheme: Optional[str] = None
    temporal_difference_weight: Optional[float] = None
    mixed_precision: str = "no"
    gradient_checkpointing: float = 0.0
    lora_rank: int = 16
    lora_alpha: Optional[float] = None
    lora_dropout: float = 0.0
    lora_targets: Optional[Tuple[str, ...]] = None
    num_frames: Optional[int] = None
    height: Optional[int] = None
    width: Optional[int] = None
    buckets: bool = False
    frame_stride: int = 1
    precompute: bool = False
    cache_dir: Optional[str] = None
    checkpoint_every: int = 0
    checkpoints_total_limit: Optional[int] = None
    resume: Optional[str] = None
    validation_every: int = 0
    validation_steps: int = 4
    seed: int = 0
    report_to: str = "auto"
    overwrite: bool = False
    dataloader_workers: int = 0
    optimizer: str = "adamw"
    fsdp: bool = False
    push_to_hub: Optional[str] = None
    local_learning: Optional[str] = None
    local_groups: Optional[int] = None
    local_cuts: Optional[Tuple[int, ...]] = None
    auglocal_depth: Optional[int] = None
    auglocal_tau: Optional[float] = None
    man_momentum: Optional[float] = None
    hpff_wx: Optional[float] = None
    hpff_wy: Optional[float] = None
    hpff_patches: Optional[int] = None
    train_base: bool = False

    def check(self) -> "TrainingSettings":
        """Raise ValueError naming the setting, its value and what is allowed; fill the clip geometry. Torch-free."""
        rules = family_rules(self.model)
        for name, allowed in (("training_type", TRAINING_TYPES), ("mixed_precision", MIXED_PRECISION),
                              ("report_to", REPORT_TO), ("optimizer", OPTIMIZERS)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name}={getattr(self, name)!r} is not allowed; use one of {', '.join(allowed)}")
        if self.lr_scheduler is not None and self.lr_scheduler not in LR_SCHEDULERS:
            raise ValueError(f"lr_scheduler={self.lr_scheduler!r} is not allowed; use one of {', '.join(LR_SCHEDULERS)}")
        for name, minimum in (("steps", 1), ("batch_size", 1), ("gradient_accumulation_steps", 1), ("lora_rank", 1),
                              ("frame_stride", 1), ("checkpoint_every", 0), ("validation_every", 0),
                              ("validation_steps", 1), ("dataloader_workers", 0), ("lr_warmup_steps", 0),
                              ("checkpoints_total_limit", 1)):
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise ValueError(f"{name}={value!r} must be an integer >= {minimum}")
        for name, low, high, low_open in (("learning_rate", 0, math.inf, True), ("adam_beta1", 0, 1, False),
                                          ("adam_beta2", 0, 1, False), ("weight_decay", 0, math.inf, False),
                                          ("max_grad_norm", 0, math.inf, True), ("lora_alpha", 0, math.inf, True),
                                          ("lora_dropout", 0, 1, False), ("gradient_checkpointing", 0, 1, False),
                                          ("ema_decay", 0, 1, True),
                                          ("temporal_difference_weight", 0, math.inf, False)):
            value = getattr(self, name)
            if value is None:
                continue
            closed_high = name in ("gradient_checkpointing",)
            ok = (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
                  and (value > low if low_open else value >= low) and (value <= high if closed_high else value < high))
            if not ok:
                bounds = f"{'>' if low_open else '>='} {low}" + ("" if high == math.inf else
                                                                   f" and {'<=' if closed_high else '<'} {high}")
                raise ValueError(f"{name}={value!r} must be a finite number {bounds}")
        if self.weighting_scheme is not None:
            if self.weighting_scheme not in WEIGHTING_SCHEMES:
                raise ValueError(f"weighting_scheme={self.weighting_scheme!r} is not allowed; use one of "
                                 f"{', '.join(WEIGHTING_SCHEMES)}")
            if self.model not in WEIGHTING_SCHEME_MODELS:
                raise ValueError(f"weighting_scheme={self.weighting_scheme!r}: model {self.model!r} does not train "
                                 f"by flow matching; only {', '.join(WEIGHTING_SCHEME_MODELS)} takes it")
        if self.temporal_difference_weight and self.model not in WEIGHTING_SCHEME_MODELS:
            raise ValueError(f"temporal_difference_weight={self.temporal_difference_weight!r}: only "
                             f"{', '.join(WEIGHTING_SCHEME_MODELS)} takes it, not model {self.model!r}")
        if self.ema_decay is not None and self.fsdp:
            raise ValueError(f"ema_decay={self.ema_decay}: an average of sharded weights is not supported; train "
                             "without --fsdp or without --ema-decay")
        if not 0 <= self.seed < 2**63:
            raise ValueError(f"seed={self.seed} must be in 0..2**63-1")
        if self.lora_targets is not None and (not self.lora_targets or not all(self.lora_targets)):
            raise ValueError(f"lora_targets={self.lora_targets!r} must name at least one module")
        frames, height, width = rules.embedded_clip if self.pretrained is None else rules.released_clip
        if self.num_frames is None:
            self.num_frames = frames
        if not rules.frames_allowed(self.num_frames):
            raise ValueError(f"num_frames={self.num_frames} is not allowed by model {self.model!r}; it needs "
                             f"{rules.frame_rule()}")
        if self.buckets:
            if self.height is not None or self.width is not None:
                raise ValueError("buckets=True takes each video's own size; do not give height or width with it")
        else:
            self.height = height if self.height is None else self.height
            self.width = width if self.width is None else self.width
            for name in ("height", "width"):
                value = getattr(self, name)
                if value < rules.size_multiple or value % rules.size_multiple:
                    raise ValueError(f"{name}={value} is not allowed by model {self.model!r}; it must be a positive "
                                     f"multiple of {rules.size_multiple}")
        if self.push_to_hub is not None:
            from huggingface_hub.utils import HFValidationError, validate_repo_id

            try:
                validate_repo_id(self.push_to_hub)
            except HFValidationError as error:
                raise ValueError(f"push_to_hub={self.push_to_hub!r} is not a Hub repo id ('name' or 'namespace/name'; "
                                 f"{error})") from None
        if self.train_base and (self.model != "das" or self.training_type != "full"):
            raise ValueError(f"train_base=True trains the whole DaS transformer; it needs model='das' and "
                             f"training_type='full' (got model={self.model!r}, training_type={self.training_type!r})")
        self._check_local_learning()
        self._check_paths()
        return self

    def _check_paths(self) -> None:
        data = Path(self.data)
        if not data.is_dir():
            raise ValueError(f"data={self.data!r}: the data folder does not exist (or is not a folder)")
        if self.pretrained is not None and not (Path(self.pretrained) / "model_index.json").is_file():
            raise ValueError(f"pretrained={self.pretrained!r} is not a pipeline folder (it has no model_index.json)")
        output = Path(self.output)
        if output.resolve() == data.resolve() or data.resolve() in output.resolve().parents:
            raise ValueError(f"output={self.output!r} is (inside) the data folder; write the run elsewhere")
        if output.exists() and not output.is_dir():
            raise ValueError(f"output={self.output!r} exists and is not a folder")
        parent = output.resolve().parent
        while not parent.exists():
            parent = parent.parent
        if not os.access(parent, os.W_OK):
            raise ValueError(f"output={self.output!r}: the folder '{parent}' is not writable")
        if output.is_dir() and any(output.iterdir()) and not self.overwrite and self.resume is None:
            raise ValueError(f"output={self.output!r} exists and is not empty; pass resume='latest' (--resume latest) "
                             "to continue its run, or overwrite=True (--overwrite) to start a new one there")
        if self.resume is not None and self.resume != "latest":
            if not (Path(self.resume) / "trainer_state.json").is_file():
                raise ValueError(f"resume={self.resume!r} is not a checkpoint folder of the trainer (it has no "
                                 "trainer_state.json); pass 'latest' or a checkpoints/checkpoint-N folder")

    def local_learning_config(self) -> Optional[LocalLearningConfig]:
        """The run's ``LocalLearningConfig`` (None without ``local_learning``); its errors name the settings fields."""
        if self.local_learning is None:
            return None
        options = {LOCAL_LEARNING_FIELDS[name]: getattr(self, name) for name in LOCAL_LEARNING_FIELDS
                   if getattr(self, name) is not None}
        try:
            return LocalLearningConfig(self.local_learning, **options)
        except ValueError as error:
            raise ValueError(_settings_names(str(error))) from None

    def denoiser_blocks(self) -> Optional[int]:
        """Blocks of the denoiser this run trains, read without loading it (None when the folder does not say)."""
        if self.pretrained is None:
            return family_rules(self.model).embedded_blocks
        config = Path(self.pretrained) / "transformer" / "config.json"
        try:
            blocks = json.loads(config.read_text(encoding="utf-8")).get("num_layers")
        except (OSError, ValueError):
            raise ValueError(f"pretrained={self.pretrained!r}: '{config}' is missing or not JSON") from None
        return blocks if isinstance(blocks, int) and blocks > 0 else None

    def _check_local_learning(self) -> None:
        """Local learning's settings, before any model loads: mode, groups against the blocks, each option in its
        mode, and the combinations it does not support (LoRA, gradient checkpointing)."""
        given = [name for name in LOCAL_LEARNING_FIELDS if getattr(self, name) is not None]
        if self.local_learning is None:
            if given:
                raise ValueError(f"{given[0]}={getattr(self, given[0])!r} is a local-learning option; give "
                                 f"local_learning (--local-learning {'|'.join(MODES)}) with it")
            return
        if self.local_learning not in MODES:
            raise ValueError(f"local_learning={self.local_learning!r} is not allowed; use one of {', '.join(MODES)}")
        supported = [name for name, rules in FAMILIES.items() if rules.embedded_blocks is not None]
        if family_rules(self.model).embedded_blocks is None:
            raise ValueError(f"local_learning={self.local_learning!r}: model {self.model!r} cannot train by local "
                             f"learning (no denoiser stages); allowed models: {', '.join(supported)}")
        own = [name for name in LOCAL_LEARNING_FIELDS if name.startswith(self.local_learning + "_")]
        for name in given:
            owner = name.split("_")[0]
            if owner in MODES and owner != self.local_learning:
                raise ValueError(f"{name}={getattr(self, name)!r} is an option of local_learning={owner!r}; mode "
                                 f"{self.local_learning!r} takes {', '.join(own) or 'no mode option'} (and "
                                 "local_groups or local_cuts)")
        if self.local_groups is None and self.local_cuts is None:
            raise ValueError(f"local_learning={self.local_learning!r} needs local_groups (--local-groups K) or "
                             "local_cuts (--local-cuts i,j,...)")
        if self.local_groups is not None and self.local_cuts is not None:
            raise ValueError(f"local_cuts={self.local_cuts!r} and local_groups={self.local_groups!r}: give one of them")
        config = self.local_learning_config()
        check_training_setup(config, training_type=self.training_type,
                             gradient_checkpointing=self.gradient_checkpointing)
        blocks = self.denoiser_blocks()
        if blocks is not None:
            try:
                config.group_bounds(blocks)
            except ValueError as error:
                raise ValueError(_settings_names(str(error))) from None
        if config.mode == "hpff" and config.patches > 1:
            if self.model == "repvideo":
                raise ValueError(f"hpff_patches={config.patches} is not supported by model 'repvideo' (CogVideoX's "
                                 "prediction needs the whole frame's noisy latents); allowed: hpff_patches=1")
            # a token covers size_multiple pixels a side (the VAE's factor times the patch size)
            side = family_rules(self.model).size_multiple
            grid = [] if self.buckets else [(name, getattr(self, name) // side) for name in ("height", "width")]
            for name, tokens in grid:
                if tokens % config.patches:
                    raise ValueError(f"hpff_patches={config.patches}: the {name} of {getattr(self, name)} gives "
                                     f"{tokens} tokens, which do not split into {config.patches} equal patches; "
                                     f"allowed: a divisor of {tokens}")

    def as_dict(self) -> Dict[str, Any]:
        values = dataclasses.asdict(self)
        for name in ("lora_targets", "local_cuts"):
            if values[name] is not None:
                values[name] = list(values[name])
        return values


def _settings_names(message: str) -> str:
    """A LocalLearningConfig message in the settings' names (``groups=5 ...`` -> ``local_groups=5 ...``)."""
    names = {config: field for field, config in LOCAL_LEARNING_FIELDS.items()}
    head, equals, rest = message.partition("=")
    if equals and head in names:
        return f"{names[head]}={rest}"
    return message
