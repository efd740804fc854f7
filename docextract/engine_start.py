"""How vLLM's engine process starts on a CPU: one process that runs the model, its imports done ahead.

vLLM's ``AsyncLLM`` runs its engine in a process of its own. On a CPU, as vLLM configures itself,
that start is three Python processes in turn, each importing vLLM before the next exists: the front
end (this process), the engine process (started with ``spawn``, which vLLM forces in a Ray actor and
on its CPU platform), and a worker process that runs the model (the CPU platform's multiprocessing
executor). Each import takes 7-12 s of one core on a 2-core machine, and the start is single-threaded:
the other core waits. Measured (bench model, 2-core AVX2 machine, alone): 35.1 s from nothing to the
engine up as vLLM does it; 23.6 s with the model in the engine process; 17.0 s with, in addition, the
engine process's imports done while this process does its own.

- :func:`model_in_engine_process`: the engine process runs the model (vLLM's one-process executor,
  the one it uses on a GPU for one device): one import less.
- :func:`preload_engine_imports` then :func:`engine_process_from_preload`: the engine process is
  forked from a :mod:`multiprocessing` fork server started as soon as the engine is being built,
  which imports vLLM's engine modules on another core while this process imports vLLM for itself;
  the engine process then starts with its imports done.

Both apply to one CPU engine of one worker with vLLM's OpenMP placement off
(``VLLM_CPU_OMP_THREADS_BIND=nobind``, which :func:`docextract.engine.prepare_environment` sets), and
to nothing else: on a GPU, for tensor or pipeline parallel workers, or with an executor the caller
names, vLLM starts as it does by itself.

What the fork server changes for the engine process, and how each is kept as vLLM expects:

- *Its environment*: a forked process has the fork server's (from when it started), not this
  process's when vLLM starts it. The engine process sets this process's environment as it was at
  ``start()`` (vLLM sets variables for it just before) before anything of vLLM runs in it.
  ``LD_PRELOAD`` is the one variable that cannot act after a fork; vLLM's CPU platform sets it to
  torch's own ``libgomp``, which the fork server has already loaded with torch.
- *Its parent*: the fork server, not this process. A spawned engine process was this process's
  child, and Ray kills a worker's children as the worker exits; a forked one is a grandchild, so it
  watches this process (a Linux pidfd) and exits when it is gone. Seen at the end of a batch job:
  the actor's direct children (the fork server, multiprocessing's resource tracker) ended together
  first, as Ray ends a worker's children; the engine process ran on for the 3 s until the actor had
  exited, then exited with it.
- *The fork server itself* stays up, asleep, while the engine runs: it reports the engine process's
  exit, which is how vLLM's front end learns that its engine died. It exits with this process.
  It holds memory for the engine's life: measured beside the test model's engine, 690 MB resident,
  of which 230 MB its own (the rest shared with the engine process, copy on write).

vLLM chooses its start method in ``vllm.v1.engine.utils.get_mp_context``; while ``AsyncLLM`` is
built, that name is bound to a context that forks from the fork server. A vLLM without that name
starts as it does by itself (checked, not assumed).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import select
import threading
from collections.abc import Callable, Iterator
from multiprocessing import context, forkserver
from typing import Any

__all__ = [
    "ENGINE_MODULES",
    "engine_process_from_preload",
    "model_in_engine_process",
    "one_process_engine",
    "preload_engine_imports",
    "preload_for",
    "vllm_starting",
]

logger = logging.getLogger(__name__)

#: What vLLM's engine process imports before it can start (its loop, the one-process executor, the
#: CPU worker and model runner, torch and transformers with them). The model's own module is imported
#: by name when the model loads: it is not known ahead.
ENGINE_MODULES = ("vllm.v1.engine.core", "vllm.v1.executor.uniproc_executor", "vllm.v1.worker.cpu_worker")


def one_process_engine(args: dict[str, Any], *, cpu: bool) -> bool:
    """Whether an engine of these ``AsyncEngineArgs`` keyword arguments runs its model in its engine
    process (see the module's docstring for when, and why only then)."""
    return (
        cpu
        and args.get("tensor_parallel_size", 1) == 1
        and args.get("pipeline_parallel_size", 1) == 1
        and args.get("distributed_executor_backend") is None
        and os.environ.get("VLLM_CPU_OMP_THREADS_BIND") == "nobind"
    )


@contextlib.contextmanager
def model_in_engine_process(args: dict[str, Any], *, cpu: bool) -> Iterator[bool]:
    """While vLLM starts: where :func:`one_process_engine`, the engine process runs the model.

    vLLM's CPU platform allows its one-process executor (``uni``) only when
    ``VLLM_ENABLE_V1_MULTIPROCESSING`` is 0 while the config is built, and otherwise picks its
    multiprocessing executor, a third process. ``AsyncLLM`` keeps its engine in a process of its own
    either way (its client is always multiprocess); the engine process, started meanwhile, inherits the
    variable, which nothing there reads but the executor's choice. This process's value is restored
    afterwards. Why the platform prefers a process of its own (each worker's OpenMP placement set in its
    environment before it starts) does not apply with ``VLLM_CPU_OMP_THREADS_BIND=nobind``: the engine
    process runs the model with ``OMP_NUM_THREADS`` threads, as the worker process would have.
    Yields whether it applied."""
    if not one_process_engine(args, cpu=cpu):
        yield False
        return
    before = os.environ.get("VLLM_ENABLE_V1_MULTIPROCESSING")
    os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"
    try:
        yield True
    finally:
        if before is None:
            os.environ.pop("VLLM_ENABLE_V1_MULTIPROCESSING", None)
        else:
            os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = before


def preload_engine_imports(modules: tuple[str, ...] = ENGINE_MODULES) -> bool:
    """Start the fork server, which imports ``modules`` on its own core, and return at once (False
    where it cannot start: it is then not used). Call as early as the engine is known to be a
    :func:`one_process_engine`, before this process imports vLLM itself."""
    try:
        forkserver.set_forkserver_preload(list(modules))
        forkserver.ensure_running()
    except Exception as exc:  # no fork server here: vLLM's own start
        logger.warning("vLLM's engine process starts without its imports done ahead: %s", exc)
        return False
    return True


@contextlib.contextmanager
def engine_process_from_preload(preloaded: bool) -> Iterator[bool]:
    """While ``AsyncLLM`` is built: vLLM's engine process is forked from the fork server that
    :func:`preload_engine_imports` started (when ``preloaded``). Yields whether it applied."""
    import vllm.v1.engine.utils as engine_utils

    if not preloaded or not callable(getattr(engine_utils, "get_mp_context", None)):
        yield False
        return
    own = engine_utils.get_mp_context
    engine_utils.get_mp_context = _preloaded_context
    try:
        yield True
    finally:
        engine_utils.get_mp_context = own


def preload_for(args: dict[str, Any], *, cpu: bool) -> bool:
    """:func:`preload_engine_imports` for an engine of these ``AsyncEngineArgs`` keyword arguments, where
    it is a :func:`one_process_engine`; whether the fork server is up."""
    return one_process_engine(args, cpu=cpu) and preload_engine_imports()


@contextlib.contextmanager
def vllm_starting(args: dict[str, Any], *, cpu: bool, preloaded: bool) -> Iterator[None]:
    """While ``AsyncLLM`` is built from ``args``: :func:`model_in_engine_process` and
    :func:`engine_process_from_preload` (``preloaded``: what :func:`preload_for` returned)."""
    with model_in_engine_process(args, cpu=cpu), engine_process_from_preload(preloaded):
        yield


class _PreloadedProcess(context.ForkServerProcess):
    """A process forked from the fork server that runs in its starter's environment at ``start()``
    and exits when its starter does."""

    def start(self) -> None:
        self._target = functools.partial(_as_started, dict(os.environ), os.getpid(), self._target)
        super().start()


class _PreloadedContext(context.ForkServerContext):
    Process = _PreloadedProcess


def _preloaded_context() -> _PreloadedContext:
    return _PreloadedContext()


def _as_started(
    environment: dict[str, str], starter: int, target: Callable[..., Any], *args: Any, **kwargs: Any
) -> Any:
    """In the forked process, before ``target``: its starter's environment, and a watch on the starter."""
    os.environ.clear()
    os.environ.update(environment)
    _exit_with(starter)
    return target(*args, **kwargs)


def _exit_with(pid: int) -> None:
    """Exit this process when process ``pid`` ends (a daemon thread waiting on its pidfd)."""
    try:
        fd = os.pidfd_open(pid)
    except (AttributeError, OSError) as exc:  # not Linux >= 5.3, or already gone
        logger.warning("the engine process cannot watch its front end (pid %s): %s", pid, exc)
        return

    def wait() -> None:
        select.select([fd], [], [])
        os._exit(1)

    threading.Thread(target=wait, name="docextract-front-end-watch", daemon=True).start()
