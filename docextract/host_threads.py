"""CPU threads and priority of the process that hosts an engine.

vLLM runs the model in its own process (the engine core, started by ``AsyncLLM``
with this process's environment); the host process does per-request work only:
vLLM's image processor, detokenizing, docextract's validation. Its torch work
needs no parallelism, and OpenMP workers spinning there take cycles from the
cores the model computes on: Qwen2-VL's image processor on a 1-megapixel page
costs about 12 ms of CPU on one thread against 14 to 45 ms on two (issue 15).

Priority: Ray starts every worker process at nice 15, an engine's actor
included, so on shared cores the engine competes as an equal with the CPU
stages' worker processes (their start-up and imports run at 15; only their
page work drops to 19, :mod:`batch.preprocess`). An engine's host process asks
for the normal priority (:func:`normal_priority`) before it starts the engine;
the engine core process and its workers inherit it, so where cores are short
(a CPU node, a GPU node rendering many PDFs) the engine and its feeding come
first. Measured on 2 cores (16 images, bench model): the CPU stages' workers
took about 9 s of CPU during one engine's start, but that start is bound by
single-threaded imports rather than by the cores, and it was not shorter
(46.2 s from Ray up to the first request, against 47.3 s at nice 15). Raising a
priority needs ``CAP_SYS_NICE`` (root in most containers): without it the
process stays where Ray put it.
"""

from __future__ import annotations

import os
from typing import Any

__all__ = ["NORMAL_NICE", "normal_priority", "one_host_thread", "one_thread_image_processing"]

#: The niceness an engine's host process asks for: the default priority of the machine's processes.
NORMAL_NICE = 0


def one_host_thread() -> None:
    """Once vLLM's engine process is up: one torch thread for this process's host work, vLLM's image
    processing included. Not where the model runs in this process (``VLLM_ENABLE_V1_MULTIPROCESSING=0``).

    vLLM's front end runs the model's image processor inside its own
    ``set_default_torch_num_threads()``, which sets torch's threads from ``OMP_NUM_THREADS`` at every
    request: in this process, the engine's threads (the batch actor sets them for vLLM's engine
    process, which inherits them). That name in :mod:`vllm.renderers.base` is wrapped to ask for one
    thread (:func:`one_thread_image_processing`); this process's environment is left as it is, for
    the processes it starts. Measured in the batch engine actor on 1-megapixel pages (``perf``, the
    tiny model, two threads there): an OpenMP worker of vLLM's front-end thread took about 30% of the
    process's CPU, more than half of it spinning between the image processor's copies; gone with one."""
    if os.environ.get("VLLM_ENABLE_V1_MULTIPROCESSING", "1") == "0":
        return
    import torch

    torch.set_num_threads(1)
    one_thread_image_processing()


def one_thread_image_processing() -> bool:
    """Wrap ``vllm.renderers.base.set_default_torch_num_threads`` (vLLM 0.32) so that, asked for the
    default (``OMP_NUM_THREADS``), it sets one thread; an explicit count is kept. Once per process;
    False where vLLM has no such name (then nothing changes)."""
    try:
        from vllm.renderers import base
    except ImportError:
        return False
    original = getattr(base, "set_default_torch_num_threads", None)
    if original is None:
        return False
    if getattr(original, "one_thread", False):
        return True

    def set_default_torch_num_threads(num_threads: int | None = None) -> Any:
        return original(1 if num_threads is None else num_threads)

    set_default_torch_num_threads.one_thread = True  # type: ignore[attr-defined]
    base.set_default_torch_num_threads = set_default_torch_num_threads
    return True


def normal_priority() -> bool:
    """Every thread of this process to nice :data:`NORMAL_NICE` when it is niced above it (Linux
    keeps a niceness per thread; processes and threads started afterwards inherit their creator's).
    True when no thread is left above it; False without the permission, or off Linux."""
    try:
        threads = [int(tid) for tid in os.listdir("/proc/self/task")]
    except (OSError, ValueError):
        return False
    done = True
    for tid in threads:
        try:
            if os.getpriority(os.PRIO_PROCESS, tid) > NORMAL_NICE:
                os.setpriority(os.PRIO_PROCESS, tid, NORMAL_NICE)
        except ProcessLookupError:  # the thread ended meanwhile
            continue
        except (OSError, AttributeError):  # PermissionError without CAP_SYS_NICE
            done = False
    return done
