"""Find a model's files before an engine is started.

vLLM, asked for a model it cannot fetch, fails deep inside engine start-up
with a network traceback. Resolving the model first turns that into one clear
:class:`~docextract.errors.ModelLoadError` that names ``--model``.
"""

from __future__ import annotations

import os
import pathlib

from docextract.errors import ModelLoadError

__all__ = ["resolve_model"]


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")


def resolve_model(model: str) -> pathlib.Path:
    """Return a local directory holding ``model``: the path itself, the Hugging
    Face cache, or a download (unless ``HF_HUB_OFFLINE`` is set).

    Raises:
        ModelLoadError: the model is not local and cannot be downloaded.
    """
    path = pathlib.Path(model).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise ModelLoadError(
                f"{model}: not a model directory (no config.json); pass --model a model id or directory"
            )
        return path.resolve()
    if model.startswith((".", "/", "~")) or model.count("/") > 1:
        raise ModelLoadError(
            f"model directory {model} does not exist; pass --model an existing directory or a model id"
        )
    from huggingface_hub import snapshot_download

    try:
        return pathlib.Path(snapshot_download(model, local_files_only=True))
    except Exception:
        pass
    if _offline():
        raise ModelLoadError(
            f"model {model!r} is not in the local Hugging Face cache and HF_HUB_OFFLINE is set. "
            f"Download it first (huggingface-cli download {model}) on a machine with network access, "
            "or pass --model a local model directory (e.g. one built with `docextract tiny-model DIR`)"
        )
    try:
        return pathlib.Path(snapshot_download(model, etag_timeout=10))
    except Exception as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ModelLoadError(
            f"cannot load model {model!r}: it is not cached locally and downloading it failed ({reason[:200]}). "
            "Check network access to the Hugging Face hub, or pass --model a local model directory"
        ) from None
