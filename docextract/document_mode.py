"""Document mode for any page count: one prompt when the pages fit, else chunks merged.

:meth:`ExtractionEngine.extract_document <docextract.engine.ExtractionEngine.extract_document>`
(the CLI's ``--mode document``, ``/v1/extract`` with ``mode=document``) and the batch actor's
document rows call :func:`run_document` with the request of the whole document. It measures
what each page costs in prompt tokens with the model's own processor (an exact count for the
family, cached per image size), plans chunks (:func:`docextract.chunking.plan_chunks`), sends
each chunk through the one extraction path, :meth:`ExtractionEngine.run`, concurrently (vLLM
batches them), and merges the chunk results (:mod:`docextract.merge`, or one more constrained
call under ``merge_strategy: model``). The merged object is validated against the full schema:
an answer that breaks it (``maxItems`` after concatenation) is reported invalid, never cut.

Page grounding from one prompt is the prompt's whole page range: the model writes values, not
where it read them.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import TYPE_CHECKING, Any

from docextract.chunking import plan_chunks
from docextract.merge import ChunkOutput, describe_chunks, leaf_values, merge_chunks, prompt_sources, value_key
from docextract.preprocess.pages import result_id
from docextract.requests import ExtractionRequest
from docextract.results import ChunkSummary, ExtractionResult, FieldError, InputWarning, Timings, Usage
from docextract.validate import validate_data

if TYPE_CHECKING:
    from docextract.engine import ExtractionEngine

__all__ = ["page_token_costs", "plan_request", "run_document"]


async def page_token_costs(engine: ExtractionEngine, request: ExtractionRequest) -> tuple[int, list[int]]:
    """Prompt tokens of ``request`` besides its images' own tokens, and each image's tokens,
    from the model's processor (image tokens as vLLM expands them).

    The first is the text of the prompt that names *every* page, so a chunk's estimate (it plus
    its pages' tokens) is an upper bound by the few tokens of the longer page list. Images of
    one size cost the same for the families registered here, so each size is measured once."""
    from docextract.prompts import build_messages, render_prompt

    cfg, processor, task = engine.config, engine.processor, request.task
    tokenizer = getattr(processor, "tokenizer", processor)

    def prompt(count: int, pages: list[int]) -> str:
        if request.messages is not None or task is None:  # a client's own conversation: as it is
            return engine.prompt_for(request)["prompt"]
        messages = build_messages(
            task, count, include_schema=cfg.include_schema_in_prompt, system_prompt=cfg.system_prompt,
            page_numbers=pages or None,
        )  # fmt: skip
        return render_prompt(processor, messages)

    def measure() -> tuple[int, list[int]]:
        base = len(tokenizer(prompt(len(request.images), list(request.pages)))["input_ids"])
        by_size: dict[tuple[int, int], int] = {}
        costs = []
        for i, image in enumerate(request.images):
            if image.size not in by_size:
                one = prompt(1, [request.pages[i]] if request.pages else [])
                expanded = len(processor(text=[one], images=[image])["input_ids"][0])
                by_size[image.size] = max(0, expanded - len(tokenizer(one)["input_ids"]))
            costs.append(by_size[image.size])
        return base, costs

    return await asyncio.to_thread(measure)


async def plan_request(engine: ExtractionEngine, request: ExtractionRequest) -> list[list[int]]:
    """Indices of ``request.images`` per prompt: one list when the document fits one prompt."""
    cfg = engine.config
    indices = list(range(len(request.images)))
    if len(indices) <= 1:
        return [indices]
    sampling = request.sampling or cfg.sampling
    page_tokens = base = budget = None
    if cfg.max_model_len is not None:
        base, page_tokens = await page_token_costs(engine, request)
        budget = cfg.max_model_len - sampling.max_tokens
    return plan_chunks(
        indices,
        max_images=cfg.max_images_per_prompt,
        overlap=cfg.chunk_overlap,
        page_tokens=page_tokens,
        base_tokens=base or 0,
        token_budget=budget,
    )


async def run_document(engine: ExtractionEngine, request: ExtractionRequest) -> ExtractionResult:
    """One result for all of ``request``'s pages: one prompt, or chunks merged (module docstring).

    A plan that cannot be made (a page too large for the context on its own) is a result with
    ``error``, never an exception, as for :meth:`ExtractionEngine.run`.
    """
    from docextract.errors import DocExtractError

    started = time.perf_counter()
    try:
        plan = await plan_request(engine, request)
    except DocExtractError as exc:
        return _error_result(engine, request, exc.message, exc.kind, time.perf_counter() - started)
    if len(plan) == 1:
        result = await engine.run(request)
        if result.data is None:
            return result
        return result.model_copy(update={"sources": prompt_sources(result.data, request.pages)})
    results = await asyncio.gather(*(engine.run(_chunk_request(request, chunk)) for chunk in plan))
    return await _merged_result(engine, request, results, started)


def _chunk_request(request: ExtractionRequest, chunk: list[int]) -> ExtractionRequest:
    pages = [request.pages[i] for i in chunk] if request.pages else []
    return request.model_copy(
        update={
            "images": [request.images[i] for i in chunk],
            "pages": pages,
            "id": result_id(request.source, pages),
            "preprocess_s": 0.0,
            "warnings": [w for w in request.warnings if w.page in pages],
        }
    )


def _error_result(engine: ExtractionEngine, request: ExtractionRequest, message: str, kind: str, elapsed: float):
    task = request.task
    return ExtractionResult(
        id=request.id or result_id(request.source, request.pages), source=request.source, pages=list(request.pages),
        task=task.name if task is not None else "text", task_version=task.version if task is not None else "",
        model=engine.model_name, error=message, error_kind=kind, warnings=list(request.warnings),
        timings=Timings(preprocess_s=request.preprocess_s, total_s=request.preprocess_s + elapsed),
    )  # fmt: skip


async def _model_merge(
    engine: ExtractionEngine, request: ExtractionRequest, outputs: list[ChunkOutput]
) -> tuple[ExtractionResult, dict[str, list[int]]]:
    """One more constrained call: the chunk results as text, the task's schema as constraint.
    Sources: a value equal to one some chunk wrote is grounded on those chunks' pages, any other
    value on every page (the model composed it)."""
    task = request.task
    assert task is not None
    overlap = engine.config.chunk_overlap
    text = (
        f"{task.instructions}\nThe document was read in chunks of consecutive pages (consecutive chunks share "
        f"{overlap} page(s)); each line is one chunk's answer. Merge them into one answer for the whole document: "
        "list items in page order, each item once (items on shared pages appear in two chunks); for every other "
        f"field the value the pages support.\n{describe_chunks(outputs)}"
    )
    if engine.config.include_schema_in_prompt:
        schema = json.dumps(task.json_schema, separators=(",", ":"), ensure_ascii=False)
        text += f"\nAnswer with one JSON object that conforms to this JSON Schema:\n{schema}"
    messages: list[dict[str, Any]] = []
    if engine.config.system_prompt:
        messages.append({"role": "system", "content": [{"type": "text", "text": engine.config.system_prompt}]})
    messages.append({"role": "user", "content": [{"type": "text", "text": text}]})
    result = await engine.run(request.model_copy(update={"images": [], "messages": messages, "preprocess_s": 0.0}))
    seen: dict[Any, set[int]] = {}
    for output in outputs:
        for _, value in leaf_values(output.data):
            seen.setdefault(value_key(value), set()).update(output.pages)
    everything = sorted(request.pages)
    sources = {path: sorted(seen.get(value_key(value), everything)) for path, value in _paths(result.data)}
    return result, sources


def _paths(data: Any) -> list[tuple[str, Any]]:
    from docextract.confidence import json_path

    return [(json_path(at), value) for at, value in leaf_values(data)]


async def _merged_result(
    engine: ExtractionEngine,
    request: ExtractionRequest,
    results: list[ExtractionResult],
    started: float,
) -> ExtractionResult:
    cfg = engine.config
    task = request.task
    assert task is not None  # document mode always has a task
    outputs = [
        ChunkOutput(pages=r.pages, data=r.data, confidence=r.confidence or {}, forced=frozenset(r.forced))
        for r in results
    ]
    merged = merge_chunks(outputs, task.json_schema)
    strategy, sources, confidence, forced = "deterministic", merged.sources, merged.confidence, merged.forced
    data, warnings = merged.data, list(request.warnings)
    usage = Usage(
        prompt_tokens=sum(r.usage.prompt_tokens for r in results),
        completion_tokens=sum(r.usage.completion_tokens for r in results),
    )
    if cfg.merge_strategy == "model" and any(o.data is not None for o in outputs):
        merge_call, model_sources = await _model_merge(engine, request, outputs)
        usage = Usage(
            prompt_tokens=usage.prompt_tokens + merge_call.usage.prompt_tokens,
            completion_tokens=usage.completion_tokens + merge_call.usage.completion_tokens,
        )
        if merge_call.valid and merge_call.data is not None:
            strategy, data, sources = "model", merge_call.data, model_sources
            confidence, forced = merge_call.confidence or {}, merge_call.forced
        else:  # the deterministic merge stands; say why
            why = merge_call.error or "; ".join(e.describe() for e in merge_call.errors) or "no answer"
            warnings.append(InputWarning(kind="model_merge_failed", message=f"{request.source}: model merge: {why}"))
    outcome = validate_data(data, task)
    errors = list(outcome.errors)
    for r in results:
        if r.data is None or r.error is not None:
            why = r.error or "; ".join(e.describe() for e in r.errors) or "no output"
            errors.append(
                FieldError(path="", message=f"chunk {r.id} gave no usable answer ({why}); its pages are missing")
            )
    finish = next((r.finish_reason for r in results if r.finish_reason != "stop"), "stop")
    elapsed = time.perf_counter() - started
    scored = bool(confidence) and cfg.confidence
    return ExtractionResult(
        id=request.id or result_id(request.source, request.pages),
        source=request.source,
        pages=list(request.pages),
        task=task.name,
        task_version=task.version,
        model=engine.model_name,
        data=outcome.data,
        raw_text=json.dumps(outcome.data, ensure_ascii=False, separators=(",", ":")),
        valid=not errors,
        errors=errors,
        finish_reason=finish,
        usage=usage,
        timings=Timings(
            preprocess_s=request.preprocess_s, generation_s=elapsed, total_s=request.preprocess_s + elapsed
        ),
        backend=results[0].backend,
        validated_after=results[0].validated_after,
        warnings=warnings,
        confidence=confidence if scored else None,
        min_confidence=min(confidence.values()) if scored else None,
        review=sorted(p for p, s in confidence.items() if s < cfg.review_threshold) if scored else [],
        forced=list(forced) if scored else [],
        sources=sources if outcome.data is not None else None,
        conflicts=merged.conflicts,
        chunks=[
            ChunkSummary(pages=r.pages, valid=r.valid, error=r.error, error_kind=r.error_kind, usage=r.usage)
            for r in results
        ],
        merge=strategy,
    )
