"""The generic trainer: one loop on accelerate for every model family, the model-specific work in its specification.

The trainer owns the data (``training/data.py``), the optional cache of latents and text embeddings, AdamW with the
specification's recipe, diffusers' ``get_scheduler``, accelerate's mixed precision, gradient accumulation, clipping
and DDP, gradient checkpointing (all blocks, or a fraction of each block list), ``accelerator.save_state`` every N
steps and ``--resume``, validation videos, a progress bar, accelerate trackers and ``training_summary.json``.

The work of one micro-batch (forward, loss, backward) is a :class:`TrainingStep`; a training mode that runs the
denoiser differently (local learning: group by group, with auxiliary heads) passes its own ``step``.

Randomness is keyed on the micro-batch, not on a running generator: micro-batch ``m`` of process ``r`` (of ``W``)
draws its noise, timesteps and dropout from a generator seeded with ``(seed, m * W + r)`` and reads data batch
``m * W + r`` of a seeded epoch order. So a resumed run continues exactly the curve of an uninterrupted one, and DDP
on ``W`` processes takes the same optimiser steps as one process with ``W`` times the gradient accumulation (the
same samples and noise, the gradients averaged the same way). The VAE's posterior sample of a video is keyed on the
sample itself, so training from ``--precompute``'s cache gives the losses of encoding every step.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional

import numpy as np
import torch
from torch import nn

from .data import (
    CachedData,
    ClipSettings,
    DataError,
    TrainingData,
    cache_complete,
    cache_key,
    collate,
    collate_cached,
    finish_cache,
    folder_identity,
    write_cache,
)
from .families import family_rules
from .settings import TRAINER_FILES, TrainingSettings
from .sharding import block_lists as _block_lists
from .specification import ModelSpecification
from .specifications import get_specification

__all__ = ["StepResult", "Trainer", "TrainingStep", "train"]

#: settings a resumed run must share with its checkpoint (the rest, e.g. ``steps``, may change)
RESUME_SETTINGS = ("model", "training_type", "batch_size", "gradient_accumulation_steps", "learning_rate",
                   "adam_beta1", "adam_beta2", "weight_decay", "lr_scheduler", "lr_warmup_steps", "max_grad_norm",
                   "mixed_precision", "lora_rank", "lora_alpha", "lora_dropout", "lora_targets", "num_frames",
                   "height", "width", "buckets", "frame_stride", "seed", "precompute", "optimizer", "fsdp",
                   "local_learning", "local_groups", "local_cuts", "auglocal_depth", "auglocal_tau", "man_momentum",
                   "hpff_wx", "hpff_wy", "hpff_patches", "train_base", "ema_decay", "weighting_scheme",
                   "temporal_difference_weight")


@dataclasses.dataclass
class StepResult:
    """What one micro-batch's step returns: its loss (detached) and named values to log (detached scalars)."""

    loss: torch.Tensor
    logs: Dict[str, torch.Tensor] = dataclasses.field(default_factory=dict)


class TrainingStep:
    """The work of one micro-batch: forward, loss and backward; replace it to train another way.

    The trainer calls ``step(trainer, latents, conditions, generator)`` inside ``accelerator.accumulate``; the step
    must call ``trainer.accelerator.backward`` on what it optimises (once, or once per group) and return a
    :class:`StepResult`. ``trainer.spec`` is the specification, ``trainer.train_components`` the components with the
    denoiser as accelerate prepared it (DDP-wrapped under several processes; its attributes read through to the
    model), ``trainer.components`` the same with the plain denoiser. Parameters a step adds (auxiliary networks) are
    returned by :meth:`extra_parameters`, which the trainer calls once before building the optimiser; they are
    optimised and checkpointed with the denoiser's.
    """

    def extra_parameters(self, trainer: "Trainer") -> List[nn.Parameter]:
        return []

    def __call__(self, trainer: "Trainer", latents: Mapping[str, torch.Tensor], conditions: Mapping[str, torch.Tensor],
                 generator: torch.Generator) -> StepResult:
        output = trainer.spec.forward(trainer.train_components, latents, conditions, generator=generator,
                                      training=True)
        loss = trainer.spec.loss(output)
        trainer.accelerator.backward(loss)
        return StepResult(loss=loss.detach(), logs={f"loss_{k}": v.detach() for k, v in output.extra_losses.items()})


class _Prepared:
    """The denoiser as accelerate prepared it, called through the wrapper (DDP's reducer needs that) while its other
    attributes (``config``, ``dtype``) read through to the model, as the specifications expect."""

    def __init__(self, wrapped: nn.Module, module: nn.Module):
        self.__dict__.update(_wrapped=wrapped, _module=module)

    def __call__(self, *args, **kwargs):
        return self._wrapped(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._module, name)


def enable_gradient_checkpointing(model: nn.Module, fraction: float) -> int:
    """Recompute in the backward the first ``ceil(fraction * n)`` blocks of each block list; returns how many.

    Each chosen block's ``forward`` is wrapped in ``torch.utils.checkpoint`` (non-reentrant), for every model alike:
    diffusers' ``enable_gradient_checkpointing`` only sets a flag that a model's own forward must read, and the pack's
    CogVideoX-RepVideo transformer (its own forward, for the aggregation) does not.
    """
    if fraction <= 0:
        return 0
    from torch.utils.checkpoint import checkpoint

    count = 0
    for blocks in _block_lists(model):
        for block in list(blocks)[:math.ceil(fraction * len(blocks))]:
            forward = block.forward
            block.forward = lambda *a, _forward=forward, **k: checkpoint(_forward, *a, use_reentrant=False, **k)
            count += 1
    if not count:
        raise ValueError(f"gradient_checkpointing={fraction}: the denoiser {type(model).__name__} has no block lists")
    return count


def _cpu_only() -> bool:
    """No accelerator here: accelerate must be told, else processes launched with ``torchrun`` each run alone instead
    of joining one gloo group."""
    return not torch.accelerator.is_available()


def _peak_memory(device: torch.device) -> Dict[str, Any]:
    if device.type == "cuda":
        return {"peak_memory_bytes": torch.cuda.max_memory_allocated(device), "peak_memory_of": "cuda allocated"}
    import resource

    return {"peak_memory_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
            "peak_memory_of": "process resident set (cpu)"}


def _write_json(path: Path, value) -> None:
    temporary = path.with_name(f".{path.name}.writing")
    temporary.write_text(json.dumps(value, indent=2, sort_keys=True, default=str))
    os.replace(temporary, path)


class Trainer:
    """One training run of ``settings`` (checked), on the accelerate state of the launching processes.

    Args:
        settings (`TrainingSettings`): the run.
        step (`TrainingStep`, *optional*): the per-micro-batch work; default forward + loss + backward.
        command (`str`, *optional*): the command line, for ``training_summary.json``.
    """

    def __init__(self, settings: TrainingSettings, step: Optional[TrainingStep] = None, command: str = ""):
        self.settings = settings.check()
        self.step = step or self._default_step()
        self.command = command or " ".join(sys.argv)
        self.output = Path(settings.output)
        self.spec: ModelSpecification = get_specification(settings.model)
        if settings.train_base:  # DaS: the whole transformer trains (TrainingSettings.check allows it for DaS only)
            self.spec.train_base = True
        self._resolve_recipe()
        if settings.weighting_scheme is not None:  # this run's timestep density in place of the recipe's
            self.spec.recipe = dataclasses.replace(self.spec.recipe, weighting_scheme=settings.weighting_scheme)
        if settings.temporal_difference_weight:  # this run's frame-difference loss term (vchitect)
            self.spec.recipe = dataclasses.replace(self.spec.recipe,
                                                   temporal_difference_weight=settings.temporal_difference_weight)
        rules = family_rules(settings.model)
        self.clip = ClipSettings(num_frames=settings.num_frames, height=settings.height, width=settings.width,
                                 frame_stride=settings.frame_stride, frame_multiple=rules.frame_multiple,
                                 frame_remainder=rules.frame_remainder, size_multiple=rules.size_multiple)
        self.data = TrainingData(settings.data, self.clip, rules.required_columns, rules.text_column).check()
        if len(self.data) < settings.batch_size:
            raise DataError(f"batch_size={settings.batch_size} is larger than the {len(self.data)} samples of "
                            f"'{self.data.index_file}'")
        self.resume_from = self._find_checkpoint()
        self._check_scale_options()
        self.hub_repo = self._create_hub_repo()

    # -- before any model loads --------------------------------------------------------------------------------------
    def _default_step(self) -> TrainingStep:
        """Forward, loss and backward; with ``local_learning``, its per-group step."""
        config = self.settings.local_learning_config()
        if config is None:
            return TrainingStep()
        from .local_learning.step import LocalLearningStep

        return LocalLearningStep(config)

    def _resolve_recipe(self) -> None:
        """Fill the optimiser settings left ``None`` from the specification's recipe (else AdamW's usual values)."""
        recipe = getattr(self.spec, "recipe", None)
        s = self.settings
        betas = getattr(recipe, "adam_betas", (0.9, 0.999))
        defaults = {"learning_rate": getattr(recipe, "learning_rate", 1e-4), "adam_beta1": betas[0],
                    "adam_beta2": betas[1], "weight_decay": getattr(recipe, "weight_decay", 1e-2),
                    "lr_scheduler": getattr(recipe, "lr_scheduler", "constant"),
                    "lr_warmup_steps": getattr(recipe, "lr_warmup_steps", 0),
                    "max_grad_norm": getattr(recipe, "max_grad_norm", 1.0)}
        for name, value in defaults.items():
            if getattr(s, name) is None:
                setattr(s, name, value)

    def _check_scale_options(self) -> None:
        """Refuse, before a model loads, what this machine cannot run: FSDP without GPUs, 8-bit AdamW without
        bitsandbytes or without CUDA."""
        s = self.settings
        if s.fsdp and not torch.cuda.is_available():
            raise ValueError("fsdp=True (--fsdp): accelerate's FSDP plugin runs on CUDA GPUs and this machine has none; "
                             "on CPUs train data-parallel instead (torchrun --nproc-per-node N -m "
                             "video_diffusion_pack.training ...)")
        if s.optimizer == "adamw8bit":
            try:
                import bitsandbytes  # noqa: F401
            except ImportError:
                raise ValueError("optimizer='adamw8bit' needs bitsandbytes: pip install "
                                 "'comfyui-video-diffusion-pack[bnb]' (or pip install bitsandbytes)") from None
            if not torch.cuda.is_available():
                raise ValueError("optimizer='adamw8bit': bitsandbytes' 8-bit AdamW keeps its states on CUDA GPUs and "
                                 "this machine has none; use optimizer='adamw' (--optimizer adamw)")

    def _create_hub_repo(self) -> Optional[str]:
        """With ``push_to_hub``: create the Hub repo (or find it) now, so a missing token or right fails before
        training rather than after it; the main process only (``RANK`` 0)."""
        repo = self.settings.push_to_hub
        if repo is None or os.environ.get("RANK", "0") != "0":
            return None
        from huggingface_hub import HfApi
        from huggingface_hub.errors import HfHubHTTPError

        try:
            return HfApi(endpoint=os.environ.get("HF_ENDPOINT")).create_repo(repo, exist_ok=True).repo_id
        except (HfHubHTTPError, OSError) as error:
            raise ValueError(f"push_to_hub={repo!r}: the repo cannot be created or reached "
                             f"({str(error).splitlines()[0]})") from None

    def _push_to_hub(self) -> str:
        """Upload the export (the pipeline folder's model_index.json and components, or the LoRA file) and
        ``training_summary.json``; returns the commit URL."""
        from huggingface_hub import HfApi

        if self.settings.training_type == "lora":
            patterns = ["pytorch_lora_weights.safetensors"]
        else:
            index = json.loads((self.output / "model_index.json").read_text())
            patterns = ["model_index.json"] + [f"{name}/*" for name, value in index.items()
                                               if not name.startswith("_") and isinstance(value, list)
                                               and value[0] is not None]
        info = HfApi(endpoint=os.environ.get("HF_ENDPOINT")).upload_folder(
            repo_id=self.hub_repo, folder_path=str(self.output), allow_patterns=patterns + ["training_summary.json"],
            commit_message=f"vdp train: {self.settings.model} {self.settings.training_type}, "
                           f"{self.settings.steps} steps")
        return str(info)

    def _fingerprint(self) -> Dict[str, Any]:
        values = self.settings.as_dict()
        fingerprint = {name: values[name] for name in RESUME_SETTINGS}
        fingerprint["pretrained"] = folder_identity(self.settings.pretrained)
        return fingerprint

    def _find_checkpoint(self) -> Optional[Path]:
        """The checkpoint to resume from (checked against this run's settings), or None for a new run."""
        s = self.settings
        if s.resume is None:
            return None
        if s.resume == "latest":
            found = sorted((self.output / "checkpoints").glob("checkpoint-*"))
            if not found:
                print(f"vdp train: --resume latest: no checkpoint in '{self.output / 'checkpoints'}'; starting a new "
                      "run", file=sys.stderr)
                return None
            path = found[-1]
        else:
            path = Path(s.resume)
        state = json.loads((path / "trainer_state.json").read_text())
        theirs, ours = state.get("fingerprint", {}), json.loads(json.dumps(self._fingerprint(), default=str))
        differ = [f"{k}: checkpoint {theirs.get(k)!r}, this run {ours[k]!r}" for k in ours if theirs.get(k) != ours[k]]
        if differ:
            raise ValueError(f"resume='{path}' is a checkpoint of another run; its settings differ: "
                             f"{'; '.join(d for d in differ if not d.startswith('pretrained'))}"
                             f"{'; the pretrained model differs' if any(d.startswith('pretrained') for d in differ) else ''}")
        if state["step"] > s.steps:
            raise ValueError(f"resume='{path}' is at step {state['step']}, past steps={s.steps}")
        return path

    # -- the run -----------------------------------------------------------------------------------------------------
    def _accelerator(self):
        from accelerate import Accelerator
        from accelerate.utils import DistributedDataParallelKwargs, ProjectConfiguration

        s = self.settings
        trackers = None
        if s.report_to != "none":
            try:
                import tensorboard  # noqa: F401

                trackers = "tensorboard"
            except ImportError:
                if s.report_to == "tensorboard":
                    raise ValueError("report_to='tensorboard' but tensorboard is not installed "
                                     "(pip install tensorboard)") from None
        # parts of a denoiser may get no gradient on a batch (LGVI's mask head without masks)
        kwargs = [DistributedDataParallelKwargs(find_unused_parameters=True)]
        if s.fsdp:
            from .sharding import fsdp_plugin, sharding_plan

            self.sharding = sharding_plan(self.spec, self.components)
            kwargs = {"fsdp_plugin": fsdp_plugin(self.sharding)}
        else:
            kwargs = {"kwargs_handlers": kwargs}
        return Accelerator(gradient_accumulation_steps=s.gradient_accumulation_steps, mixed_precision=s.mixed_precision,
                           log_with=trackers, cpu=_cpu_only(), **kwargs,
                           project_config=ProjectConfiguration(project_dir=str(self.output),
                                                               logging_dir=str(self.output / "logs")))

    def _prepare_output(self) -> None:
        # every process has checked the output folder (in __init__) before any of them writes into it
        self.accelerator.wait_for_everyone()
        if self.accelerator.is_main_process:
            if self.settings.overwrite and self.settings.resume is None:
                for name in TRAINER_FILES:
                    path = self.output / name
                    if path.is_dir():
                        shutil.rmtree(path)
                    elif path.exists():
                        path.unlink()
            (self.output / "checkpoints").mkdir(parents=True, exist_ok=True)
        self.accelerator.wait_for_everyone()

    def _cache(self) -> Optional[Path]:
        """The cache folder of this data, model and settings (None without ``precompute``)."""
        s = self.settings
        if not s.precompute:
            return None
        key = cache_key(self.data, s.model, s.pretrained, {"seed": s.seed})
        root = Path(s.cache_dir) if s.cache_dir else self.output / "cache"
        return root / f"{s.model}-{key}"

    def _seed_for(self, index: int) -> int:
        return (self.settings.seed * 1_000_003 + index) % 2**63

    def _precompute(self, cache: Path) -> None:
        """Encode every sample once (split over the processes) and rename the finished cache into place."""
        acc = self.accelerator
        staging = cache.with_name(f".{cache.name}.writing")
        if acc.is_main_process:
            shutil.rmtree(staging, ignore_errors=True)
            staging.mkdir(parents=True)
        acc.wait_for_everyone()
        for index in range(acc.process_index, len(self.data), acc.num_processes):
            write_cache(staging, index, *self._encode(index))
        acc.wait_for_everyone()
        if acc.is_main_process:
            finish_cache(staging, cache, len(self.data), cache.name)
        acc.wait_for_everyone()

    def _load(self) -> None:
        s, acc = self.settings, self.accelerator
        cache, reuse = self.cache_dir, self.cache_reused
        dtype = {"no": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[s.mixed_precision]
        for key, module in self.components.items():
            if isinstance(module, nn.Module):
                module.requires_grad_(False)
                if key == self.spec.denoiser_key:
                    module.to(acc.device)
                else:  # frozen encoders run in the mixed-precision dtype, as diffusers' training examples do
                    module.to(acc.device, dtype=dtype)
        self.denoiser: nn.Module = self.components[self.spec.denoiser_key]
        if cache is not None and not reuse:
            self._precompute(cache)
        if s.training_type == "lora":
            if not hasattr(self.spec, "add_lora"):
                raise ValueError(f"training_type='lora': model {s.model!r} has no LoRA support")
            self.spec.add_lora(self.components, rank=s.lora_rank, alpha=s.lora_alpha, dropout=s.lora_dropout,
                               targets=s.lora_targets)
        self.trainable = self.spec.trainable_parameters(self.components, s.training_type)
        if not self.trainable:
            raise ValueError(f"model {s.model!r} with training_type={s.training_type!r} has no parameter to train")
        for _, parameter in self.trainable:
            parameter.requires_grad_(True)
            parameter.data = parameter.data.float()
        self.checkpointed_blocks = enable_gradient_checkpointing(self.denoiser, s.gradient_checkpointing)

    def _build_optimiser(self) -> None:
        from diffusers.optimization import get_scheduler

        s, acc = self.settings, self.accelerator
        parameters = [p for _, p in self.trainable] + list(self.step.extra_parameters(self))
        if s.optimizer == "adamw8bit":
            from bitsandbytes.optim import AdamW8bit as optimiser_class
        else:
            optimiser_class = torch.optim.AdamW
        self.optimiser = optimiser_class(parameters, lr=s.learning_rate, betas=(s.adam_beta1, s.adam_beta2),
                                         weight_decay=s.weight_decay)
        # stepped once per optimiser step by the trainer (not prepared: accelerate would step it per process)
        self.lr_scheduler = get_scheduler(s.lr_scheduler, self.optimiser, num_warmup_steps=s.lr_warmup_steps,
                                          num_training_steps=s.steps)
        self.clipped = parameters
        self.wrapped, self.optimiser = acc.prepare(self.denoiser, self.optimiser)
        wrapped = self.wrapped
        acc.register_for_checkpointing(self.lr_scheduler)
        self.ema = None
        if s.ema_decay is not None:
            from diffusers.training_utils import EMAModel

            # the average of the trained parameters, checkpointed with the run and exported in their place
            self.ema = EMAModel([p for _, p in self.trainable], decay=s.ema_decay, use_ema_warmup=True)
            acc.register_for_checkpointing(self.ema)
        self.train_components = dict(self.components)
        self.train_components[self.spec.denoiser_key] = (wrapped if wrapped is self.denoiser
                                                         else _Prepared(wrapped, self.denoiser))

    def _to_device(self, batch: Mapping[str, Any]) -> Dict[str, Any]:
        device = self.accelerator.device
        return {k: v.to(device) if isinstance(v, torch.Tensor) else
                (self._to_device(v) if isinstance(v, Mapping) else v) for k, v in batch.items()}

    def _batch_indices(self, global_batch: int) -> List[int]:
        """The sample indices of data batch ``global_batch``: a seeded order per epoch, batches of one bucket."""
        size = self.settings.batch_size
        if not hasattr(self, "_epochs"):
            self._epochs: Dict[int, List[List[int]]] = {}
            self._by_bucket: Dict[Any, List[int]] = {}
            for index, bucket in enumerate(self.data.buckets):
                self._by_bucket.setdefault(bucket, []).append(index)
        by_bucket = self._by_bucket
        per_epoch = sum(len(v) // size for v in by_bucket.values())
        if per_epoch == 0:
            raise DataError(f"batch_size={size}: no bucket (height x width) holds that many samples; buckets "
                            f"{ {f'{h}x{w}': len(v) for (h, w), v in by_bucket.items()} }")
        epoch, position = divmod(global_batch, per_epoch)
        if epoch not in self._epochs:
            generator = torch.Generator().manual_seed(self._seed_for(-1 - epoch))
            order = torch.randperm(len(self.data), generator=generator).tolist()
            batches = []
            for bucket in sorted(by_bucket):
                members = [i for i in order if self.data.buckets[i] == bucket]
                batches += [members[i:i + size] for i in range(0, len(members) - size + 1, size)]
            shuffled = torch.randperm(len(batches), generator=generator).tolist()
            self._epochs = {epoch: [batches[i] for i in shuffled]}
        return self._epochs[epoch][position]

    def _micro_batch(self, global_batch: int):
        indices = self._batch_indices(global_batch)
        if self.cache_dir is not None:
            cached = CachedData(self.cache_dir, len(self.data))
            batch = self._to_device(collate_cached([cached[i] for i in indices]))
            return batch["latents"], batch["conditions"]
        batch = collate_cached([dict(zip(("latents", "conditions"), self._encode(index))) for index in indices])
        return batch["latents"], batch["conditions"]

    def _encode(self, index: int):
        """Sample ``index``'s latents and conditions (batch dimension 1). Their randomness (the VAE's posterior
        sample) is seeded by the sample, as ``--precompute`` encodes it once, so a run that encodes every step trains
        on the same latents as one that reads them from the cache."""
        batch = self._to_device(collate([self.data[index]]))
        torch.manual_seed(self._seed_for(index))
        with torch.no_grad():
            return self.spec.prepare_latents(self.components, batch), self.spec.prepare_conditions(self.components, batch)

    def _save_checkpoint(self, step: int) -> None:
        acc = self.accelerator
        checkpoints = self.output / "checkpoints"
        final = checkpoints / f"checkpoint-{step:06d}"
        staging = checkpoints / f".checkpoint-{step:06d}.writing"
        if acc.is_main_process:
            shutil.rmtree(staging, ignore_errors=True)
        acc.wait_for_everyone()
        acc.save_state(str(staging))
        acc.wait_for_everyone()
        if acc.is_main_process:
            _write_json(staging / "trainer_state.json", {"step": step, "fingerprint": self._fingerprint(),
                                                         "settings": self.settings.as_dict()})
            if final.exists():
                shutil.rmtree(final)
            os.replace(staging, final)
            limit = self.settings.checkpoints_total_limit
            if limit:
                for old in sorted(checkpoints.glob("checkpoint-*"))[:-limit]:
                    shutil.rmtree(old)
        acc.wait_for_everyone()

    def _validate(self, step: int) -> Optional[Path]:
        """A validation video of the first sample, written to ``validation/step-N.mp4`` (main process)."""
        from ..video_io import write_video

        if not self.accelerator.is_main_process:
            return None
        if self.cache_reused:
            print(f"vdp train: step {step}: no validation video, the VAE and text encoders were not loaded "
                  "(training from the precomputed cache)", file=sys.stderr)
            return None
        self.denoiser.eval()
        try:
            with torch.no_grad(), self.accelerator.autocast():
                frames = self.spec.validation_video(
                    self.components, self._to_device(collate([self.data[0]])),
                    num_inference_steps=self.settings.validation_steps,
                    generator=torch.Generator().manual_seed(self.settings.seed))
        finally:
            self.denoiser.train()
        folder = self.output / "validation"
        folder.mkdir(exist_ok=True)
        path = write_video(folder / f"step-{step:06d}.mp4", frames, fps=8)
        for tracker in self.accelerator.trackers:
            if tracker.name == "tensorboard":  # the video's frames as one row of images at this step
                tracker.log_images({"validation": np.asarray(frames, dtype=np.float32)}, step=step, dataformats="NHWC")
        return path

    def _exported_components(self) -> Dict[str, Any]:
        """The components to export: as trained, or under FSDP the full weights gathered onto a fresh copy on the
        main process (the trained denoiser's parameters are shards)."""
        if not self.settings.fsdp:
            return self.components
        state = self.accelerator.get_state_dict(self.wrapped)
        if not self.accelerator.is_main_process:
            return self.components
        s = self.settings
        components = self.spec.load_components(s.pretrained, load_encoders=not self.cache_reused)
        if s.training_type == "lora":
            self.spec.add_lora(components, rank=s.lora_rank, alpha=s.lora_alpha, dropout=s.lora_dropout,
                               targets=s.lora_targets)
        components[self.spec.denoiser_key].load_state_dict(state)
        return components

    def run(self) -> Dict[str, Any]:
        """Train, export and write ``training_summary.json``; returns the summary."""
        from tqdm.auto import tqdm

        s = self.settings
        # the components load before the process group starts: the embedded models are written and read back
        # through transformers' save_pretrained, which writes nothing on ranks other than 0 once a group exists
        self.cache_dir = self._cache()
        self.cache_reused = self.cache_dir is not None and cache_complete(self.cache_dir, len(self.data))
        self.components = self.spec.load_components(s.pretrained, load_encoders=not self.cache_reused)
        self.accelerator = acc = self._accelerator()
        self._prepare_output()
        self._load()
        self._build_optimiser()
        start = 0
        if self.resume_from is not None:
            acc.load_state(str(self.resume_from))
            start = json.loads((self.resume_from / "trainer_state.json").read_text())["step"]
        metrics_path = self.output / "metrics.jsonl"
        if acc.is_main_process:
            kept = []
            if start and metrics_path.is_file():
                kept = [line for line in metrics_path.read_text().splitlines()
                        if line and json.loads(line)["step"] <= start]
            metrics_path.write_text("".join(line + "\n" for line in kept))
        acc.init_trackers("vdp-train", config={k: v if isinstance(v, (int, float, str, bool)) else str(v)
                                                for k, v in s.as_dict().items()})
        began, loss_value, validation_videos = time.time(), None, []
        progress = tqdm(total=s.steps, initial=start, disable=not acc.is_local_main_process, desc="training")
        self.denoiser.train()
        accumulation, world = s.gradient_accumulation_steps, acc.num_processes
        for step in range(start, s.steps):
            losses, logs = [], {}
            for micro in range(accumulation):
                global_batch = (step * accumulation + micro) * world + acc.process_index
                latents, conditions = self._micro_batch(global_batch)
                generator = torch.Generator().manual_seed(self._seed_for(global_batch))
                with acc.accumulate(self.wrapped):
                    result = self.step(self, latents, conditions, generator)
                    if acc.sync_gradients and s.max_grad_norm:
                        acc.clip_grad_norm_(self.clipped, s.max_grad_norm)
                    self.optimiser.step()
                    self.optimiser.zero_grad()
                    if self.ema is not None and acc.sync_gradients:
                        self.ema.step([p for _, p in self.trainable])
                losses.append(result.loss.float())
                for name, value in result.logs.items():
                    logs.setdefault(name, []).append(value.float())
            self.lr_scheduler.step()
            loss_value = acc.reduce(torch.stack(losses).mean(), reduction="mean").item()
            record = {"step": step + 1, "loss": loss_value, "lr": self.lr_scheduler.get_last_lr()[0]}
            record.update({k: acc.reduce(torch.stack(v).mean(), reduction="mean").item() for k, v in logs.items()})
            acc.log({k: v for k, v in record.items() if k != "step"}, step=step + 1)
            if acc.is_main_process:
                with open(metrics_path, "a") as handle:
                    handle.write(json.dumps(record) + "\n")
            rate = (step + 1 - start) / max(time.time() - began, 1e-9)
            progress.set_postfix(loss=f"{loss_value:.4g}", lr=f"{record['lr']:.3g}", steps_per_s=f"{rate:.3g}")
            progress.update(1)
            if s.checkpoint_every and (step + 1) % s.checkpoint_every == 0 and step + 1 < s.steps:
                self._save_checkpoint(step + 1)
            if s.validation_every and (step + 1) % s.validation_every == 0:
                video = self._validate(step + 1)
                if video is not None:
                    validation_videos.append(str(video))
        progress.close()
        self._save_checkpoint(s.steps)
        elapsed = time.time() - began
        summary = None
        if self.ema is not None:  # the average is what the run exports
            self.ema.copy_to([p for _, p in self.trainable])
        exported = self._exported_components()
        if acc.is_main_process:
            self.spec.save(exported, str(self.output), training_type=s.training_type)
            summary = {"command": self.command, "settings": s.as_dict(), "model": s.model,
                       "training_type": s.training_type, "steps": s.steps, "resumed_from_step": start,
                       "final_loss": loss_value, "time_s": elapsed,
                       "steps_per_s": (s.steps - start) / max(elapsed, 1e-9), "processes": world,
                       "trainable_parameters": sum(p.numel() for _, p in self.trainable),
                       "gradient_checkpointed_blocks": self.checkpointed_blocks,
                       "precomputed": None if self.cache_dir is None else {"cache": str(self.cache_dir),
                                                                           "reused": self.cache_reused},
                       "encoders_loaded": not self.cache_reused, "validation_videos": validation_videos,
                       "export": "pytorch_lora_weights.safetensors" if s.training_type == "lora" else "pipeline folder",
                       **_peak_memory(acc.device)}
            _write_json(self.output / "training_summary.json", summary)
            if self.hub_repo is not None:
                summary["pushed_to_hub"] = self._push_to_hub()
                _write_json(self.output / "training_summary.json", summary)
        acc.wait_for_everyone()
        # end_training also ends the process group: nothing collective after it
        acc.end_training()
        return summary


def train(settings: TrainingSettings, step: Optional[TrainingStep] = None, command: str = "") -> Dict[str, Any]:
    """Check ``settings`` and the data, then train, export and return the summary (None on other processes)."""
    return Trainer(settings, step=step, command=command).run()
