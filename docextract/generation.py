"""One request through vLLM: its outputs read into a :class:`~docextract.results.Generation`,
whole or step by step, and the per-field confidence of what it wrote.

:class:`~docextract.engine.ExtractionEngine` calls these; they convert vLLM's outputs only
through :mod:`docextract.results` and map vLLM's per-request errors to docextract's
(:func:`docextract.errors.engine_request_error`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from docextract.confidence import field_confidence
from docextract.errors import EngineError, engine_request_error
from docextract.results import ExtractionDelta, Generation, TokenDelta, TokenInfo, Usage

__all__ = ["GenerationSteps", "confidence_fields", "generate_final", "generate_steps", "vllm_outputs"]


async def vllm_outputs(llm: Any, prompt: dict[str, Any], params: Any, request_id: str) -> AsyncIterator[Any]:
    """vLLM's outputs for one request; aborted in vLLM when the caller goes away."""
    try:
        async for output in llm.generate(prompt, params, request_id):
            yield output
    except (asyncio.CancelledError, GeneratorExit):
        await llm.abort(request_id)
        raise
    except Exception as exc:
        raise engine_request_error(exc) from None


async def generate_final(llm: Any, prompt: dict[str, Any], params: Any, request_id: str) -> Generation:
    """The finished generation of a ``RequestOutputKind.FINAL_ONLY`` request (with ``params.logprobs``
    tokens, each with that many alternatives)."""
    final = None
    async for output in vllm_outputs(llm, prompt, params, request_id):
        final = output
    if final is None:
        raise EngineError("the engine returned no output")
    return Generation.from_vllm(final, params.logprobs or 0)


class GenerationSteps:
    """The deltas of a ``RequestOutputKind.DELTA`` request as they arrive; once they are all
    read, :attr:`generation` holds the whole text, usage and every token.

    Each step's text is exactly what the detokenizer added at that step, so the tokens' texts
    add up to the output: a step's text goes with its last token (more than one token per step
    only with speculative decoding), which is what places every token in the output for
    :mod:`docextract.confidence`.
    """

    def __init__(self, llm: Any, prompt: dict[str, Any], params: Any, request_id: str, started: float) -> None:
        self._outputs = vllm_outputs(llm, prompt, params, request_id)
        self._top_k = params.logprobs or 0
        self._started = started
        self.generation: Generation | None = None

    def __aiter__(self) -> AsyncIterator[ExtractionDelta]:
        return self._steps()

    async def _steps(self) -> AsyncIterator[ExtractionDelta]:
        text: list[str] = []
        tokens: list[TokenInfo] = []
        prompt_tokens = 0
        finish_reason = first_token_s = last = None
        async for output in self._outputs:
            last = output
            step = TokenDelta.from_vllm(output, self._top_k)
            if first_token_s is None and step.tokens:
                first_token_s = time.perf_counter() - self._started
            prompt_tokens = max(prompt_tokens, step.prompt_tokens)
            tokens.extend(t.model_copy(update={"text": ""}) for t in step.tokens[:-1])
            tokens.extend(t.model_copy(update={"text": step.text}) for t in step.tokens[-1:])
            finish_reason = step.finish_reason or finish_reason
            text.append(step.text)
            if step.text or step.tokens:
                yield ExtractionDelta(text=step.text, tokens=step.tokens)
        self.generation = Generation(
            text="".join(text),
            finish_reason=finish_reason,
            usage=Usage(prompt_tokens=prompt_tokens, completion_tokens=len(tokens)),
            queue_s=Generation.from_vllm(last).queue_s if last is not None else None,
            first_token_s=first_token_s,
            tokens=tokens,
        )


def generate_steps(llm: Any, prompt: dict[str, Any], params: Any, request_id: str, started: float) -> GenerationSteps:
    """A request's generation step by step (see :class:`GenerationSteps`)."""
    return GenerationSteps(llm, prompt, params, request_id, started)


def confidence_fields(
    generation: Generation, data: Any, review_threshold: float, schema: dict[str, Any] | None = None
) -> dict[str, Any]:
    """An :class:`~docextract.results.ExtractionResult`'s confidence fields for a constrained answer
    (empty when there is nothing to score, e.g. an output cut by ``max_tokens``)."""
    tokens = generation.tokens or []
    conf = field_confidence(
        generation.text, [t.text for t in tokens], [t.logprob for t in tokens], keep=data, schema=schema
    )
    if conf is None:
        return {}
    return {
        "confidence": conf.scores,
        "min_confidence": conf.lowest,
        "forced": conf.forced,
        "review": sorted(path for path, score in conf.scores.items() if score < review_threshold),
    }
