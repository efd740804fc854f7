"""How vLLM's processes start on a CPU: forked from a fork server that imported their modules ahead.

vLLM's ``AsyncLLM`` runs its engine in a process of its own. On a CPU, as vLLM configures itself,
that start is three Python processes in turn, each importing vLLM before the next exists: the front
end (this process), the engine process (started with ``spawn``, which vLLM forces in a Ray actor and
on its CPU platform), and a worker process that runs the model (the CPU platform's multiprocessing
executor, which it requires: its one-process executor is not supported on a CPU). Each import takes
7-12 s of one core on a 2-core machine, and the start is single-threaded: the other core waits.

Here the engine process and its worker are forked from one :mod:`multiprocessing` fork server, started
as soon as the engine is being built, which imports vLLM's engine and worker modules on another core
while this process imports vLLM for itself. The processes and their roles stay vLLM's own: the engine
process schedules, the worker process runs the model with its own threads, as vLLM's multiprocessing
executor sets them. Only how each process starts changes: forked with its imports done, not spawned.

It applies to one CPU engine of one worker with vLLM's OpenMP placement off
(``VLLM_CPU_OMP_THREADS_BIND=nobind``, which :func:`docextract.engine.prepare_environment` sets), and to
nothing else: on a GPU, for tensor or pipeline parallel workers, or with an executor the caller names
other than ``mp``, vLLM starts as it does by itself.

What the fork server changes for a forked process, and how each is kept as vLLM expects:

- *Its environment*: a forked process has the fork server's (from when it started), not its starter's
  when vLLM starts it. The forked process sets its starter's environment as it was at ``start()`` (vLLM
  sets variables for it just before) before anything of vLLM runs in it. ``LD_PRELOAD`` is the one
  variable that cannot act after a fork: the fork server starts with the one vLLM's CPU platform sets
  for its processes (vLLM's bundled ``tcmalloc`` and torch's own ``libgomp``), see :func:`cpu_ld_preload`.
  No OpenMP thread pool runs in the fork server (it imports, it computes nothing), so a forked worker
  starts its own as a spawned one would.
- *Its parent*: the fork server, not its starter. A spawned process would have been its starter's
  child (Ray kills a dead worker's children); a forked one watches its starter (a Linux pidfd) and
  exits when it is gone. The engine process reaches the same fork server for its worker.
- *The fork server itself* stays up, asleep, while the engine runs: it reports each forked process's
  exit, which is how vLLM learns that its engine or worker died (seen: the worker killed with SIGKILL,
  the engine process reported it at once and the next request failed with vLLM's ``EngineDeadError``
  0.3 s later). It exits with this process.
  It shares its imported modules with the processes it forks (copy on write) and holds the rest of its
  memory (a few hundred MB) for the engine's life.

vLLM chooses its start method with ``get_mp_context``, a name in ``vllm.v1.engine.utils`` (for the engine
process) and in ``vllm.v1.executor.multiproc_executor`` (for the workers). While ``AsyncLLM`` is built,
the first is bound to a context that forks from the fork server; in the engine process, the second. A
vLLM without those names starts as it does by itself (checked, not assumed).
"""

from __future__ import annotations

import contextlib
import functools
import glob
import importlib
import importlib.util
import logging
import os
import platform
import select
import sys
import threading
from collections.abc import Callable, Iterator
from multiprocessing import context, forkserver
from typing import Any

__all__ = ["ENGINE_MODULES", "cpu_ld_preload", "forked_engine", "preload_for", "vllm_starting"]

logger = logging.getLogger(__name__)

#: What vLLM's engine and worker processes import before they can start (the engine's loop, the
#: multiprocessing executor, the CPU worker and model runner, torch and transformers with them). The
#: model's own module is imported by name when the model loads: it is not known ahead.
ENGINE_MODULES = ("vllm.v1.engine.core", "vllm.v1.executor.multiproc_executor", "vllm.v1.worker.cpu_worker")

#: Where vLLM names its start method: for the engine process, for its workers.
_ENGINE_STARTER = "vllm.v1.engine.utils"
_WORKER_STARTER = "vllm.v1.executor.multiproc_executor"


def forked_engine(args: dict[str, Any], *, cpu: bool) -> bool:
    """Whether an engine of these ``AsyncEngineArgs`` keyword arguments starts its processes from the
    fork server (see the module's docstring for when, and why only then)."""
    return (
        cpu
        and args.get("tensor_parallel_size", 1) == 1
        and args.get("pipeline_parallel_size", 1) == 1
        and args.get("data_parallel_size", 1) == 1
        and args.get("distributed_executor_backend") in (None, "mp")
        and os.environ.get("VLLM_CPU_OMP_THREADS_BIND") == "nobind"
    )


def cpu_ld_preload(current: str = "") -> str:
    """``LD_PRELOAD`` as vLLM's CPU platform sets it for its processes (``CpuPlatform.check_and_update_config``),
    found without importing torch or vLLM: torch's ``libgomp`` appended unless an OpenMP library is
    already there, vLLM's bundled ``tcmalloc`` put first unless one is; on Linux x86 and ARM only."""
    if platform.system() != "Linux" or platform.machine().lower() not in ("x86_64", "amd64", "aarch64", "arm64"):
        return current
    preload = current
    torch_dir = _package_dir("torch")
    if torch_dir and not any(lib in preload for lib in ("libomp", "libgomp", "libiomp")):
        site = os.path.dirname(torch_dir)
        found = glob.glob(os.path.join(site, "torch.libs", "libgomp*.so*")) + glob.glob(
            os.path.join(torch_dir, "lib", "libgomp*.so*")
        )
        if found:
            preload = f"{preload}:{found[0]}" if preload else found[0]
    vllm_dir = _package_dir("vllm")
    if vllm_dir and "libtcmalloc" not in preload:
        for pattern in ("libtcmalloc_minimal*.so*", "libtcmalloc.so*"):
            found = glob.glob(os.path.join(vllm_dir, "libs", pattern))
            if found:
                preload = f"{found[0]}:{preload}" if preload else found[0]
                break
    return preload


def _package_dir(name: str) -> str | None:
    spec = importlib.util.find_spec(name)
    locations = list(spec.submodule_search_locations or []) if spec else []
    return locations[0] if locations else None


def preload_for(args: dict[str, Any], *, cpu: bool, modules: tuple[str, ...] = ENGINE_MODULES) -> bool:
    """Where :func:`forked_engine`: start the fork server, which imports ``modules`` on its own core, and
    return at once; whether it is up (False where it does not apply or cannot start: vLLM then starts as
    it does by itself). Call before this process imports vLLM itself."""
    if not forked_engine(args, cpu=cpu):
        return False
    before = os.environ.get("LD_PRELOAD")
    try:
        os.environ["LD_PRELOAD"] = cpu_ld_preload(before or "")
        forkserver.set_forkserver_preload(list(modules))
        forkserver.ensure_running()
    except Exception as exc:  # no fork server here: vLLM's own start
        logger.warning("vLLM's processes start without their imports done ahead: %s", exc)
        return False
    finally:
        if before is None:
            os.environ.pop("LD_PRELOAD", None)
        else:
            os.environ["LD_PRELOAD"] = before
    return True


@contextlib.contextmanager
def vllm_starting(preloaded: bool) -> Iterator[bool]:
    """While ``AsyncLLM`` is built: vLLM's engine process is forked from the fork server that
    :func:`preload_for` started (when ``preloaded``), and its workers then too. Yields whether it applied."""
    engine_utils = _mp_context_owner(_ENGINE_STARTER)
    if not preloaded or engine_utils is None or _mp_context_owner(_WORKER_STARTER) is None:
        yield False
        return
    own = engine_utils.get_mp_context
    engine_utils.get_mp_context = functools.partial(_PreloadedContext, forkserver._forkserver._forkserver_address)
    try:
        yield True
    finally:
        engine_utils.get_mp_context = own


def _mp_context_owner(name: str) -> Any:
    """vLLM's module ``name`` where it chooses its start method with ``get_mp_context``, else None."""
    module = importlib.import_module(name)
    return module if callable(getattr(module, "get_mp_context", None)) else None


class _PreloadedProcess(context.ForkServerProcess):
    """A process forked from the fork server at ``address`` that runs in its starter's environment at
    ``start()``, exits when its starter does, and forks its own processes from the same fork server."""

    def __init__(self, *args: Any, address: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._address = address

    def start(self) -> None:
        self._target = functools.partial(_as_started, dict(os.environ), os.getpid(), self._address, self._target)
        super().start()


class _PreloadedContext(context.ForkServerContext):
    """A ``multiprocessing`` context whose processes are forked from the fork server at ``address``."""

    def __init__(self, address: Any) -> None:
        self._address = address

    def Process(self, *args: Any, **kwargs: Any) -> _PreloadedProcess:  # noqa: N802 (multiprocessing's name)
        return _PreloadedProcess(*args, address=self._address, **kwargs)


def _as_started(
    environment: dict[str, str], starter: int, address: Any, target: Callable[..., Any], *args: Any, **kwargs: Any
) -> Any:
    """In the forked process, before ``target``: its starter's environment, a watch on the starter, and
    the fork server at ``address`` for the processes it starts in turn (vLLM's workers)."""
    os.environ.clear()
    os.environ.update(environment)
    _exit_with(starter)
    # The fork server gave this process its "alive" descriptor and the resource tracker's; the address is
    # all a forked process lacks to ask it for a process in turn (a fork server is started by its client,
    # so ``ensure_running`` would start another: it is known running).
    server = forkserver._forkserver
    server._forkserver_address = address
    server.ensure_running = lambda: None
    workers = sys.modules.get(_WORKER_STARTER)  # imported ahead by the fork server where it is vLLM's
    if workers is not None and callable(getattr(workers, "get_mp_context", None)):
        workers.get_mp_context = functools.partial(_PreloadedContext, address)
    return target(*args, **kwargs)


def _exit_with(pid: int) -> None:
    """Exit this process when process ``pid`` ends (a daemon thread waiting on its pidfd)."""
    try:
        fd = os.pidfd_open(pid)
    except (AttributeError, OSError) as exc:  # not Linux >= 5.3, or already gone
        logger.warning("a process forked for vLLM cannot watch its starter (pid %s): %s", pid, exc)
        return

    def wait() -> None:
        select.select([fd], [], [])
        os._exit(1)

    threading.Thread(target=wait, name="docextract-starter-watch", daemon=True).start()
