"""The service's one settings model: what ``build_app(args)``, ``serve run`` and ``docextract serve`` validate.

:class:`ServeAppConfig` is the ``args:`` block of an application in a Serve
config file. Each entry of ``models`` is an :class:`~docextract.config.ExtractionConfig`
(the same fields the CLI and the batch job take) plus a ``deployment:`` block
for Ray Serve (replicas, autoscaling, queue limits). Every model is extended,
never restated: a misspelt key is an error (``extra="forbid"``) at load time.

Limits that protect the service come from two places, each written once:
per-file limits (bytes, pixels, PDF pages, render timeout) are each model's
``preprocess`` options, the same ones the CLI enforces; per-request limits
(request body size, URL fetching, request timeout) are :class:`ServiceLimits`.

This module imports pydantic and docextract's pure modules only (no Ray), so
configs are checked in a second, anywhere.
"""

from __future__ import annotations

import os
import pathlib
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator

from docextract.config import ExtractionConfig, read_config_file
from docextract.errors import DocExtractError, validation_problems
from docextract.tasks import task_slug

__all__ = [
    "APP_IMPORT_PATH",
    "AutoscalingSettings",
    "DeploymentSettings",
    "IngressSettings",
    "ServeAppConfig",
    "ServedModel",
    "ServiceLimits",
    "app_args",
    "load_serve_config",
]

#: What a Serve config file names as the application's ``import_path``.
APP_IMPORT_PATH = "serve.app:build_app"


class AutoscalingSettings(BaseModel):
    """Ray Serve autoscaling for one model's replicas.

    Unset fields take Ray Serve's own defaults (``ray.serve.config.AutoscalingConfig``),
    so no default is restated here; :func:`serve.app.deployment_options` hands
    the set fields to Ray, which validates them again.
    """

    model_config = ConfigDict(extra="forbid")

    min_replicas: int | None = Field(default=None, ge=0, description="Fewest replicas (0 allows scaling to zero).")
    max_replicas: int | None = Field(default=None, ge=1, description="Most replicas.")
    initial_replicas: int | None = Field(default=None, ge=0, description="Replicas started on deploy.")
    target_ongoing_requests: float | None = Field(
        default=None, gt=0, description="Requests (running + queued) each replica should hold; more scales up."
    )
    upscale_delay_s: float | None = Field(default=None, ge=0, description="Sustained load needed before scaling up.")
    downscale_delay_s: float | None = Field(default=None, ge=0, description="Idle time needed before scaling down.")
    look_back_period_s: float | None = Field(default=None, gt=0, description="Window the load is averaged over.")

    @model_validator(mode="after")
    def _check_bounds(self) -> AutoscalingSettings:
        low = self.min_replicas if self.min_replicas is not None else 1
        high = self.max_replicas if self.max_replicas is not None else max(low, 1)
        if high < low:
            raise ValueError(f"max_replicas ({high}) is less than min_replicas ({low})")
        if self.initial_replicas is not None and not low <= self.initial_replicas <= high:
            raise ValueError(f"initial_replicas ({self.initial_replicas}) is not within [{low}, {high}]")
        return self


class DeploymentSettings(BaseModel):
    """How Ray Serve runs one model's replicas (each replica holds one engine).

    A replica's resources are not set here: they come from the model's
    ``placement`` (and ``tensor_parallel_size``) through
    :func:`docextract.cluster.placement.engine_placement`, the same request a batch actor makes.
    """

    model_config = ConfigDict(extra="forbid")

    num_replicas: int | None = Field(
        default=None, ge=1, description="A fixed number of replicas (default 1); exclusive with autoscaling."
    )
    autoscaling: AutoscalingSettings | None = Field(default=None, description="Scale replicas with the load.")
    max_ongoing_requests: int = Field(
        default=32,
        ge=1,
        description="Requests one replica runs at once; vLLM batches them, so this is the batch the engine sees.",
    )
    max_queued_requests: int = Field(
        default=128,
        ge=-1,
        description="Requests waiting for a replica before new ones are refused with 503 + Retry-After (-1: no limit).",
    )
    retry_after_s: float = Field(default=1.0, ge=0, description="Retry-After sent with a 503 when the queue is full.")
    health_check_period_s: float | None = Field(default=None, gt=0, description="How often Serve checks the engine.")
    health_check_timeout_s: float | None = Field(
        default=None, gt=0, description="A health check slower than this fails."
    )

    @model_validator(mode="after")
    def _one_way_to_scale(self) -> DeploymentSettings:
        if self.num_replicas is not None and self.autoscaling is not None:
            raise ValueError("give either num_replicas or autoscaling, not both")
        return self


class ServedModel(ExtractionConfig):
    """One model the service hosts: an :class:`ExtractionConfig` plus its Serve ``deployment`` settings."""

    deployment: DeploymentSettings = Field(default_factory=DeploymentSettings)

    def engine_config(self) -> ExtractionConfig:
        """The engine's config: everything but the Serve settings."""
        return ExtractionConfig.model_validate(self.model_dump(exclude={"deployment"}))

    @property
    def deployment_name(self) -> str:
        """A Serve deployment name derived from the served name (see :meth:`ServeAppConfig._unique_names`)."""
        return "Extractor_" + task_slug(self.model_name, default="model", max_length=None)


class ServiceLimits(BaseModel):
    """Per-request limits. Per-file limits (bytes, pixels, pages) are each model's ``preprocess`` options."""

    model_config = ConfigDict(extra="forbid")

    max_request_bytes: int = Field(
        default=72 * 1024**2,
        gt=0,
        description=(
            "Largest request body; larger requests get 413 before they are parsed. The default fits a "
            "50 MiB file sent as base64 in JSON."
        ),
    )
    request_timeout_s: float = Field(
        default=300.0,
        gt=0,
        description="Longest a request may take (504 after it); a client may ask for less with X-Request-Timeout.",
    )
    allow_url_fetch: bool = Field(
        default=False,
        description="Fetch http(s) image URLs given in requests (never from loopback, private or link-local addresses).",
    )
    url_fetch_timeout_s: float = Field(default=10.0, gt=0, description="Wall-clock limit for fetching one URL.")
    url_fetch_max_redirects: int = Field(default=3, ge=0, description="Redirects followed, each one checked again.")
    require_schema: bool = Field(
        default=False,
        description="Refuse chat, completions and TGI requests without a schema or grammar (400) instead of "
        "generating free text: for deployments that serve extraction only.",
    )
    playground: bool = Field(
        default=True,
        description="Serve the playground page at /playground (the page loads without a key; every API call "
        "it makes sends the key the user types).",
    )


class IngressSettings(BaseModel):
    """The HTTP ingress deployment (FastAPI). It holds no engine and reserves no CPU."""

    model_config = ConfigDict(extra="forbid")

    num_replicas: int = Field(default=1, ge=1, description="Ingress replicas (each keeps its own /metrics counters).")
    max_ongoing_requests: int = Field(
        default=512,
        ge=1,
        description="Requests one ingress replica holds at once; above the models' capacity so their queues decide.",
    )


class ServeAppConfig(BaseModel):
    """The ``args`` of the docextract Serve application."""

    model_config = ConfigDict(extra="forbid")

    models: list[ServedModel] = Field(
        min_length=1, description="Models served side by side; requests choose one by name, the first is the default."
    )
    api_key: SecretStr | None = Field(
        default=None, description="Bearer key every route but /healthz requires (prefer api_key_env)."
    )
    api_key_env: str | None = Field(
        default=None, description="Environment variable holding the key, read by the ingress when it starts."
    )
    limits: ServiceLimits = Field(default_factory=ServiceLimits)
    ingress: IngressSettings = Field(default_factory=IngressSettings)

    @model_validator(mode="after")
    def _unique_names(self) -> ServeAppConfig:
        for attr, what in (("model_name", "model name"), ("deployment_name", "deployment name")):
            seen: set[str] = set()
            for model in self.models:
                name = getattr(model, attr)
                if name in seen:
                    raise ValueError(f"two models share the {what} {name!r}; give each a distinct served_model_name")
                seen.add(name)
        if self.api_key is not None and self.api_key_env is not None:
            raise ValueError("give either api_key or api_key_env, not both")
        return self

    @property
    def default_model(self) -> ServedModel:
        return self.models[0]

    def resolve_api_key(self) -> str | None:
        """The key requests must carry, or None when the service is open.

        Raises:
            DocExtractError: ``api_key_env`` names a variable that is not set
                (an unset variable must not silently open the service).
        """
        if self.api_key is not None:
            return self.api_key.get_secret_value()
        if self.api_key_env is None:
            return None
        value = os.environ.get(self.api_key_env)
        if not value:
            raise DocExtractError(
                f"api_key_env names {self.api_key_env}, which is not set in the ingress's environment "
                "(set it, or pass it in the application's runtime_env env_vars)"
            )
        return value


def app_args(data: dict[str, Any], origin: str = "serve config") -> dict[str, Any]:
    """The docextract application's ``args`` from a Serve config file, or ``data`` itself."""
    if "applications" not in data:
        return data
    apps = [a for a in data.get("applications") or [] if a.get("import_path") == APP_IMPORT_PATH]
    if len(apps) != 1:
        raise DocExtractError(
            f"{origin}: expected exactly one application with import_path {APP_IMPORT_PATH}, found {len(apps)}"
        )
    return apps[0].get("args") or {}


def load_serve_config(source: str | pathlib.Path | dict[str, Any] | ServeAppConfig) -> ServeAppConfig:
    """Validate service settings from a mapping, a YAML/JSON file, or a Serve config file.

    A Serve config file (with ``applications:``) is accepted too: the ``args`` of
    its application whose ``import_path`` is ``serve.app:build_app`` are used,
    so one file serves ``serve run``/``serve deploy`` and ``docextract serve --config``.

    Raises:
        DocExtractError: unreadable file or invalid settings, as one line.
    """
    if isinstance(source, ServeAppConfig):
        return source
    origin = "serve config"
    if isinstance(source, dict):
        data = source
    else:
        origin = str(source)
        data = read_config_file(source)
    data = app_args(data, origin)
    try:
        return ServeAppConfig.model_validate(data)
    except ValidationError as exc:
        raise DocExtractError(f"invalid serve configuration: {validation_problems(exc)}") from None
