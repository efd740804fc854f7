"""``build_app(args)``: the docextract Ray Serve application.

One replica deployment per served model (each replica holds one engine:
:class:`serve.deployment.ExtractorReplica`) and one FastAPI ingress in front
(:class:`serve.ingress.Ingress`), which reaches each model through a
``DeploymentHandle`` and chooses it by the request's ``model`` name::

    HTTP -> Serve proxy -> Ingress (FastAPI, 0 CPU) --handle--> Extractor_<model> replicas (one engine each)

Used three ways, all validated by :class:`serve.config.ServeAppConfig`:

* ``serve run serve/serve_config.yaml`` / ``serve deploy serve/serve_config.yaml``
  (``import_path: serve.app:build_app``, settings under ``args:``);
* ``docextract serve --model M [--config serve.yaml]`` (:mod:`serve.cli`);
* ``ray_serve.run(build_app({...}))`` from Python.

A replica's resources come only from :func:`docextract.cluster.placement.engine_placement`
(the request a batch actor makes too): each replica lives in a ``STRICT_PACK``
placement group of one bundle, so with ``tensor_parallel_size`` N on GPUs the
replica actor holds N GPUs of one node and vLLM runs its N workers inside it.
Serve creates the group with the replica and recreates both when a node is lost.
"""

from __future__ import annotations

from typing import Any

from ray import serve as ray_serve

from docextract.cluster.placement import engine_placement
from docextract.errors import DocExtractError
from serve.config import ServeAppConfig, ServedModel, load_serve_config
from serve.deployment import ExtractorReplica
from serve.ingress import Ingress

__all__ = ["INGRESS_NAME", "build_app", "deployment_options", "ingress_options"]

INGRESS_NAME = "DocExtractIngress"


def deployment_options(served: ServedModel) -> dict[str, Any]:
    """Serve options of ``served``'s replica deployment (resources from the engine's placement)."""
    settings = served.deployment
    options: dict[str, Any] = {
        "name": served.deployment_name,
        **engine_placement(served).serve_options(),
        "max_ongoing_requests": settings.max_ongoing_requests,
        "max_queued_requests": settings.max_queued_requests,
        "backpressure_config": {"status_code": 503, "retry_after_s": settings.retry_after_s},
    }
    if settings.autoscaling is not None:
        options["autoscaling_config"] = settings.autoscaling.model_dump(exclude_none=True)
    else:
        options["num_replicas"] = settings.num_replicas or 1
    for name in ("health_check_period_s", "health_check_timeout_s"):
        if getattr(settings, name) is not None:
            options[name] = getattr(settings, name)
    return options


def ingress_options(config: ServeAppConfig) -> dict[str, Any]:
    """Serve options of the ingress: no CPU reserved (it holds no engine; a missing CPU would leave it unscheduled)."""
    return {
        "name": INGRESS_NAME,
        "num_replicas": config.ingress.num_replicas,
        "max_ongoing_requests": config.ingress.max_ongoing_requests,
        "ray_actor_options": {"num_cpus": 0},
    }


def build_app(args: dict[str, Any]) -> ray_serve.Application:
    """The application for ``args`` (a :class:`ServeAppConfig` as a mapping, or the model itself).

    Raises:
        DocExtractError: invalid settings, as one line naming the field.
    """
    config = load_serve_config(args)
    replica_cls = ray_serve.deployment(ExtractorReplica)
    replicas = {
        served.model_name: replica_cls.options(**deployment_options(served)).bind(served.engine_config())
        for served in config.models
    }
    ingress_cls = ray_serve.deployment(ray_serve.ingress()(Ingress))
    try:
        return ingress_cls.options(**ingress_options(config)).bind(config, replicas)
    except (TypeError, ValueError) as exc:  # Serve's own option checks
        raise DocExtractError(f"invalid Serve options: {exc}") from None
