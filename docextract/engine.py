"""The extraction engine: one vLLM ``AsyncLLM`` behind every front door.

The CLI, the Ray Serve replica and the Ray Data actor each build one
:class:`ExtractionEngine` and call the same methods, so prompts, structured
output parameters and validation are the same online and in batch.

Flow for one result: pages (already preprocessed) -> :mod:`docextract.prompts`
(messages, the model's chat template) -> vLLM with
``StructuredOutputsParams(json=task.engine_schema)`` -> :mod:`docextract.validate`
-> :class:`~docextract.results.ExtractionResult`.

vLLM, torch and transformers are imported when an engine is built, not when
this module is imported.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Any, Literal

from docextract.config import ExtractionConfig, SamplingConfig
from docextract.errors import DocExtractError, EngineError, InputError, ModelLoadError
from docextract.model_families import family_for, read_architectures
from docextract.model_source import resolve_model
from docextract.prompts import build_messages, render_prompt
from docextract.results import ExtractionResult, Generation, Timings
from docextract.tasks import TaskSpec
from docextract.validate import validate_output

if TYPE_CHECKING:
    from PIL import Image

    from docextract.documents import Document, Page

__all__ = ["DocumentMode", "ExtractionEngine", "cpu_only", "prepare_environment"]

DocumentMode = Literal["per_page", "document"]


def cpu_only() -> bool:
    """True when no CUDA device is visible (vLLM then runs on the CPU)."""
    import torch

    return not torch.cuda.is_available()


def prepare_environment() -> None:
    """Defaults vLLM needs on a CPU-only machine, set before vLLM is imported.

    The CPU backend otherwise reserves 4 GiB of KV cache and pins OpenMP
    threads to cores that Ray or the test runner may also use. Values already
    set in the environment win.
    """
    if cpu_only():
        os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
        os.environ.setdefault("VLLM_CPU_OMP_THREADS_BIND", "nobind")


class ExtractionEngine:
    """Owns a vLLM ``AsyncLLM`` and the model's processor; turns pages into validated results.

    Build it once per process (it loads the model) and call it concurrently:
    vLLM batches concurrent requests continuously.
    """

    def __init__(self, config: ExtractionConfig) -> None:
        self.config = config
        self.model_name = config.model_name
        self.model_path = resolve_model(config.model)
        prepare_environment()
        self._cpu = cpu_only()
        self.processor = self._load_processor()
        self.llm = self._start_llm()

    # -- construction -------------------------------------------------------------------------

    def _load_processor(self) -> Any:
        from transformers import AutoProcessor

        try:
            return AutoProcessor.from_pretrained(str(self.model_path), trust_remote_code=self.config.trust_remote_code)
        except Exception as exc:
            raise ModelLoadError(f"cannot load the processor of {self.config.model}: {exc}") from None

    def engine_args(self) -> dict[str, Any]:
        """The ``AsyncEngineArgs`` keyword arguments this config implies."""
        cfg = self.config
        family = family_for(read_architectures(self.model_path))
        enforce_eager = cfg.enforce_eager or self._cpu  # CPU: graph compilation costs more than it saves
        budget = cfg.preprocess
        # No pixel budget (max_pixels None): leave the processor's own defaults.
        processor_kwargs = family.processor_kwargs(budget.min_pixels, budget.max_pixels) if budget.max_pixels else {}
        args: dict[str, Any] = {
            "model": str(self.model_path),
            "served_model_name": cfg.model_name,
            "dtype": cfg.dtype,
            "max_model_len": cfg.max_model_len,
            "tensor_parallel_size": cfg.tensor_parallel_size,
            "gpu_memory_utilization": cfg.gpu_memory_utilization,
            "enforce_eager": enforce_eager,
            "trust_remote_code": cfg.trust_remote_code,
            "limit_mm_per_prompt": {"image": cfg.max_images_per_prompt},
            "mm_processor_kwargs": processor_kwargs or None,
            "structured_outputs_config": {
                "backend": cfg.structured_output_backend,
                "disable_any_whitespace": cfg.disable_any_whitespace,
            },
            "disable_log_stats": True,
        }
        if cfg.max_num_seqs is not None:
            args["max_num_seqs"] = cfg.max_num_seqs
        args.update(cfg.engine_kwargs)
        return args

    def _start_llm(self) -> Any:
        from vllm.engine.arg_utils import AsyncEngineArgs
        from vllm.v1.engine.async_llm import AsyncLLM

        try:
            return AsyncLLM.from_engine_args(AsyncEngineArgs(**self.engine_args()))
        except Exception as exc:
            raise ModelLoadError(f"vLLM could not start {self.config.model}: {type(exc).__name__}: {exc}") from exc

    # -- generation ---------------------------------------------------------------------------

    def sampling_params(
        self, schema: dict[str, Any], sampling: SamplingConfig | None = None, *, stream: bool = False
    ) -> Any:
        """vLLM ``SamplingParams`` that enforce ``schema`` with the configured backend."""
        from vllm import SamplingParams
        from vllm.sampling_params import RequestOutputKind, StructuredOutputsParams

        s = sampling or self.config.sampling
        return SamplingParams(
            temperature=s.temperature,
            top_p=s.top_p,
            max_tokens=s.max_tokens,
            seed=s.seed,
            repetition_penalty=s.repetition_penalty,
            structured_outputs=StructuredOutputsParams(
                json=schema, disable_any_whitespace=self.config.disable_any_whitespace
            ),
            output_kind=RequestOutputKind.DELTA if stream else RequestOutputKind.FINAL_ONLY,
        )

    def build_prompt(
        self, task: TaskSpec, images: Sequence[Image.Image], page_numbers: list[int] | None = None
    ) -> dict[str, Any]:
        """The vLLM prompt (text from the chat template + images) for ``task`` on ``images``."""
        messages = build_messages(
            task,
            len(images),
            include_schema=self.config.include_schema_in_prompt,
            system_prompt=self.config.system_prompt,
            page_numbers=page_numbers,
        )
        return self.prompt_from_messages(messages, images)

    def prompt_from_messages(self, messages: list[dict[str, Any]], images: Sequence[Image.Image]) -> dict[str, Any]:
        """A vLLM prompt from chat messages whose image parts are ``{"type": "image"}`` placeholders."""
        if len(images) > self.config.max_images_per_prompt:
            raise InputError(
                f"{len(images)} images in one prompt; this engine allows at most {self.config.max_images_per_prompt} "
                "(max_images_per_prompt)",
                kind="too_many_images",
                http_status=413,
            )
        prompt: dict[str, Any] = {"prompt": render_prompt(self.processor, messages)}
        if images:
            prompt["multi_modal_data"] = {"image": list(images)}
        return prompt

    async def generate(
        self, prompt: dict[str, Any], schema: dict[str, Any], sampling: SamplingConfig | None = None
    ) -> Generation:
        """Run one prompt under ``schema`` to completion."""
        params = self.sampling_params(schema, sampling)
        request_id = uuid.uuid4().hex
        final = None
        try:
            async for output in self.llm.generate(prompt, params, request_id):
                final = output
        except asyncio.CancelledError:
            await self.llm.abort(request_id)
            raise
        except Exception as exc:
            raise _request_error(exc) from None
        if final is None:
            raise EngineError("the engine returned no output")
        return Generation.from_vllm(final)

    async def stream(
        self, prompt: dict[str, Any], schema: dict[str, Any], sampling: SamplingConfig | None = None
    ) -> AsyncIterator[tuple[str, str | None, Any]]:
        """Yield ``(text delta, finish_reason, raw output)`` as tokens arrive."""
        params = self.sampling_params(schema, sampling, stream=True)
        request_id = uuid.uuid4().hex
        try:
            async for output in self.llm.generate(prompt, params, request_id):
                completion = output.outputs[0]
                yield completion.text, completion.finish_reason, output
        except (asyncio.CancelledError, GeneratorExit):
            await self.llm.abort(request_id)
            raise
        except Exception as exc:
            raise _request_error(exc) from None

    # -- extraction ---------------------------------------------------------------------------

    async def extract(
        self,
        images: Sequence[Image.Image],
        task: TaskSpec,
        *,
        source: str,
        pages: list[int] | None = None,
        sampling: SamplingConfig | None = None,
        preprocess_s: float = 0.0,
    ) -> ExtractionResult:
        """Extract ``task`` from ``images`` in one prompt: one image, one page, or a whole document."""
        pages = list(pages or [])
        started = time.perf_counter()
        base = {
            "id": result_id(source, pages),
            "source": source,
            "pages": pages,
            "task": task.name,
            "task_version": task.version,
            "model": self.model_name,
        }
        try:
            prompt = self.build_prompt(task, images, pages or None)
            generation = await self.generate(prompt, task.engine_schema, sampling)
        except DocExtractError as exc:
            elapsed = time.perf_counter() - started
            return ExtractionResult(
                **base,
                error=exc.message,
                error_kind=exc.kind,
                timings=Timings(preprocess_s=preprocess_s, total_s=preprocess_s + elapsed),
            )
        elapsed = time.perf_counter() - started
        outcome = validate_output(generation.text, task, generation.finish_reason)
        return ExtractionResult(
            **base,
            data=outcome.data,
            raw_text=generation.text,
            valid=outcome.valid,
            errors=outcome.errors,
            finish_reason=generation.finish_reason,
            usage=generation.usage,
            timings=Timings(
                preprocess_s=preprocess_s,
                queue_s=generation.queue_s,
                first_token_s=generation.first_token_s,
                generation_s=elapsed,
                total_s=preprocess_s + elapsed,
            ),
        )

    async def extract_document(
        self,
        document: Document,
        task: TaskSpec,
        *,
        mode: DocumentMode = "per_page",
        sampling: SamplingConfig | None = None,
        preprocess_s: float = 0.0,
    ) -> list[ExtractionResult]:
        """Results for a loaded document: one per page (``per_page``, run concurrently),
        or one for all pages in one prompt (``document``). An image is a one-page document.
        ``preprocess_s``, the time it took to load, is shared among the page results."""
        numbered = document.kind == "pdf"
        if mode == "document" or len(document.pages) == 1:
            pages: list[Page] = list(document.pages)
            return [
                await self.extract(
                    [p.image for p in pages],
                    task,
                    source=document.name,
                    pages=[p.page_number for p in pages] if numbered else [],
                    sampling=sampling,
                    preprocess_s=preprocess_s,
                )
            ]
        if mode != "per_page":
            raise InputError(f"unknown document mode {mode!r}; use 'per_page' or 'document'", kind="invalid_mode")
        share = preprocess_s / max(1, len(document.pages))
        return list(
            await asyncio.gather(
                *(
                    self.extract(
                        [page.image],
                        task,
                        source=document.name,
                        pages=[page.page_number] if numbered else [],
                        sampling=sampling,
                        preprocess_s=share,
                    )
                    for page in document.pages
                )
            )
        )

    # -- lifecycle ----------------------------------------------------------------------------

    async def check_health(self) -> None:
        """Raise if the engine is dead."""
        await self.llm.check_health()

    def shutdown(self) -> None:
        """Stop the engine's processes."""
        llm, self.llm = getattr(self, "llm", None), None
        if llm is not None:
            llm.shutdown()


def _request_error(exc: Exception) -> Exception:
    """Map an exception from vLLM for one request to docextract's errors.

    vLLM's client errors (prompt longer than ``max_model_len``, an image the
    processor refuses) are the caller's input: :class:`InputError`. A dead
    engine is re-raised as is, so health checks and supervisors see it; any
    other failure is an :class:`EngineError` for this request only.
    """
    from vllm.exceptions import VLLMClientError
    from vllm.v1.engine.exceptions import EngineDeadError

    if isinstance(exc, EngineDeadError):
        return exc
    if isinstance(exc, (VLLMClientError, ValueError, TypeError)):
        message = str(exc).split(". Make sure")[0]
        return InputError(f"the engine rejected the request: {message}", kind="rejected_by_engine")
    return EngineError(f"generation failed: {type(exc).__name__}: {exc}")


def result_id(source: str, pages: list[int]) -> str:
    """Stable result id: ``name``, ``name#page=3`` or ``name#pages=1-4``."""
    if not pages:
        return source
    if len(pages) == 1:
        return f"{source}#page={pages[0]}"
    if pages == list(range(pages[0], pages[-1] + 1)):
        return f"{source}#pages={pages[0]}-{pages[-1]}"
    return f"{source}#pages={','.join(map(str, pages))}"
