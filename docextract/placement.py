"""Ray resource requests for one engine, the same for a Serve replica and a batch actor.

An engine with ``tensor_parallel_size`` N on GPUs reserves N GPUs in one Ray
actor. One actor lives on one node, so its N GPUs are always on the same node
(the guarantee a ``STRICT_PACK`` placement group gives), and vLLM starts its N
tensor-parallel workers inside that actor with its multiprocessing executor,
on exactly the GPUs Ray assigned (``CUDA_VISIBLE_DEVICES``).

On a CPU-only cluster the GPU request is dropped (``accelerator: cpu`` or
``auto`` with no GPUs in the cluster) and ``custom_resources`` can stand in
for it, so placement runs through the same code on a test bed without GPUs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from docextract.config import ExtractionConfig

__all__ = ["EnginePlacement", "engine_placement"]


@dataclass(frozen=True)
class EnginePlacement:
    """The resources one engine reserves, in the forms Ray's APIs take them."""

    num_cpus: float
    num_gpus: int
    resources: dict[str, float] = field(default_factory=dict)
    accelerator_type: str | None = None

    @property
    def uses_gpu(self) -> bool:
        return self.num_gpus > 0

    def actor_options(self) -> dict[str, Any]:
        """Options for ``ray.remote``/``.options``, Serve's ``ray_actor_options`` and ``map_batches``."""
        options: dict[str, Any] = {"num_cpus": self.num_cpus, "num_gpus": self.num_gpus}
        if self.resources:
            options["resources"] = dict(self.resources)
        if self.accelerator_type:
            options["accelerator_type"] = self.accelerator_type
        return options

    def bundle(self) -> dict[str, float]:
        """The same request as one placement-group bundle."""
        bundle: dict[str, float] = {"CPU": self.num_cpus, **self.resources}
        if self.num_gpus:
            bundle["GPU"] = self.num_gpus
        if self.accelerator_type:
            bundle[f"accelerator_type:{self.accelerator_type}"] = 0.001
        return {k: v for k, v in bundle.items() if v}


def _cluster_gpus() -> float:
    import ray

    if not ray.is_initialized():
        return 0.0
    return float(ray.cluster_resources().get("GPU", 0.0))


def engine_placement(config: ExtractionConfig, *, cluster_gpus: float | None = None) -> EnginePlacement:
    """What one engine of ``config`` reserves.

    ``accelerator: auto`` asks for GPUs when the cluster has any
    (``cluster_gpus``, read from the connected Ray cluster when not given):
    the driver that builds the app or the job often has no GPU itself.
    """
    placement = config.placement
    accelerator = placement.accelerator
    if accelerator == "auto":
        gpus = _cluster_gpus() if cluster_gpus is None else cluster_gpus
        accelerator = "gpu" if gpus > 0 else "cpu"
    return EnginePlacement(
        num_cpus=placement.cpus_per_engine,
        num_gpus=config.tensor_parallel_size if accelerator == "gpu" else 0,
        resources=dict(placement.custom_resources),
        accelerator_type=placement.accelerator_type if accelerator == "gpu" else None,
    )
