"""Join a Ray cluster, or start an embedded local one.

Both front doors call :func:`init_ray`: with an address (``--address`` or
``RAY_ADDRESS``, which ``ray job submit`` sets for the job's driver) it joins
that cluster; without one it starts Ray inside this process, the embedded
default for a laptop or a single machine.

Workers on other nodes do not inherit this process's environment, so the
settings that decide how the engine loads (offline hub, vLLM CPU knobs, log
levels) travel in the job's ``runtime_env``. An embedded instance's workers
do inherit it (the raylet this process starts starts them), and its job has
no ``runtime_env`` unless a caller passes one (see :func:`init_options`).
"""

from __future__ import annotations

import json
import os
from typing import Any

__all__ = ["FORWARDED_ENV_PREFIXES", "forwarded_env", "init_options", "init_ray", "submitted_job_env_vars"]

#: Environment variables (by prefix) that engines on other nodes need to see.
FORWARDED_ENV_PREFIXES = (
    "HF_HUB_OFFLINE",
    "HF_HOME",
    "TRANSFORMERS_OFFLINE",
    "VLLM_",
    "TQDM_DISABLE",
)
# Not OMP_NUM_THREADS: a submitted job's driver runs with 1, and forwarded it would give every
# engine (Serve replicas included) one thread. Ray sets it per worker to the CPUs it reserved.


def forwarded_env() -> dict[str, str]:
    """The variables of :data:`FORWARDED_ENV_PREFIXES` set in this process."""
    return {k: v for k, v in os.environ.items() if k.startswith(FORWARDED_ENV_PREFIXES)}


def submitted_job_env_vars() -> dict[str, str]:
    """The ``env_vars`` of the runtime_env ``ray job submit`` gave this driver ({} otherwise).

    Ray merges a submitted job's runtime_env with the one passed to ``ray.init``
    and refuses the job when both set the same variable, even to the same value.
    The job's variables are already in this process's environment, so
    :func:`init_ray` must not forward them a second time.
    """
    raw = os.environ.get("RAY_JOB_CONFIG_JSON_ENV_VAR")
    if not raw:
        return {}
    try:
        runtime_env = json.loads(raw).get("runtime_env") or {}
    except (ValueError, AttributeError):
        return {}
    return dict(runtime_env.get("env_vars") or {})


def init_ray(address: str | None = None, *, num_cpus: int | None = None, **kwargs: Any) -> dict[str, Any]:
    """Connect to Ray once per process and return the cluster's resources.

    ``address`` ``None`` means ``RAY_ADDRESS`` if set, else a new local
    instance (``num_cpus`` logical CPUs; more than the cores is fine, the
    engine's threads are not Ray tasks). An existing connection is reused.
    """
    import ray

    if not ray.is_initialized():
        address = address or os.environ.get("RAY_ADDRESS") or None
        # "local": a new instance even where a `ray start` cluster runs on this machine (ray.init's
        # own default would join it, and that cluster's workers do not have this environment).
        ray.init(address=address or "local", **init_options(address, num_cpus=num_cpus, **kwargs))
    return ray.cluster_resources()


def init_options(address: str | None, *, num_cpus: int | None = None, **kwargs: Any) -> dict[str, Any]:
    """``ray.init``'s keyword arguments for :func:`init_ray`.

    Joining a cluster, the variables of :data:`FORWARDED_ENV_PREFIXES` travel in the job's
    ``runtime_env``. A local instance gets none of its own (only what the caller passes): its
    workers are started by the raylet this process starts, with this process's environment, and
    a worker whose job has a ``runtime_env`` starts through Ray's ``setup_worker.py``, a second
    Python start (about 0.8 s of CPU per worker on 2 cores, measured, and a batch job starts
    several while its engine loads).
    """
    runtime_env = dict(kwargs.pop("runtime_env", None) or {})
    if address is not None:
        job_env = submitted_job_env_vars()
        forwarded = {k: v for k, v in forwarded_env().items() if k not in job_env}
        env_vars = {**forwarded, **runtime_env.get("env_vars", {})}
        if env_vars:
            runtime_env["env_vars"] = env_vars
    options: dict[str, Any] = {"runtime_env": runtime_env or None, "log_to_driver": True, **kwargs}
    if address is None:
        options["num_cpus"] = num_cpus
        options.setdefault("include_dashboard", False)
    return options
