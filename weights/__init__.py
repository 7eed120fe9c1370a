"""Official checkpoints: the manifest, their state on disk, and their download and verification from the Hub."""

from .download import (
    DownloadReport,
    GatedRepoAccessError,
    HashMismatchError,
    LocalFilesDifferError,
    WeightsDownloadError,
    download_entry,
)
from .local import MISSING, PRESENT, VERIFIED, LocalState, local_state
from .manifest import (
    MANIFEST_PATH,
    MODELS_DIR_VARIABLE,
    MODELS_SUBFOLDER,
    SCHEMA_PATH,
    Manifest,
    ManifestFile,
    UnknownEntryError,
    WeightsEntry,
    comfyui_models_root,
    default_models_root,
    find_local_folder,
    load_manifest,
    missing_pack_classes,
)

__all__ = [
    "DownloadReport",
    "GatedRepoAccessError",
    "HashMismatchError",
    "LocalFilesDifferError",
    "LocalState",
    "MANIFEST_PATH",
    "MISSING",
    "MODELS_DIR_VARIABLE",
    "MODELS_SUBFOLDER",
    "Manifest",
    "ManifestFile",
    "PRESENT",
    "SCHEMA_PATH",
    "UnknownEntryError",
    "VERIFIED",
    "WeightsDownloadError",
    "WeightsEntry",
    "comfyui_models_root",
    "default_models_root",
    "download_entry",
    "find_local_folder",
    "load_manifest",
    "local_state",
    "missing_pack_classes",
]
