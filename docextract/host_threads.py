"""CPU threads of the process that hosts an engine.

vLLM runs the model in its own process (the engine core, started by ``AsyncLLM``
with this process's environment); the host process does per-request work only:
vLLM's image processor, detokenizing, docextract's validation. Its torch work
needs no parallelism, and OpenMP workers spinning there take cycles from the
cores the model computes on: Qwen2-VL's image processor on a 1-megapixel page
costs about 12 ms of CPU on one thread against 14 to 45 ms on two (issue 15).
"""

from __future__ import annotations

import os

__all__ = ["one_host_thread"]


def one_host_thread() -> None:
    """Once vLLM's engine process is up: one torch thread for this process's host work (threads
    that start their torch work later follow). Not where the model runs in this process
    (``VLLM_ENABLE_V1_MULTIPROCESSING=0``)."""
    if os.environ.get("VLLM_ENABLE_V1_MULTIPROCESSING", "1") == "0":
        return
    import torch

    torch.set_num_threads(1)
