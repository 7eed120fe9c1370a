"""Latent previews of the pack's samplers in ComfyUI: which previewer a run gets, under ComfyUI's preview setting.

ComfyUI's ``--preview-method`` decides: ``none`` (its default) sends no previews; ``latent2rgb`` and ``auto`` send the
linear latent-to-RGB previews of ``diffusers_pipelines/latent_preview.py``; ``taesd`` has no TAESD decoder for video
latents and sends the same latent2rgb previews, saying so once. A pipeline whose VAE has no coefficients sends none,
with one warning per run naming its VAE. The projection itself lives in ``diffusers_pipelines/latent_preview.py``.
"""

import logging

LOGGER = logging.getLogger("video_diffusion_pack")
# ComfyUI sends previews at most this large when its settings do not say (its MAX_PREVIEW_RESOLUTION before
# --preview-size existed)
DEFAULT_PREVIEW_SIZE = 512
PREVIEW_FORMAT = "JPEG"
_said = set()


def _say_once(message: str) -> None:
    if message not in _said:
        _said.add(message)
        LOGGER.warning(message)


def preview_method() -> str:
    """ComfyUI's preview setting as its value: ``"none"``, ``"auto"``, ``"latent2rgb"`` or ``"taesd"``."""
    from comfy.cli_args import args

    method = args.preview_method
    return getattr(method, "value", method)


def preview_size() -> int:
    from comfy.cli_args import args

    return int(getattr(args, "preview_size", DEFAULT_PREVIEW_SIZE))


def previewer_for_run(pipeline):
    """The ``LatentPreviewer`` of ``pipeline`` for this run, or None (previews off, or no coefficients: warned)."""
    from ..diffusers_pipelines.latent_preview import describe_vae, latent_layout_of, previewer_for

    method = preview_method()
    if method == "none":
        return None
    if method == "taesd":
        _say_once("video_diffusion_pack: --preview-method taesd has no TAESD decoder for video latents; the pack's "
                  "samplers send latent2rgb previews")
    previewer = previewer_for(pipeline)
    if previewer is None:
        vae = getattr(pipeline, "vae", None)
        if latent_layout_of(pipeline) is None:
            what = f"{type(pipeline).__name__} has a latent layout the pack does not know"
        else:
            what = f"no latent2rgb coefficients for its VAE ({describe_vae(vae)})"
        LOGGER.warning(f"video_diffusion_pack: no previews for this run: {what}; sampling goes on without them")
    return previewer


def preview_image(previewer, latents):
    """What ComfyUI's progress bar takes as a preview: ``(format, PIL image, max size)``, as core samplers send."""
    return (PREVIEW_FORMAT, previewer(latents), preview_size())
