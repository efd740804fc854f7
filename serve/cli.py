"""``docextract serve``: run the online service on Ray Serve.

::

    docextract serve --model Qwen/Qwen2.5-VL-3B-Instruct            # embedded Ray, http://127.0.0.1:8000
    docextract serve --config serve/serve_config.yaml --port 8080    # models and limits from a file
    docextract serve --config serve.yaml --address 10.0.0.5:6379 --detach   # deploy onto a running cluster

Settings come from ``--config`` (the ``args`` of the application, or a whole
Serve config file: the ``args`` of its ``serve.app:build_app`` application and
its ``http_options`` are read) and from flags, which win. The flags are
generated from the config models, so no default is restated here:
``ExtractionConfig``'s (``--model``, ``--max-model-len``, ...) plus the
replica settings (``--max-replicas``, ``--max-queued-requests``, ...) describe
the default (first) model; several models are listed in ``--config``.
Service limits (``--allow-url-fetch``, ``--request-timeout-s``, ...) apply to all.

Without ``--address`` (or ``RAY_ADDRESS``) Ray starts inside this process and
stops with it. With an address the app is deployed onto that cluster; without
``--detach`` it is deleted again on Ctrl-C, with it the command returns and the
app keeps running (the cluster path for production is ``serve deploy``).
Ctrl-C or SIGTERM shuts down cleanly.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence
from typing import Any

from docextract.cli.options import add_config_arguments, add_model_options, config_overrides, given_options
from docextract.config import ExtractionConfig, merge_overrides, read_config_file
from docextract.errors import DocExtractError
from serve.config import (
    AutoscalingSettings,
    DeploymentSettings,
    ServeAppConfig,
    ServedModel,
    ServiceLimits,
    app_args,
    load_serve_config,
)

__all__ = ["build_parser", "config_from_args", "job_runtime_env", "main"]

EXIT_OK, EXIT_USAGE = 0, 2
DEFAULT_HOST, DEFAULT_PORT = "127.0.0.1", 8000
# Dest prefixes of the generated options, read back by given_options.
_DEPLOY, _AUTOSCALE, _LIMITS = "deploy", "autoscale", "limits"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="docextract serve",
        description="Run the docextract online service (Ray Serve: OpenAI-compatible and native HTTP API).",
    )
    parser.add_argument("--config", metavar="FILE", help="service settings as YAML/JSON, or a Serve config file")
    parser.add_argument("--address", help="Ray cluster to deploy onto (default: RAY_ADDRESS, else an embedded Ray)")
    parser.add_argument("--host", help=f"HTTP host (default: the config file's http_options, else {DEFAULT_HOST})")
    parser.add_argument(
        "--port", type=int, help=f"HTTP port (default: the config file's http_options, else {DEFAULT_PORT})"
    )
    parser.add_argument("--name", default="docextract", help="Serve application name (default: docextract)")
    parser.add_argument("--route-prefix", default="/", help="HTTP route prefix (default: /)")
    parser.add_argument(
        "--api-key-env", metavar="VAR", help="require Authorization: Bearer $VAR on every route but /healthz"
    )
    parser.add_argument("--num-cpus", type=int, help="logical CPUs of the embedded Ray (default: the machine's)")
    parser.add_argument(
        "--detach", action="store_true", help="with --address: deploy and return, leaving the app running"
    )
    add_config_arguments(parser, ExtractionConfig)
    for title, model_cls, prefix in (
        ("replicas of the default model (DeploymentSettings)", DeploymentSettings, _DEPLOY),
        ("autoscaling of the default model (AutoscalingSettings)", AutoscalingSettings, _AUTOSCALE),
        ("service limits (ServiceLimits)", ServiceLimits, _LIMITS),
    ):
        add_model_options(parser, model_cls, title=title, dest_prefix=prefix)
    return parser


def _file_data(path: str | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """The app args and the ``http_options`` of ``--config`` (empty without one)."""
    if path is None:
        return {}, {}
    data = read_config_file(path)
    http = dict(data.get("http_options") or {}) if "applications" in data else {}
    return dict(app_args(data, path)), http


def config_from_args(args: argparse.Namespace) -> tuple[ServeAppConfig, dict[str, Any]]:
    """The validated service config and HTTP options for the parsed command line."""
    data, http = _file_data(args.config)
    models = data.get("models") or [{}]
    if not isinstance(models, list) or not all(isinstance(m, dict) for m in models):
        raise DocExtractError("invalid serve configuration: models must be a list of mappings")
    first = merge_overrides(models[0], config_overrides(args), ServedModel)
    deployment = given_options(args, _DEPLOY)
    autoscale = given_options(args, _AUTOSCALE)
    if autoscale:
        deployment["autoscaling"] = autoscale
    if deployment:
        first["deployment"] = merge_overrides(first.get("deployment") or {}, deployment, DeploymentSettings)
    data["models"] = [first, *(dict(m) for m in models[1:])]
    data = merge_overrides(data, {_LIMITS: given_options(args, _LIMITS)}, ServeAppConfig)
    if args.api_key_env:
        data.pop("api_key", None)
        data["api_key_env"] = args.api_key_env
    config = load_serve_config(data)
    host = args.host or http.get("host") or DEFAULT_HOST
    port = args.port or http.get("port") or DEFAULT_PORT
    return config, {"host": host, "port": int(port)}


def job_runtime_env(config: ServeAppConfig, address: str | None) -> dict[str, Any] | None:
    """The ``runtime_env`` the service's Ray job gets. The ingress reads the API key from its own
    environment (``api_key_env``): joining a cluster (``address``), the key travels with the job;
    an embedded Ray's workers already have this process's environment (its raylet starts them),
    so the key is not copied into the job's ``runtime_env``, which Ray's dashboard and state API
    show, and its workers start without Ray's runtime-env setup (see
    :func:`docextract.cluster.runtime.init_options`)."""
    import os

    key = os.environ.get(config.api_key_env) if config.api_key_env else None
    if address is None or not key:
        return None
    return {"env_vars": {config.api_key_env: key}}


def _wait_for_stop() -> None:
    """Block until Ctrl-C or SIGTERM."""
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        while not stop.wait(3600):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)


def _report(message: str) -> None:
    print(f"docextract serve: {message}", file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``docextract serve``; returns the exit code."""
    args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    try:
        config, http_options = config_from_args(args)
    except DocExtractError as exc:
        _report(f"error: {exc.message}")
        return EXIT_USAGE
    import os

    address = args.address or os.environ.get("RAY_ADDRESS") or None
    if args.detach and address is None:
        _report("error: --detach needs a cluster (--address): an embedded Ray stops with this command")
        return EXIT_USAGE

    import ray
    from ray import serve as ray_serve

    from docextract.cluster.runtime import init_ray
    from serve.app import build_app

    try:
        config.resolve_api_key()  # fail here, not in a replica, if the variable is unset
        init_ray(address, num_cpus=args.num_cpus, runtime_env=job_runtime_env(config, address))
        ray_serve.start(http_options=http_options)
        ray_serve.run(build_app(config), name=args.name, route_prefix=args.route_prefix)
    except DocExtractError as exc:
        _report(f"error: {exc.message}")
        _shutdown(embedded=address is None, name=args.name)
        return EXIT_USAGE
    models = ", ".join(m.model_name for m in config.models)
    url = f"http://{http_options['host']}:{http_options['port']}{args.route_prefix.rstrip('/')}"
    _report(f"serving {models} at {url} (OpenAI base_url {url}/v1); Ctrl-C stops")
    if args.detach:
        ray.shutdown()
        return EXIT_OK
    _wait_for_stop()
    _report("stopping")
    _shutdown(embedded=address is None, name=args.name)
    return EXIT_OK


def _shutdown(*, embedded: bool, name: str) -> None:
    import ray
    from ray import serve as ray_serve

    if not ray.is_initialized():
        return
    try:
        if embedded:
            ray_serve.shutdown()
        else:
            ray_serve.delete(name)  # leave other apps on a shared cluster alone
    finally:
        ray.shutdown()


if __name__ == "__main__":
    sys.exit(main())
