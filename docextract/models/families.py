"""Per-family settings for vision-language models, as a registry.

Vision models disagree on how an image's size is limited: Qwen2-VL/Qwen2.5-VL
take ``min_pixels``/``max_pixels``, Idefics3/SmolVLM a longest edge. One
registry entry per family turns docextract's single pixel budget into the
``mm_processor_kwargs`` vLLM hands that family's processor, and says the
family's smallest useful input: images below it are scaled up by preprocessing
(with an ``upscaled`` warning) when the user sets no ``min_pixels``
(:func:`model_min_pixels`, applied to every :class:`~docextract.config.ExtractionConfig`).
A model whose architecture is not registered gets no extra kwargs (vLLM's
defaults apply) and :data:`GENERIC_MIN_PIXELS`; docextract still resizes images
to the budget before sending them.
"""

from __future__ import annotations

import json
import math
import pathlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = [
    "GENERIC_MIN_PIXELS",
    "IDEFICS3_MIN_PIXELS",
    "ModelFamily",
    "PIXTRAL_MIN_PIXELS",
    "QWEN_VL_MIN_PIXELS",
    "family_for",
    "find_model_file",
    "model_family",
    "model_input_size",
    "model_min_pixels",
    "read_architectures",
    "register_family",
]

#: Qwen2-VL / Qwen2.5-VL: 14-px patches merged 2 x 2 into 28-px tokens, and at least 2 x 2 of
#: those. transformers' ``smart_resize`` (``models/qwen2_vl/image_processing_qwen2_vl.py``)
#: defaults ``min_pixels`` to ``56 * 56``, as does ``Qwen2VLImageProcessor.size["shortest_edge"]``.
QWEN_VL_MIN_PIXELS = 56 * 56
#: Idefics3 / SmolVLM: the processor scales every image to a multiple of the vision encoder's
#: square tile, ``max_image_size["longest_edge"]`` (``Idefics3ImageProcessor`` and
#: ``SmolVLMImageProcessor`` both default it to 364; SmolVLM checkpoints set 384 or 512 in
#: their image processor settings, read by :func:`model_min_pixels`). Below one tile the encoder sees
#: an image its processor enlarged.
IDEFICS3_MIN_PIXELS = 364 * 364
#: Pixtral (and Mistral 3, which uses ``PixtralImageProcessor``): 16-px patches
#: (``PixtralImageProcessor.patch_size``); an image becomes ceil(h/16) x ceil(w/16) tokens and is
#: never scaled up, so one patch is its smallest input.
PIXTRAL_MIN_PIXELS = 16 * 16
#: A model docextract does not know: the Qwen-VL minimum (the default model's family).
GENERIC_MIN_PIXELS = QWEN_VL_MIN_PIXELS


@dataclass(frozen=True)
class ModelFamily:
    """How one family of vision-language models is configured."""

    name: str
    #: (min_pixels, max_pixels) -> mm_processor_kwargs for vLLM.
    processor_kwargs: Callable[[int | None, int], dict[str, Any]]
    #: Fewest pixels an image should have for this family's processor; smaller images are
    #: scaled up to it by preprocessing (``PreprocessOptions.min_pixels``, with a warning).
    min_pixels: int = GENERIC_MIN_PIXELS
    #: The same minimum as a checkpoint's image processor settings state it (None: not stated).
    min_pixels_in: Callable[[dict[str, Any]], int | None] = lambda preprocessor: None
    #: (width, height, min_pixels, max_pixels) -> the (width, height) this family's image processor
    #: resizes such an image to under :attr:`processor_kwargs`' bounds; None where that is not known.
    #: An image already at that size is not resized again by the processor (:func:`model_input_size`).
    input_size: Callable[[int, int, int | None, int], tuple[int, int] | None] | None = None

    def minimum(self, preprocessor: dict[str, Any] | None = None) -> int:
        """The family's minimum, or a checkpoint's own from its preprocessor config."""
        try:
            stated = self.min_pixels_in(preprocessor or {})
        except (TypeError, ValueError, AttributeError):
            stated = None
        return stated if isinstance(stated, int) and stated > 0 else self.min_pixels


_FAMILIES: dict[str, ModelFamily] = {}
_DEFAULT = ModelFamily("generic", lambda min_pixels, max_pixels: {})


def register_family(family: ModelFamily, *architectures: str) -> ModelFamily:
    """Register ``family`` for the Hugging Face ``architectures`` names given."""
    for arch in architectures:
        _FAMILIES[arch] = family
    return family


def family_for(architectures: list[str] | None) -> ModelFamily:
    """The family of a model from its config's ``architectures`` (generic if unknown)."""
    for arch in architectures or []:
        if arch in _FAMILIES:
            return _FAMILIES[arch]
    return _DEFAULT


def read_architectures(model_dir: str | pathlib.Path) -> list[str]:
    """``architectures`` from a local model directory's config.json ([] if unreadable)."""
    return list(_read_json(pathlib.Path(model_dir) / "config.json").get("architectures") or [])


def find_model_file(model: str, filename: str) -> pathlib.Path | None:
    """``filename`` of ``model`` (a local directory, or a Hugging Face id already in the local
    cache), without downloading anything; None when it is not on this machine."""
    path = pathlib.Path(model).expanduser()
    if path.is_dir():
        found = path / filename
        return found if found.is_file() else None
    if model.count("/") != 1 or model.startswith((".", "/", "~")):
        return None
    try:
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(model, filename)
    except Exception:  # noqa: BLE001 - an invalid id or an unreadable cache: not on this machine
        return None
    return pathlib.Path(cached) if isinstance(cached, str) else None


def model_family(model: str) -> ModelFamily:
    """The family of ``model`` (a local directory, or a Hugging Face id in the local cache), from its
    config.json; the generic family when that is not on this machine."""
    config = find_model_file(model, "config.json")
    return family_for(read_architectures(config.parent) if config is not None else [])


def model_min_pixels(model: str) -> int:
    """The smallest input of ``model``'s family (:attr:`ModelFamily.minimum`), read from the
    model's config.json and image processor settings where they are on this machine;
    :data:`GENERIC_MIN_PIXELS` for a model that is not (or is of no registered family)."""
    return model_family(model).minimum(_image_processor_settings(model))


def model_input_size(
    family: ModelFamily, size: tuple[int, int], min_pixels: int | None, max_pixels: int | None
) -> tuple[int, int] | None:
    """The (width, height) ``family``'s image processor turns an image of ``size`` into under the
    pixel budget (the bounds :attr:`ModelFamily.processor_kwargs` gives it), or None where that is not
    known (no budget: the checkpoint's own bounds apply; a family without :attr:`ModelFamily.input_size`),
    or where the processor would resize an image of that size again (Qwen-VL's rounding at extreme
    aspect ratios or budgets below its minimum): an image brought to it would then not become what the
    original becomes."""
    if family.input_size is None or not max_pixels:
        return None
    target = family.input_size(size[0], size[1], min_pixels, max_pixels)
    if target is None or family.input_size(target[0], target[1], min_pixels, max_pixels) != target:
        return None
    return target


def _image_processor_settings(model: str) -> dict[str, Any]:
    # transformers 4 saved them as preprocessor_config.json (most checkpoints on the hub);
    # transformers 5 saves them inside processor_config.json, under "image_processor".
    found = find_model_file(model, "preprocessor_config.json")
    if found is not None:
        return _read_json(found)
    found = find_model_file(model, "processor_config.json")
    settings = _read_json(found).get("image_processor") if found is not None else None
    return settings if isinstance(settings, dict) else {}


def _read_json(path: pathlib.Path) -> dict[str, Any]:
    try:
        loaded = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return loaded if isinstance(loaded, dict) else {}


def _qwen_kwargs(min_pixels: int | None, max_pixels: int) -> dict[str, Any]:
    # transformers 5 spells Qwen-VL's pixel bounds as size={shortest_edge: min, longest_edge: max}
    # (pixel counts, despite the names); min_pixels/max_pixels are deprecated there.
    return {"size": {"shortest_edge": min_pixels or QWEN_VL_MIN_PIXELS, "longest_edge": max_pixels}}


#: Qwen2-VL / Qwen2.5-VL images are cut into 14-px patches merged 2 x 2: both sides a multiple of 28.
QWEN_VL_FACTOR = 28


def _qwen_input_size(width: int, height: int, min_pixels: int | None, max_pixels: int) -> tuple[int, int] | None:
    # transformers' smart_resize (models/qwen2_vl/image_processing_qwen2_vl.py), which
    # Qwen2VLImageProcessor applies with the size bounds of _qwen_kwargs (taken from it, so the two
    # cannot differ); an image already at its result is left as it is (torchvision's resize returns
    # an image of the asked size untouched). Restated, not imported: that module brings torch and
    # transformers (5 s measured) into the CPU stage's workers, which import neither; the tests hold
    # the two equal (tests/test_model_families.py).
    bounds = _qwen_kwargs(min_pixels, max_pixels)["size"]
    min_pixels, max_pixels = bounds["shortest_edge"], bounds["longest_edge"]
    factor = QWEN_VL_FACTOR
    if min(width, height) < 1 or max(width, height) / min(width, height) > 200:
        return None  # the processor refuses it: leave the image, and the error, to it
    h_bar = round(height / factor) * factor
    w_bar = round(width / factor) * factor
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt((height * width) / max_pixels)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return w_bar, h_bar


def _qwen_min(preprocessor: dict[str, Any]) -> int | None:
    # Checkpoints state it as min_pixels (transformers 4) or size.shortest_edge (5).
    return preprocessor.get("min_pixels") or (preprocessor.get("size") or {}).get("shortest_edge")


def _idefics3_kwargs(min_pixels: int | None, max_pixels: int) -> dict[str, Any]:
    # Idefics3 resizes the longest edge, then tiles it; a square of the budget's area is the cap.
    return {"size": {"longest_edge": int(math.isqrt(max_pixels))}}


def _idefics3_min(preprocessor: dict[str, Any]) -> int | None:
    tile = (preprocessor.get("max_image_size") or {}).get("longest_edge")
    return tile * tile if isinstance(tile, int) else None


def _pixtral_min(preprocessor: dict[str, Any]) -> int | None:
    patch = preprocessor.get("patch_size")
    if isinstance(patch, dict):
        return int(patch["height"]) * int(patch["width"])
    return patch * patch if isinstance(patch, int) else None


register_family(
    ModelFamily(
        "qwen-vl", _qwen_kwargs, min_pixels=QWEN_VL_MIN_PIXELS, min_pixels_in=_qwen_min, input_size=_qwen_input_size
    ),
    "Qwen2VLForConditionalGeneration",
    "Qwen2_5_VLForConditionalGeneration",
)
register_family(
    ModelFamily("idefics3", _idefics3_kwargs, min_pixels=IDEFICS3_MIN_PIXELS, min_pixels_in=_idefics3_min),
    "Idefics3ForConditionalGeneration",
    "SmolVLMForConditionalGeneration",
)
register_family(
    # vLLM's Pixtral reads images through mistral_common or the HF processor by format;
    # its own defaults (longest edge 1024) apply, and docextract resizes to the budget first.
    ModelFamily(
        "pixtral", lambda min_pixels, max_pixels: {}, min_pixels=PIXTRAL_MIN_PIXELS, min_pixels_in=_pixtral_min
    ),
    "PixtralForConditionalGeneration",
    "Mistral3ForConditionalGeneration",
)
