"""The specification of each model family, by slug, imported only when asked for (torch-free registry)."""

import importlib

# slug -> "module:ClassName" of this package; every entry is a ModelSpecification subclass
SPECIFICATIONS = {
    "das": "das:DaSSpecification",
    "lgvi": "lgvi:LGVISpecification",
    "repvideo": "repvideo:RepVideoSpecification",
    "vchitect": "vchitect:VchitectSpecification",
}


def get_specification(name: str):
    """A new specification object of the model family ``name`` (one of :data:`SPECIFICATIONS`)."""
    if name not in SPECIFICATIONS:
        allowed = ", ".join(sorted(SPECIFICATIONS)) or "none registered"
        raise ValueError(f"model={name!r} is not a model family the trainer knows; allowed: {allowed}")
    module, cls = SPECIFICATIONS[name].split(":")
    return getattr(importlib.import_module(f"{__package__}.{module}"), cls)()
