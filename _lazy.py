"""Lazy public names for the package's ``__init__`` modules: imported on first access, so importing stays torch-free."""

import importlib
import sys
from typing import Callable, Dict, List, Tuple


def lazy_exports(module_name: str, exports: Dict[str, str]) -> Tuple[Callable[[str], object], Callable[[], List[str]]]:
    """The ``__getattr__`` and ``__dir__`` of module ``module_name`` for ``exports`` (public name -> defining module).

    Module paths are relative to ``module_name`` (``".pipeline"``, ``"...models.das_transformer"``); a name is imported
    once, on first access, and kept in the module's globals.
    """

    def __getattr__(name: str):
        if name in exports:
            value = getattr(importlib.import_module(exports[name], module_name), name)
            setattr(sys.modules[module_name], name, value)
            return value
        raise AttributeError(f"module {module_name!r} has no attribute {name!r}")

    def __dir__() -> List[str]:
        return sorted(set(vars(sys.modules[module_name])) | set(exports))

    return __getattr__, __dir__
