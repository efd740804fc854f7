"""The ingress: everything between an HTTP request and a replica call.

:class:`Ingress` is the FastAPI ingress deployment (its routes are in
:mod:`serve.http`). It holds no engine and reserves no CPU; it holds one
``DeploymentHandle`` per served model and:

* chooses the model by name (default: the first);
* preprocesses here, in worker threads (``asyncio.to_thread``): fetching
  URLs, decoding images, rendering PDF pages (in the renderer's own child
  process, with its wall-clock limit), checking schemas and compiling them
  once (cached). The replica gets model-ready pages, so its event loop only
  feeds the engine, and bad input is refused before it takes a place in a
  replica's queue. A page crosses the handle as raw pixels, at most the
  model's ``max_pixels`` x 3 bytes;
* calls the replica under the request's deadline: on expiry the call is
  cancelled (Serve cancels the replica's task, the engine aborts the vLLM
  request) and the client gets 504; a full queue (the deployment's
  ``max_queued_requests``) is 503 with ``Retry-After``;
* maps errors from the replica back to their HTTP status (:mod:`serve.errors`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

from docextract.cache import LruCache
from docextract.config import SamplingConfig
from docextract.errors import DocExtractError, EngineError, validation_problems
from serve.config import ServeAppConfig, ServedModel
from serve.deadline import Deadline
from serve.errors import ApiError, from_docextract, result_error
from serve.inputs import reference_bytes
from serve.metrics import ServiceMetrics
from serve.protocols.common import task_name
from serve.url_fetch import UrlFetcher

if TYPE_CHECKING:
    from docextract.preprocess.documents import Document, Page
    from docextract.requests import ExtractionRequest
    from docextract.results import ExtractionDelta, ExtractionResult
    from docextract.tasks import TaskSpec

__all__ = ["Ingress"]

logger = logging.getLogger("ray.serve")
T = TypeVar("T")

#: How long ``/healthz`` waits for each model's replica.
HEALTH_TIMEOUT_S = 5.0
_TASK_CACHE_SIZE = 256


def _cause(exc: BaseException) -> BaseException:
    """The exception a replica raised, unwrapped from Ray's ``RayTaskError``."""
    from ray.exceptions import RayTaskError

    if isinstance(exc, RayTaskError) and getattr(exc, "cause", None) is not None:
        return exc.cause
    return exc


class Ingress:
    """The HTTP ingress deployment. ``replicas`` maps each served model name to its handle."""

    def __init__(self, config: ServeAppConfig, replicas: dict[str, Any]) -> None:
        self.config = config
        self.api_key = config.resolve_api_key()
        self.models: dict[str, ServedModel] = {m.model_name: m for m in config.models}
        self.replicas = replicas
        self.metrics = ServiceMetrics()
        limits = config.limits
        self.fetcher = (
            UrlFetcher(timeout_s=limits.url_fetch_timeout_s, max_redirects=limits.url_fetch_max_redirects)
            if limits.allow_url_fetch
            else None
        )
        self._tasks: LruCache[tuple[Any, ...], TaskSpec] = LruCache(_TASK_CACHE_SIZE)
        from docextract.schema.store import load_store

        for served in config.models:  # read once, here: a missing store fails the deployment, not a request
            load_store(served.schema_store)

    def __serve_build_asgi_app__(self):
        from serve.http import create_app

        return create_app(self)

    # -- models, tasks, sampling ------------------------------------------------------------

    def served(self, name: str | None) -> ServedModel:
        """The model named ``name`` (the default model for None); 404 for an unknown name."""
        if name is None or name == "":
            return self.config.default_model
        try:
            return self.models[name]
        except KeyError:
            raise ApiError(
                404,
                f"unknown model {name!r}; this service serves {', '.join(sorted(self.models))}",
                kind="model_not_found",
                param="model",
            ) from None

    async def task(self, key: tuple[Any, ...], build: Callable[[], TaskSpec]) -> TaskSpec:
        """A task from the cache, or built (schema checked and compiled) in a thread and cached."""
        task = self._tasks.get(key)
        if task is None:
            task = self._tasks.put(key, await asyncio.to_thread(build))
        return task

    async def extraction_task(
        self, served: ServedModel, *, task: str | None, json_schema: dict[str, Any] | None, instructions: str | None
    ) -> TaskSpec:
        """A built-in task by name, or one from an inline schema. Never a file or an import: those are server-side."""
        from docextract.tasks import DEFAULT_INSTRUCTIONS, builtin_task_names, get_builtin_task, task_from_schema

        backend, store = served.structured_output_backend, served.schema_store
        if (task is None) == (json_schema is None):
            raise ApiError(400, "give either task (a built-in task name) or json_schema", kind="invalid_task")
        if task is not None:
            if task not in builtin_task_names():
                raise ApiError(
                    400,
                    f"unknown task {task!r}; built-in tasks: {', '.join(builtin_task_names())} "
                    "(or send your own json_schema)",
                    kind="invalid_task",
                    param="task",
                )
            built = await self.task(("builtin", task, backend), lambda: get_builtin_task(task, backend=backend))
            return built.model_copy(update={"instructions": instructions}) if instructions else built
        assert json_schema is not None
        name = task_name(json_schema)
        key = ("schema", json.dumps(json_schema, sort_keys=True), instructions, name, backend, tuple(store))
        return await self.task(
            key,
            lambda: task_from_schema(
                json_schema, instructions or DEFAULT_INSTRUCTIONS, name=name, backend=backend, schema_store=store
            ),
        )

    @staticmethod
    def sampling(served: ServedModel, overrides: dict[str, Any]) -> SamplingConfig | None:
        """The model's sampling settings with the request's overrides (None when there are none)."""
        if not overrides:
            return None
        limit = served.max_model_len
        asked = overrides.get("max_tokens")
        if limit is not None and asked is not None and asked >= limit:
            raise ApiError(
                400,
                f"max_tokens ({asked}) must be below the model's context of {limit} tokens (max_model_len), "
                "which the prompt shares",
                kind="invalid_request",
                param="max_tokens",
            )
        from pydantic import ValidationError

        try:
            return SamplingConfig.model_validate({**served.sampling.model_dump(), **overrides})
        except ValidationError as exc:
            problems = validation_problems(exc, root="")
            raise ApiError(400, f"invalid sampling parameters: {problems}", kind="invalid_request") from None

    # -- inputs -------------------------------------------------------------------------------

    async def content(self, served: ServedModel, ref: str, *, name: str, allow_bare_base64: bool = False) -> bytes:
        return await reference_bytes(
            ref,
            fetcher=self.fetcher,
            max_bytes=served.preprocess.max_bytes,
            name=name,
            allow_bare_base64=allow_bare_base64,
        )

    async def load_document(
        self,
        served: ServedModel,
        content: bytes,
        *,
        name: str,
        media_type: str | None,
        pages: list[int] | None,
    ) -> tuple[Document, float]:
        """Decode or render ``content`` with the model's preprocessing options, in a thread."""
        from docextract.preprocess.documents import load_document

        started = time.perf_counter()
        document = await asyncio.to_thread(
            load_document, content, name=name, media_type=media_type, pages=pages, options=served.preprocess
        )
        return document, time.perf_counter() - started

    async def load_images(self, served: ServedModel, refs: list[str]) -> list[Page]:
        """Chat and TGI images: fetched or decoded, then fitted to the model's pixel budget (with the
        warnings that produced, e.g. ``upscaled``)."""
        from docextract.engine import check_image_count
        from docextract.preprocess.documents import load_model_page

        check_image_count(len(refs), served.max_images_per_prompt)  # before fetching or decoding any

        async def one(i: int, ref: str) -> Page:
            name = f"image {i + 1}"
            data = await self.content(served, ref, name=name)
            return await asyncio.to_thread(load_model_page, data, name=name, options=served.preprocess)

        return list(await asyncio.gather(*(one(i, ref) for i, ref in enumerate(refs))))

    async def chat_request(
        self,
        served: ServedModel,
        task: TaskSpec,
        messages: list[dict[str, Any]],
        refs: list[str],
        sampling_overrides: dict[str, Any],
        deadline: Deadline,
        *,
        source: str,
        request_id: str | None = None,
    ) -> ExtractionRequest:
        """A chat or TGI request as the one internal request: its images loaded, its schema and sampling settled."""
        from docextract.requests import ExtractionRequest

        started = time.perf_counter()
        pages = await deadline.run(self.load_images(served, refs))
        return ExtractionRequest(
            task=task,
            images=[page.image for page in pages],
            warnings=[warning for page in pages for warning in page.warnings],
            messages=messages,
            source=source,
            id=request_id,
            sampling=self.sampling(served, sampling_overrides),
            preprocess_s=time.perf_counter() - started,
        )

    # -- replica calls ------------------------------------------------------------------------

    async def run(self, served: ServedModel, request: ExtractionRequest, deadline: Deadline) -> ExtractionResult:
        """``request`` through the replica's engine, under ``deadline``, counted in the metrics.

        Raises:
            ApiError: the result's error (a prompt the engine refused, ...) as its HTTP status.
        """
        result = await self.call(served, "run", request, deadline)
        self._observe(served, result)
        return result

    async def run_stream(
        self, served: ServedModel, request: ExtractionRequest, deadline: Deadline
    ) -> AsyncIterator[ExtractionDelta]:
        """``request`` streamed from the replica's engine. The first delta is awaited before
        returning, so errors before generation (queue full, prompt refused) are answered as
        HTTP statuses; the last delta carries the validated result."""
        deltas = await self.stream(served, "run_stream", request, deadline)

        async def observed() -> AsyncIterator[ExtractionDelta]:
            async for delta in deltas:
                if delta.result is not None:
                    self._observe(served, delta.result)
                yield delta

        return observed()

    def _observe(self, served: ServedModel, result: ExtractionResult) -> None:
        if result.error is not None:
            if result.error_kind == "engine_error":
                logger.warning("engine error for model %s: %s", served.model_name, result.error)
            raise result_error(result)
        self.metrics.observe_output(served.model_name, result.valid, result.usage)

    @contextlib.contextmanager
    def _replica_call(self, served: ServedModel, cancel: Callable[[], Any], deadline: Deadline) -> Iterator[None]:
        """How a wait on a replica ends: past the deadline, a 504; the client gone (cancelled) or
        the deadline already spent, the replica's work is cancelled too; a replica error, its status."""
        try:
            yield
        except asyncio.TimeoutError:
            cancel()
            self.metrics.reject(served.model_name, "timeout")
            raise deadline.expired() from None
        except (asyncio.CancelledError, ApiError):
            cancel()
            raise
        except Exception as exc:
            raise self._replica_error(served, exc) from None

    async def call(self, served: ServedModel, method: str, payload: Any, deadline: Deadline) -> Any:
        """``replica.method(payload)`` for ``served``'s deployment, under ``deadline``."""
        response = getattr(self.replicas[served.model_name], method).remote(payload)
        with self._replica_call(served, response.cancel, deadline):
            return await asyncio.wait_for(_awaited(response), deadline.remaining())

    async def stream(self, served: ServedModel, method: str, payload: Any, deadline: Deadline) -> AsyncIterator[Any]:
        """``replica.method(payload)`` streamed, as an async iterator; the first item is awaited
        before returning, so errors before it are raised here."""
        generator = getattr(self.replicas[served.model_name].options(stream=True), method).remote(payload)

        async def next_item() -> Any:
            with self._replica_call(served, generator.cancel, deadline):
                try:
                    return await asyncio.wait_for(generator.__anext__(), deadline.remaining())
                except StopAsyncIteration:
                    return None

        first = await next_item()
        if first is not None and getattr(first, "result", None) is not None and first.result.error is not None:
            raise result_error(first.result)

        async def rest() -> AsyncIterator[Any]:
            item = first
            try:
                while item is not None:
                    yield item
                    item = await next_item()
            finally:
                if item is not None:  # the client left mid-stream: stop the generation too
                    generator.cancel()

        return rest()

    def _replica_error(self, served: ServedModel, exc: BaseException) -> ApiError:
        from ray.exceptions import RayActorError
        from ray.serve.exceptions import BackPressureError, DeploymentUnavailableError

        cause = _cause(exc)
        if isinstance(cause, BackPressureError):
            self.metrics.reject(served.model_name, "queue_full")
            retry = cause.retry_after_s if cause.retry_after_s is not None else served.deployment.retry_after_s
            return ApiError(
                503,
                f"model {served.model_name} is at capacity (its queue is full); retry later",
                kind="queue_full",
                headers=_retry_after(retry),
            )
        if isinstance(cause, DocExtractError):
            if isinstance(cause, EngineError):
                logger.warning("engine error for model %s: %s", served.model_name, cause.message)
            return from_docextract(cause)
        if isinstance(cause, (RayActorError, DeploymentUnavailableError)) or type(cause).__name__ == "EngineDeadError":
            logger.error("replica of %s unavailable: %s", served.model_name, cause)
            return ApiError(
                503,
                f"model {served.model_name} is restarting; retry later",
                kind="replica_unavailable",
                headers=_retry_after(served.deployment.retry_after_s),
            )
        logger.exception("unexpected error from model %s", served.model_name, exc_info=cause)
        return ApiError(500, f"internal error in model {served.model_name}: {type(cause).__name__}", kind="internal")

    async def health(self) -> dict[str, str]:
        """Each model's state: ``ok``, ``busy`` (its queue is full: alive) or why it is not ready."""
        from ray.serve.exceptions import BackPressureError

        async def one(name: str) -> tuple[str, str]:
            response = self.replicas[name].ready.remote()
            try:
                await asyncio.wait_for(_awaited(response), HEALTH_TIMEOUT_S)
                return name, "ok"
            except asyncio.TimeoutError:
                response.cancel()
                return name, f"no answer in {HEALTH_TIMEOUT_S:g} s"
            except Exception as exc:
                cause = _cause(exc)
                if isinstance(cause, BackPressureError):
                    return name, "busy"
                return name, f"{type(cause).__name__}: {cause}"[:300]

        return dict(await asyncio.gather(*(one(name) for name in self.models)))


def _retry_after(seconds: float) -> dict[str, str]:
    """A ``Retry-After`` header: whole seconds, rounded up, at least 1."""
    return {"Retry-After": str(max(1, int(seconds + 0.999)))}


async def _awaited(response: Any) -> Any:
    # ``asyncio.wait_for`` needs a coroutine to cancel; a DeploymentResponse is only awaitable.
    return await response
