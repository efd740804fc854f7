"""Built-in extraction tasks.

Each module here defines one task the way labelr does (``OUTPUT_SCHEMA`` +
``INSTRUCTIONS``): ``NAME``, ``VERSION``, ``INSTRUCTIONS`` and ``Model``, the
Pydantic model whose JSON Schema the engine enforces. This package is pure: it
imports pydantic only, never ray, vllm or torch, so clients can import it to
build requests or validate results.

Bounds (``max_length``, ``max_items``) are part of each schema on purpose: they
cap what a model can emit, keep constrained decoding finite and make a runaway
generation fail fast instead of filling ``max_tokens``.
"""

from __future__ import annotations

from types import ModuleType

from schemas import animals, image_card, invoice, price_tag

__all__ = ["BUILTIN_TASK_MODULES"]

#: Task name -> module defining NAME, VERSION, INSTRUCTIONS and Model.
BUILTIN_TASK_MODULES: dict[str, ModuleType] = {
    module.NAME: module for module in (image_card, invoice, price_tag, animals)
}
