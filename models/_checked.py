"""`from_pretrained` for the pack's model classes that refuses a folder whose weights do not fit the class or are not
finite, naming the file and the keys or tensor at fault."""

import os
from typing import Optional

import torch

from .checkpoint import check_checkpoint, weights_file_of


class CheckedLoadingMixin:
    """Checked `ModelMixin.from_pretrained`: put it before `ModelMixin` in the bases.

    Before loading a local folder, its key set and shapes are checked against the class built on the meta device
    from the folder's config (`check_checkpoint`), and `_check_folder_config` may refuse the config. After loading,
    every floating parameter and buffer must be finite.
    """

    @classmethod
    def _check_folder_config(cls, folder: str, config: dict) -> None:
        """Raises ValueError when `config` (read from `folder`) is not one this class loads; none by default."""

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, subfolder: Optional[str] = None, **kwargs):
        """`ModelMixin.from_pretrained`, after checking a local folder's config, keys and shapes against this class;
        weights that are NaN or infinite are refused with the file and the first such tensor named."""
        folder = os.path.join(str(pretrained_model_name_or_path), subfolder or "")
        local = os.path.isdir(folder)
        if local:
            config = cls.load_config(folder)
            cls._check_folder_config(folder, config)
            check_checkpoint(cls, folder, config, kwargs.get("variant"), kwargs.get("use_safetensors"))
        model = super().from_pretrained(pretrained_model_name_or_path, subfolder=subfolder, **kwargs)
        bad = [
            (name, tensor) for name, tensor in (*model.named_parameters(), *model.named_buffers())
            if tensor.is_floating_point() and tensor.device.type != "meta" and not torch.isfinite(tensor).all()
        ]
        if bad:
            name, tensor = bad[0]
            where = weights_file_of(folder, name, kwargs.get("variant")) if local else folder
            raise ValueError(
                f"{where} holds non-finite weights (NaN or infinity) "
                f"for {cls.__name__}: first {name!r} {tuple(tensor.shape)}, {len(bad)} tensor(s) in all; "
                "the checkpoint is damaged"
            )
        return model
