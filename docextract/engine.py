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

from docextract.config import PER_PAGE, DocumentMode, ExtractionConfig, SamplingConfig
from docextract.errors import DocExtractError, EngineError, InputError, ModelLoadError
from docextract.models.families import family_for, read_architectures
from docextract.models.source import resolve_model
from docextract.preprocess.pages import group_pages, result_id
from docextract.prompts import build_messages, render_prompt
from docextract.requests import ExtractionRequest
from docextract.results import ExtractionDelta, ExtractionResult, Generation, Timings, TokenDelta, Usage
from docextract.tasks import TaskSpec
from docextract.validate import validate_output

if TYPE_CHECKING:
    from PIL import Image

    from docextract.preprocess.documents import Document

__all__ = ["ExtractionEngine", "check_image_count", "cpu_only", "prepare_environment"]

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

    # -- the one extraction path --------------------------------------------------------------

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
        return self.prompt_for(ExtractionRequest(task=task, images=list(images), pages=page_numbers or []))

    def prompt_for(self, request: ExtractionRequest) -> dict[str, Any]:
        """The vLLM prompt of ``request``: its messages (or the task's own), rendered by the
        model's chat template, with its images.

        Raises:
            InputError: ``too_many_images``.
        """
        check_image_count(len(request.images), self.config.max_images_per_prompt)
        messages = request.messages
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
            "task": task.name,
            "task_version": task.version,
            "model": self.model_name,
        }
        request_id = uuid.uuid4().hex
        text: list[str] = []
        generation: Generation | None = None
        try:
            prompt = self.prompt_for(request)
            params = self.sampling_params(task.engine_schema, request.sampling, stream=stream)
            if stream:
                prompt_tokens = completion_tokens = 0
                finish_reason = None
                first_token_s = None
                async for output in self._generate(prompt, params, request_id):
                    step = TokenDelta.from_vllm(output)
                    if first_token_s is None and step.tokens:
                        first_token_s = time.perf_counter() - started
                    prompt_tokens = max(prompt_tokens, step.prompt_tokens)
                    completion_tokens += step.tokens
                    finish_reason = step.finish_reason or finish_reason
                    text.append(step.text)
                    if step.text:
                        yield ExtractionDelta(text=step.text)
                generation = Generation(
                    text="".join(text),
                    finish_reason=finish_reason,
                    usage=Usage(prompt_tokens=prompt_tokens, completion_tokens=completion_tokens),
                    first_token_s=first_token_s,
                )
            else:
                final = None
                async for output in self._generate(prompt, params, request_id):
                    final = output
                if final is None:
                    raise EngineError("the engine returned no output")
                generation = Generation.from_vllm(final)
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
        outcome = validate_output(generation.text, task, generation.finish_reason)
        yield ExtractionDelta(
            result=ExtractionResult(
                **base,
                data=outcome.data,
                raw_text=generation.text,
                valid=outcome.valid,
                errors=outcome.errors,
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

    async def _generate(self, prompt: dict[str, Any], params: Any, request_id: str) -> AsyncIterator[Any]:
        """vLLM's outputs for one request; aborted in vLLM when the caller goes away."""
        try:
            async for output in self.llm.generate(prompt, params, request_id):
                yield output
        except (asyncio.CancelledError, GeneratorExit):
            await self.llm.abort(request_id)
            raise
        except Exception as exc:
            raise _request_error(exc) from None

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
        or one for all pages in one prompt (``document``). An image is a one-page document.
        ``preprocess_s``, the time it took to load, is shared among the page results."""
        by_number = {page.page_number: page for page in document.pages}
        groups = group_pages(list(by_number), mode)
        numbered = document.kind == "pdf"
        share = preprocess_s / len(groups)
        return list(
            await asyncio.gather(
                *(
                    self.extract(
                        [by_number[n].image for n in group],
                        task,
                        source=document.name,
                        pages=group if numbered else [],
                        sampling=sampling,
                        preprocess_s=share,
                    )
                    for group in groups
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

