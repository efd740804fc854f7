"""Session fixtures: the tiny model (built once) and one real vLLM engine shared by all
integration tests.

The engine lives on its own asyncio loop in a background thread, so plain
(synchronous) tests drive it with ``engine_runner.run(coro)``, each call with
a timeout: a hung engine fails a test instead of hanging CI.
"""

from __future__ import annotations

import asyncio
import os
import pathlib
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
os.environ.setdefault("VLLM_CPU_OMP_THREADS_BIND", "nobind")
# Ray 2.60 turns token auth on for every cluster once ~/.ray/auth_token exists (the first
# embedded ray.init() writes it); the test cluster's dashboard then answers 401 to the fixture's
# readiness probe and to `ray job submit`. The loopback-only test cluster runs without it.
os.environ.setdefault("RAY_AUTH_MODE", "disabled")

REPO = pathlib.Path(__file__).resolve().parent.parent
SAMPLES = REPO / "docextract" / "samples"
T = TypeVar("T")


def pytest_collection_modifyitems(config, items):
    """Skip tests marked ``gpu`` where no CUDA device is visible."""
    try:
        import torch

        has_gpu = torch.cuda.is_available()
    except ImportError:
        has_gpu = False
    if has_gpu:
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> pathlib.Path:
    """The random-weight Qwen2-VL, built once per session (seconds)."""
    from docextract.testing.tiny_model import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("models") / "tiny-qwen2vl")


@pytest.fixture(scope="session")
def tiny_config(tiny_model_dir):
    """The config the integration tests run: the tiny model, small context, eager mode."""
    from docextract.config import ExtractionConfig

    return ExtractionConfig(
        model=str(tiny_model_dir),
        max_model_len=4096,
        enforce_eager=True,
        max_images_per_prompt=4,
        sampling={"max_tokens": 1024},
        preprocess={"max_pixels": 224 * 224},  # the tiny model's own budget: at most 64 image tokens
    )


class EngineRunner:
    """An :class:`ExtractionEngine` on a private event loop in a daemon thread."""

    def __init__(self, config) -> None:
        from docextract.engine import ExtractionEngine

        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="engine-loop", daemon=True)
        self._thread.start()

        async def build():
            return ExtractionEngine(config)

        self.engine = self.run(build(), timeout=600)

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 300) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        async def shutdown():
            self.engine.shutdown()
            # Let the engine's background tasks finish cancelling before the loop stops.
            pending = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

        self.run(shutdown(), timeout=60)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=30)
        self.loop.close()


@pytest.fixture(scope="session")
def engine_runner(tiny_config):
    runner = EngineRunner(tiny_config)
    yield runner
    runner.close()


@pytest.fixture(scope="session")
def ray_cluster():
    """One real local Ray cluster (head with dashboard) for every Serve and batch test."""
    from raycluster import LocalRayCluster

    cluster = LocalRayCluster().start()
    yield cluster
    cluster.stop()


@pytest.fixture(scope="session")
def ray_driver(ray_cluster):
    """This test process connected to :func:`ray_cluster` as a driver."""
    import ray

    from docextract.cluster.runtime import init_ray

    init_ray(ray_cluster.address)
    yield ray_cluster
    ray.shutdown()
