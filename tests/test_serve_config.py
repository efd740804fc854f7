"""Service settings, the Serve config file, build_app and the `docextract serve` command line (no Ray cluster)."""

from __future__ import annotations

import pathlib

import pytest
import yaml
from ray.serve.config import AutoscalingConfig
from ray.serve.schema import ServeDeploySchema

from docextract.errors import DocExtractError
from serve.app import INGRESS_NAME, build_app, deployment_options, ingress_options
from serve.cli import build_parser, config_from_args, job_runtime_env
from serve.cli import main as serve_main
from serve.config import APP_IMPORT_PATH, ServeAppConfig, load_serve_config

REPO = pathlib.Path(__file__).resolve().parent.parent
SERVE_CONFIG = REPO / "serve" / "serve_config.yaml"


def test_the_shipped_serve_config_passes_rays_schema_and_ours():
    data = yaml.safe_load(SERVE_CONFIG.read_text())
    deploy = ServeDeploySchema.model_validate(data)
    (app,) = deploy.applications
    assert app.import_path == APP_IMPORT_PATH
    config = load_serve_config(SERVE_CONFIG)
    assert config == load_serve_config(app.args)
    assert [m.model_name for m in config.models] == ["Qwen/Qwen2.5-VL-3B-Instruct", "qwen-7b"]
    assert config.models[0].deployment.autoscaling.max_replicas == 4
    # The builder Serve imports accepts those args as they are.
    assert build_app(app.args) is not None


def test_replica_resources_come_from_the_engine_placement():
    config = load_serve_config(
        {
            "models": [
                {"model": "m", "tensor_parallel_size": 2, "placement": {"accelerator": "gpu", "cpus_per_engine": 3}}
            ]
        }
    )
    options = deployment_options(config.models[0])
    assert options["ray_actor_options"] == {"num_cpus": 3.0, "num_gpus": 2}
    # One STRICT_PACK group per replica, its one bundle the replica's whole request.
    assert options["placement_group_bundles"] == [{"CPU": 3.0, "GPU": 2}]
    assert options["placement_group_strategy"] == "STRICT_PACK"
    assert options["num_replicas"] == 1
    # Serve's own check: the replica actor must fit in the group's first bundle.
    from ray.serve._private.config import ReplicaConfig

    ReplicaConfig.create(
        object,
        ray_actor_options=options["ray_actor_options"],
        placement_group_bundles=options["placement_group_bundles"],
        placement_group_strategy=options["placement_group_strategy"],
    )
    assert options["max_queued_requests"] == config.models[0].deployment.max_queued_requests


def test_autoscaling_settings_reach_serve_and_pass_its_own_checks():
    config = load_serve_config(
        {
            "models": [
                {
                    "model": "m",
                    "deployment": {"autoscaling": {"min_replicas": 1, "max_replicas": 3, "target_ongoing_requests": 4}},
                }
            ]
        }
    )
    options = deployment_options(config.models[0])
    assert "num_replicas" not in options
    ray_config = AutoscalingConfig(**options["autoscaling_config"])
    assert (ray_config.min_replicas, ray_config.max_replicas, ray_config.target_ongoing_requests) == (1, 3, 4)
    # Unset fields keep Ray's defaults rather than a copy of them.
    assert ray_config.upscale_delay_s == AutoscalingConfig().upscale_delay_s


def test_ingress_reserves_no_cpu():
    options = ingress_options(load_serve_config({"models": [{"model": "m"}]}))
    assert options["name"] == INGRESS_NAME
    assert options["ray_actor_options"] == {"num_cpus": 0}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"models": []}, "models"),
        ({}, "models"),
        ({"models": [{"model": "a"}, {"model": "a"}]}, "share the model name 'a'"),
        ({"models": [{"model": "a/b"}, {"model": "a_b"}]}, "deployment name"),
        ({"models": [{"model": "a", "max_tokenz": 5}]}, "max_tokenz"),
        ({"models": [{"model": "a"}], "limits": {"allow_url_fetch": True, "fetch_anything": 1}}, "fetch_anything"),
        ({"models": [{"model": "a", "deployment": {"num_replicas": 2, "autoscaling": {}}}]}, "not both"),
        (
            {"models": [{"model": "a", "deployment": {"autoscaling": {"min_replicas": 3, "max_replicas": 2}}}]},
            "max_replicas",
        ),
        ({"models": [{"model": "a"}], "api_key": "k", "api_key_env": "K"}, "not both"),
    ],
)
def test_invalid_settings_are_one_line_errors(args, message):
    with pytest.raises(DocExtractError, match=message) as err:
        load_serve_config(args)
    assert "\n" not in str(err.value)
    with pytest.raises(DocExtractError):
        build_app(args)


def test_api_key_env_must_be_set_where_the_ingress_runs(monkeypatch):
    config = ServeAppConfig.model_validate({"models": [{"model": "m"}], "api_key_env": "DOCEXTRACT_TEST_KEY"})
    monkeypatch.delenv("DOCEXTRACT_TEST_KEY", raising=False)
    with pytest.raises(DocExtractError, match="DOCEXTRACT_TEST_KEY"):
        config.resolve_api_key()
    monkeypatch.setenv("DOCEXTRACT_TEST_KEY", "s3cret")
    assert config.resolve_api_key() == "s3cret"
    assert "s3cret" not in repr(ServeAppConfig.model_validate({"models": [{"model": "m"}], "api_key": "s3cret"}))


def test_the_api_key_travels_in_the_job_only_to_a_cluster(monkeypatch):
    """An embedded Ray's workers inherit this process's environment (checked for real in
    test_an_embedded_rays_workers_get_the_drivers_environment): the key stays out of its job's
    runtime_env, which Ray's dashboard shows."""
    config = ServeAppConfig.model_validate({"models": [{"model": "m"}], "api_key_env": "DOCEXTRACT_TEST_KEY"})
    monkeypatch.setenv("DOCEXTRACT_TEST_KEY", "s3cret")
    assert job_runtime_env(config, None) is None
    assert job_runtime_env(config, "ray://head:10001") == {"env_vars": {"DOCEXTRACT_TEST_KEY": "s3cret"}}
    plain = ServeAppConfig.model_validate({"models": [{"model": "m"}], "api_key": "k"})
    assert job_runtime_env(plain, "ray://head:10001") is None


def test_cli_flags_describe_the_default_model_and_win_over_the_file(tmp_path):
    path = tmp_path / "serve.yaml"
    data = yaml.safe_load(SERVE_CONFIG.read_text())
    data["http_options"]["port"] = 9123
    path.write_text(yaml.safe_dump(data))
    args = build_parser().parse_args(
        [
            "--config", str(path),
            "--model", "/models/tiny",
            "--max-tokens", "64",
            "--max-replicas", "7",
            "--max-queued-requests", "5",
            "--allow-url-fetch",
            "--host", "127.0.0.1",
        ]
    )  # fmt: skip
    config, http = config_from_args(args)
    first, second = config.models
    assert first.model == "/models/tiny" and first.sampling.max_tokens == 64
    assert first.max_model_len == 16384  # from the file, not overridden
    assert first.deployment.autoscaling.max_replicas == 7 and first.deployment.autoscaling.min_replicas == 1
    assert first.deployment.max_queued_requests == 5
    assert second.model_name == "qwen-7b" and second.sampling.max_tokens != 64
    assert config.limits.allow_url_fetch is True
    assert config.limits.request_timeout_s == 120  # the file's
    assert http == {"host": "127.0.0.1", "port": 9123}


def test_cli_without_a_config_serves_one_model_with_the_models_defaults():
    config, http = config_from_args(build_parser().parse_args(["--model", "/models/tiny", "--port", "8123"]))
    (model,) = config.models
    assert model.model == "/models/tiny"
    assert model.deployment == type(model.deployment)()
    assert http["port"] == 8123


def test_cli_usage_errors_exit_2_without_starting_ray(capsys, monkeypatch):
    import ray

    def no_ray(*args, **kwargs):
        raise AssertionError("a usage error must be reported before Ray starts")

    monkeypatch.setattr(ray, "init", no_ray)
    assert serve_main(["--model", "m", "--max-replicas", "0"]) == 2
    assert "max_replicas" in capsys.readouterr().err
    assert serve_main(["--model", "m", "--detach"]) == 2
    assert "--detach needs a cluster" in capsys.readouterr().err
