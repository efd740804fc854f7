"""The extraction engine: one vLLM ``AsyncLLM`` behind every front door.

The CLI, the Ray Serve replica and the Ray Data actor each build one
:class:`ExtractionEngine`; every front door turns its request into an
:class:`~docextract.requests.ExtractionRequest` and ends in :meth:`ExtractionEngine.run`
(or :meth:`~ExtractionEngine.run_stream`), so prompts, structured output parameters,
vLLM output conversion and validation happen once, the same online and in batch.

Flow for one result: request (pages already preprocessed) -> :meth:`~ExtractionEngine.prompt_for`
(:mod:`docextract.prompts` messages or the client's own, the model's chat template) -> vLLM
with ``StructuredOutputsParams(json=task.engine_schema)`` -> :mod:`docextract.results`
(vLLM output converted) -> :mod:`docextract.validate` -> :class:`~docextract.results.ExtractionResult`.

vLLM, torch and transformers are imported when an engine is built, not when
this module is imported.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Any

from docextract import engine_start
from docextract.config import DOCUMENT, PER_PAGE, DocumentMode, ExtractionConfig, SamplingConfig
from docextract.document_mode import run_document
from docextract.errors import DocExtractError, InputError, ModelLoadError
from docextract.generation import confidence_fields, generate_final, generate_steps
from docextract.host_threads import one_host_thread
from docextract.models.dtype import engine_dtype
from docextract.models.families import family_for, read_architectures
from docextract.models.source import resolve_model
from docextract.preprocess.pages import PromptGroup, blank_skip_message, prompt_groups, result_id
from docextract.prompts import build_messages, render_prompt
from docextract.requests import ExtractionRequest
from docextract.results import (
    ExtractionDelta,
    ExtractionResult,
    Generation,
    Timings,
)
from docextract.tasks import TaskSpec
from docextract.validate import validate_output

if TYPE_CHECKING:
    from PIL import Image

    from docextract.preprocess.documents import Document

__all__ = ["FREE_TEXT_TASK", "ExtractionEngine", "check_image_count", "cpu_only", "prepare_environment"]


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


#: The task name of a result generated without a schema.
FREE_TEXT_TASK = "text"


def check_image_count(count: int, limit: int) -> None:
    """Refuse a prompt with more images than ``max_images_per_prompt``: the engine's own guard,
    also called by the online ingress before it fetches or decodes anything.

    Raises:
        InputError: ``too_many_images``.
    """
    if count > limit:
        raise InputError(
            f"{count} images in one prompt; this model takes at most {limit} (max_images_per_prompt)",
            kind="too_many_images",
        )


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
        # On a CPU, vLLM's engine and worker processes import their modules on another core while this one
        # imports its own (docextract.engine_start): started before this process imports transformers, vLLM.
        parallel = {"tensor_parallel_size": config.tensor_parallel_size, **config.engine_kwargs}  # imports nothing
        self._preloaded = engine_start.preload_for(parallel, cpu=self._cpu)
        self.processor = self._load_processor()
        self.llm = self._start_llm()
        one_host_thread()

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
            "dtype": engine_dtype(cfg.dtype, cpu=self._cpu),
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
            "logprobs_mode": cfg.logprobs_mode,
        }
        if cfg.max_num_seqs is not None:
            args["max_num_seqs"] = cfg.max_num_seqs
        args.update(cfg.engine_kwargs)
        return args

    def _start_llm(self) -> Any:
        from vllm.engine.arg_utils import AsyncEngineArgs
        from vllm.v1.engine.async_llm import AsyncLLM

        try:
            with engine_start.vllm_starting(self._preloaded):
                return AsyncLLM.from_engine_args(AsyncEngineArgs(**self.engine_args()))
        except Exception as exc:
            raise ModelLoadError(f"vLLM could not start {self.config.model}: {type(exc).__name__}: {exc}") from exc

    # -- the one extraction path --------------------------------------------------------------

    def sampling_params(
        self,
        schema: dict[str, Any] | None,
        sampling: SamplingConfig | None = None,
        *,
        stream: bool = False,
        logprobs: bool = False,
        top_logprobs: int = 0,
        backend: str | None = None,
    ) -> Any:
        """vLLM ``SamplingParams`` that enforce ``schema`` (None: free text) with ``backend`` (default: the
        configured one). ``logprobs`` asks for the sampled tokens' log-probabilities (vLLM's ``logprobs=0``)."""
        from vllm import SamplingParams
        from vllm.sampling_params import RequestOutputKind, StructuredOutputsParams

        s = sampling or self.config.sampling
        ws = self.config.disable_any_whitespace
        so = None if schema is None else StructuredOutputsParams(json=schema, disable_any_whitespace=ws)
        if so is not None and backend not in (None, self.config.structured_output_backend):
            so._backend = backend  # vLLM's own field: docextract.vllm_plugin runs the request on it
        return SamplingParams(
            temperature=s.temperature,
            top_p=s.top_p,
            max_tokens=s.max_tokens,
            seed=s.seed,
            repetition_penalty=s.repetition_penalty,
            top_k=s.top_k,
            stop=s.stop,
            logprobs=top_logprobs if logprobs else None,
            structured_outputs=so,
            output_kind=RequestOutputKind.DELTA if stream else RequestOutputKind.FINAL_ONLY,
        )

    def build_prompt(
        self, task: TaskSpec, images: Sequence[Image.Image], page_numbers: list[int] | None = None
    ) -> dict[str, Any]:
        """The vLLM prompt (text from the chat template + images) for ``task`` on ``images``."""
        return self.prompt_for(ExtractionRequest(task=task, images=list(images), pages=page_numbers or []))

    def prompt_for(self, request: ExtractionRequest) -> dict[str, Any]:
        """The vLLM prompt of ``request``: its messages (or the task's own), rendered by the
        model's chat template, with its images.

        Raises:
            InputError: ``too_many_images``.
        """
        check_image_count(len(request.images), self.config.max_images_per_prompt)
        messages = request.messages
        if messages is None and request.task is None:
            raise InputError("a request without a task needs the client's messages", kind="invalid_request")
        if messages is None:
            messages = build_messages(
                request.task,
                len(request.images),
                include_schema=self.config.include_schema_in_prompt,
                system_prompt=self.config.system_prompt,
                page_numbers=request.pages or None,
            )
        prompt: dict[str, Any] = {"prompt": render_prompt(self.processor, messages)}
        if request.images:
            prompt["multi_modal_data"] = {"image": list(request.images)}
        return prompt

    async def run(self, request: ExtractionRequest) -> ExtractionResult:
        """Extract ``request``: prompt, generate under the task's schema, validate, one result.

        A bad request (too many images, a prompt longer than the context) is a result with
        ``error`` set, never an exception; a dead engine raises.
        """
        result: ExtractionResult | None = None
        async for delta in self._run(request, stream=False):
            result = delta.result
        assert result is not None
        return result

    async def run_stream(self, request: ExtractionRequest) -> AsyncIterator[ExtractionDelta]:
        """:meth:`run`, streamed: raw text as tokens arrive, then a last delta with the result."""
        async for delta in self._run(request, stream=True):
            yield delta

    async def _run(self, request: ExtractionRequest, *, stream: bool) -> AsyncIterator[ExtractionDelta]:
        started = time.perf_counter()
        task = request.task
        base = {
            "id": request.id or result_id(request.source, request.pages),
            "source": request.source,
            "pages": list(request.pages),
            "task": task.name if task is not None else FREE_TEXT_TASK,
            "task_version": task.version if task is not None else "",
            "model": self.model_name,
            "warnings": list(request.warnings),
        }
        request_id = uuid.uuid4().hex
        generation: Generation | None = None
        try:
            prompt = self.prompt_for(request)
            # Cached; its backend runs the task: the other one where this engine's cannot compile it.
            report = task.report(self.config.structured_output_backend) if task is not None else None
            schema = report.engine_schema if report is not None else None
            confident = task is not None and self.config.confidence
            params = self.sampling_params(
                schema,
                request.sampling,
                stream=stream or confident,
                logprobs=request.logprobs or confident,
                top_logprobs=request.top_logprobs,
                backend=report.backend if report is not None else None,
            )
            if stream or confident:
                steps = generate_steps(self.llm, prompt, params, request_id, started)
                async for delta in steps:
                    if stream:
                        yield delta
                generation = steps.generation
            else:
                generation = await generate_final(self.llm, prompt, params, request_id)
        except DocExtractError as exc:
            elapsed = time.perf_counter() - started
            yield ExtractionDelta(
                result=ExtractionResult(
                    **base,
                    error=exc.message,
                    error_kind=exc.kind,
                    timings=Timings(preprocess_s=request.preprocess_s, total_s=request.preprocess_s + elapsed),
                )
            )
            return
        elapsed = time.perf_counter() - started
        if task is not None:
            outcome = validate_output(generation.text, task, generation.finish_reason)
            checked: dict[str, Any] = {
                "data": outcome.data,
                "valid": outcome.valid,
                "errors": outcome.errors,
                "backend": report.backend if report is not None else None,
                "validated_after": report.validated_after if report is not None else [],
                **(
                    confidence_fields(generation, outcome.data, self.config.review_threshold, task.json_schema)
                    if confident
                    else {}
                ),
            }
        else:  # free text: nothing to parse, no validity claimed
            checked = {"data": None, "valid": None, "errors": []}
        yield ExtractionDelta(
            result=ExtractionResult(
                **base,
                **checked,
                raw_text=generation.text,
                tokens=generation.tokens if request.logprobs else None,
                finish_reason=generation.finish_reason,
                usage=generation.usage,
                timings=Timings(
                    preprocess_s=request.preprocess_s,
                    queue_s=generation.queue_s,
                    first_token_s=generation.first_token_s,
                    generation_s=elapsed,
                    total_s=request.preprocess_s + elapsed,
                ),
            )
        )

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
        return await self.run(
            ExtractionRequest(
                task=task,
                images=list(images),
                source=source,
                pages=list(pages or []),
                sampling=sampling,
                preprocess_s=preprocess_s,
            )
        )

    async def extract_document(
        self,
        document: Document,
        task: TaskSpec,
        *,
        mode: DocumentMode = PER_PAGE,
        sampling: SamplingConfig | None = None,
        preprocess_s: float = 0.0,
    ) -> list[ExtractionResult]:
        """Results for a loaded document: one per page (``per_page``, run concurrently),
        or one for the whole document (``document``: one prompt while the pages fit, else chunks of
        consecutive pages merged into one object, :func:`docextract.document_mode.run_document`;
        its ``sources`` say which pages each value came from). An image is a one-page document.
        ``preprocess_s``, the time it took to load, is shared among the page results.
        Each result carries its pages' warnings; pages marked not to be sent (blank, under
        ``blank_pages="skip"``) stay out of the prompt, and a result left with no page is a
        ``blank_page`` error without a generation."""
        groups = prompt_groups(document, mode)
        share = preprocess_s / len(groups)

        async def one(group: PromptGroup) -> ExtractionResult:
            if not group.sent:  # every page blank, under blank_pages="skip": nothing to ask the model
                return ExtractionResult(
                    id=group.id, source=document.name, pages=group.pages, task=task.name,
                    task_version=task.version, model=self.model_name, error=blank_skip_message(group.id),
                    error_kind="blank_page", warnings=group.warnings, timings=Timings(preprocess_s=share, total_s=share),
                )  # fmt: skip
            request = ExtractionRequest(
                task=task, images=group.images, source=document.name, pages=group.sent_pages, id=group.id,
                sampling=sampling, preprocess_s=share, warnings=group.warnings,
            )  # fmt: skip
            # Document mode: one prompt while the pages fit, else chunks merged (docextract.document_mode).
            return await (run_document(self, request) if mode == DOCUMENT else self.run(request))

        return list(await asyncio.gather(*(one(group) for group in groups)))

    # -- lifecycle ----------------------------------------------------------------------------

    async def check_health(self) -> None:
        """Raise if the engine is dead."""
        await self.llm.check_health()

    def shutdown(self) -> None:
        """Stop the engine's processes."""
        llm, self.llm = getattr(self, "llm", None), None
        if llm is not None:
            llm.shutdown()
