"""`models/` exports every model class (a diffusers ModelMixin) its modules define; the shared bases live in private
modules (`_cogvideox.py`, `_checked.py`)."""

import importlib
import inspect
import pkgutil

from diffusers import ModelMixin

import video_diffusion_pack.models as models


def test_models_package_exports_every_public_module_class_it_defines():
    defined = set()
    for info in pkgutil.iter_modules(models.__path__):
        module = importlib.import_module(f"{models.__name__}.{info.name}")
        for name, value in vars(module).items():
            if (inspect.isclass(value) and value.__module__ == module.__name__ and issubclass(value, ModelMixin)
                    and not name.startswith("_") and not info.name.startswith("_")):
                defined.add(name)
    assert defined and defined <= set(models.__all__)
    assert all(getattr(models, name) is not None for name in models.__all__)
