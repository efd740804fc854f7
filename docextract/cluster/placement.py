"""Ray resource requests for one engine, the same for a Serve replica and a batch actor.

An engine reserves one bundle: its CPUs, and ``tensor_parallel_size`` GPUs
on a GPU cluster (:meth:`EnginePlacement.bundles`). Ray never splits a bundle
across nodes, so the N GPUs of a tensor-parallel engine are always on one
node.

* A Serve replica lives in a placement group of that bundle with strategy
  ``STRICT_PACK`` (:meth:`EnginePlacement.serve_options`); Serve creates the
  group with the replica and removes or recreates it with the replica.
* A batch actor asks for the same bundle as its own resources
  (:meth:`EnginePlacement.actor_options`), which places it exactly as a
  one-bundle ``STRICT_PACK`` group would. Why not a group per actor (Ray
  Data LLM makes them in ``ray_remote_args_fn``): Ray Data's actor pool
  creates, restarts and replaces actors on its own, and groups made for it
  outlive their actors. Tried here with a worker node lost mid-job, the pool's
  replacement attempts left pending groups that took the new node's device
  before the restarting actor could, and the job waited forever. An actor's
  own request is restarted with it, on any node that fits.

Why one bundle and not one per GPU (as Ray Data LLM builds for vLLM's Ray
executor): the engine runs vLLM's multiprocessing executor inside its own
actor, which therefore holds all N GPUs itself (Ray sets
``CUDA_VISIBLE_DEVICES`` for it) and starts the N tensor-parallel workers as
its child processes. No extra actors, and the same path runs on a CPU node.

On a CPU-only cluster the GPU request is dropped (``accelerator: cpu``, or
``auto`` with no GPUs in the cluster). ``device_resource`` names a Ray
resource that takes the GPUs' place in the bundle (``tensor_parallel_size``
units of it), so placement runs through exactly the same code on a test bed
without GPUs; ``custom_resources`` adds fixed extra requests (a node label
such as ``{"ssd": 1}``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from docextract.config import ExtractionConfig

__all__ = ["STRATEGY", "EnginePlacement", "engine_placement"]

#: All of an engine's resources on one node.
STRATEGY = "STRICT_PACK"


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
        """The engine actor's own request (``ray.remote`` options, Serve's ``ray_actor_options``,
        ``map_batches``); it fits the placement group's single bundle exactly."""
        options: dict[str, Any] = {"num_cpus": self.num_cpus, "num_gpus": self.num_gpus}
        if self.resources:
            options["resources"] = dict(self.resources)
        if self.accelerator_type:
            options["accelerator_type"] = self.accelerator_type
        return options

    def bundles(self) -> list[dict[str, float]]:
        """The engine's placement group: one bundle, the same request as :meth:`actor_options`."""
        bundle: dict[str, float] = {"CPU": self.num_cpus, **self.resources}
        if self.num_gpus:
            bundle["GPU"] = self.num_gpus
        if self.accelerator_type:
            # How Ray itself turns ``accelerator_type`` into a resource request.
            bundle[f"accelerator_type:{self.accelerator_type}"] = 0.001
        return [{k: v for k, v in bundle.items() if v}]

    def serve_options(self) -> dict[str, Any]:
        """Serve deployment options: Serve creates (and after a failure recreates) the group per replica."""
        return {
            "ray_actor_options": self.actor_options(),
            "placement_group_bundles": self.bundles(),
            "placement_group_strategy": STRATEGY,
        }


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
    on_gpu = accelerator == "gpu"
    resources = dict(placement.custom_resources)
    if not on_gpu and placement.device_resource:
        resources[placement.device_resource] = resources.get(placement.device_resource, 0) + config.tensor_parallel_size
    return EnginePlacement(
        num_cpus=placement.cpus_per_engine,
        num_gpus=config.tensor_parallel_size if on_gpu else 0,
        resources=resources,
        accelerator_type=placement.accelerator_type if on_gpu else None,
    )
