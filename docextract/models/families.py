"""Per-family settings for vision-language models, as a registry.

Vision models disagree on how an image's size is limited: Qwen2-VL/Qwen2.5-VL
take ``min_pixels``/``max_pixels``, Idefics3/SmolVLM a longest edge. One
registry entry per family turns docextract's single pixel budget into the
``mm_processor_kwargs`` vLLM hands that family's processor. A model whose
architecture is not registered gets no extra kwargs (vLLM's defaults apply);
docextract still resizes images to the budget before sending them.
"""

from __future__ import annotations

import json
import math
import pathlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from docextract.config import DEFAULT_MIN_PIXELS

__all__ = ["ModelFamily", "register_family", "family_for", "read_architectures"]


@dataclass(frozen=True)
class ModelFamily:
    """How one family of vision-language models is configured."""

    name: str
    #: (min_pixels, max_pixels) -> mm_processor_kwargs for vLLM.
    processor_kwargs: Callable[[int | None, int], dict[str, Any]]
    #: Fewest pixels an image should have for this family's processor; smaller images are
    #: scaled up to it by preprocessing (``PreprocessOptions.min_pixels``, with a warning).
    min_pixels: int = DEFAULT_MIN_PIXELS


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
    try:
        config = json.loads((pathlib.Path(model_dir) / "config.json").read_text())
    except (OSError, ValueError):
        return []
    return list(config.get("architectures") or [])


def _qwen_kwargs(min_pixels: int | None, max_pixels: int) -> dict[str, Any]:
    # transformers 5 spells Qwen-VL's pixel bounds as size={shortest_edge: min, longest_edge: max}
    # (pixel counts, despite the names); min_pixels/max_pixels are deprecated there.
    return {"size": {"shortest_edge": min_pixels or _QWEN_MIN_PIXELS, "longest_edge": max_pixels}}


#: Qwen-VL's processor resizes to multiples of 28 px with at least 2 x 2 patches of 28.
_QWEN_MIN_PIXELS = 56 * 56


def _idefics3_kwargs(min_pixels: int | None, max_pixels: int) -> dict[str, Any]:
    # Idefics3 resizes the longest edge, then tiles it; a square of the budget's area is the cap.
    return {"size": {"longest_edge": int(math.isqrt(max_pixels))}}


register_family(
    ModelFamily("qwen-vl", _qwen_kwargs, min_pixels=_QWEN_MIN_PIXELS),
    "Qwen2VLForConditionalGeneration",
    "Qwen2_5_VLForConditionalGeneration",
)
register_family(
    # Idefics3 resizes every image to its own tile size; 56 x 56 keeps small inputs legible.
    ModelFamily("idefics3", _idefics3_kwargs, min_pixels=56 * 56),
    "Idefics3ForConditionalGeneration",
    "SmolVLMForConditionalGeneration",
)
