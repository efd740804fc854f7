"""The engine's host process: one torch thread for its own work once the engine's processes are up,
vLLM's image processing included (docextract.host_threads); the environment is left to the engine."""

from __future__ import annotations

import os

import pytest


@pytest.mark.integration
def test_vllms_image_processing_runs_on_one_thread_in_the_engines_host(engine_runner, monkeypatch):
    import torch
    from vllm.renderers import base

    from docextract.host_threads import one_thread_image_processing

    engine = engine_runner.engine
    # vLLM's front end runs the model's image processor in its renderer's thread, inside this context,
    # which reads OMP_NUM_THREADS at every request (here as the engine's processes were started with it).
    monkeypatch.setenv("OMP_NUM_THREADS", "2")

    def processor_threads(num_threads: int | None = None) -> int:
        with base.set_default_torch_num_threads(num_threads):
            return torch.get_num_threads()

    assert engine.llm.renderer._executor.submit(processor_threads).result(timeout=30) == 1
    # An explicit count is vLLM's own choice: kept. Wrapped once, however many engines start.
    assert engine.llm.renderer._executor.submit(processor_threads, 2).result(timeout=30) == 2
    wrapped = base.set_default_torch_num_threads
    assert one_thread_image_processing() and base.set_default_torch_num_threads is wrapped
    assert os.environ["OMP_NUM_THREADS"] == "2"  # the environment is not changed
