"""``cluster.yaml`` checked with Ray's own cluster-launcher code, offline.

``ray up`` loads the file, fills it from Ray's AWS defaults (``prepare_config``),
asks EC2 for instance types (``fillout_available_node_types_resources``),
validates it (``validate_config``, against ``ray/autoscaler/ray-schema.json``),
creates the IAM role, key pair and security group (``bootstrap_config``), then
hashes the file mounts. Everything here runs the steps that need no AWS account
(and no boto3): the schema, the loader, the validator, the file-mount hashing.
The rest checks what the file promises: a CPU-only head, GPU types that scale
from zero, the ports, the CUDA install with this Ray, and no application
settings; and that the engines docextract places fit the node types.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import ray
import yaml
from ray.autoscaler._private.util import hash_runtime_conf, prepare_config, validate_config

from docextract.cluster.placement import engine_placement
from docextract.config import ExtractionConfig
from docextract.tasks import builtin_task_names
from serve.config import load_serve_config

ROOT = Path(__file__).resolve().parent.parent
CLUSTER_YAML = ROOT / "cluster.yaml"
RAY_SCHEMA = Path(ray.autoscaler.__file__).parent / "ray-schema.json"


@pytest.fixture(scope="module")
def raw() -> dict[str, Any]:
    return yaml.safe_load(CLUSTER_YAML.read_text())


@pytest.fixture(scope="module")
def prepared(raw: dict[str, Any]) -> dict[str, Any]:
    """The config as ``ray up`` holds it before it talks to AWS."""
    config = prepare_config(copy.deepcopy(raw))
    validate_config(config)
    return config


def _node_types(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return config["available_node_types"]


def _worker_types(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: t for name, t in _node_types(config).items() if name != config["head_node_type"]}


def _commands(config: dict[str, Any], key: str) -> str:
    return "\n".join(config[key])


# --- Ray's schema and loader --------------------------------------------------------------


def test_file_matches_rays_schema(raw: dict[str, Any]) -> None:
    # The schema validate_config applies; validate_config itself also wants what Ray's defaults add
    # (cluster_synced_files), so it runs on the prepared config (the `prepared` fixture).
    jsonschema.validate(raw, json.loads(RAY_SCHEMA.read_text()))


def test_rays_loader_keeps_the_file(raw: dict[str, Any], prepared: dict[str, Any]) -> None:
    # Defaults fill only what the file leaves out: our node types, commands and provider stay ours.
    assert prepared["provider"] == raw["provider"]
    assert set(_node_types(prepared)) == set(_node_types(raw))
    assert prepared["head_setup_commands"] == raw["setup_commands"] + raw["head_setup_commands"]
    assert prepared["worker_setup_commands"] == raw["setup_commands"] + raw["worker_setup_commands"]
    assert prepared["head_start_ray_commands"] == raw["head_start_ray_commands"]


@pytest.mark.parametrize(
    ("path", "typo"),
    [
        ((), ("max_workers", "max_worker")),
        ((), ("available_node_types", "available_node_type")),
        (("available_node_types", "gpu_1x"), ("min_workers", "min_worker")),
        (("provider", "security_group"), ("IpPermissions", "IpPermission")),
    ],
)
def test_a_typo_fails_rays_validation(raw: dict[str, Any], path: tuple[str, ...], typo: tuple[str, str]) -> None:
    broken = copy.deepcopy(raw)
    parent = broken
    for key in path:
        parent = parent[key]
    right, wrong = typo
    parent[wrong] = parent.pop(right)
    with pytest.raises(jsonschema.ValidationError):
        validate_config(prepare_config(broken))


def test_file_mounts_exist_and_hash_like_ray_up(prepared: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    # ray up hashes every mounted local path (relative to where it runs: the repository root).
    monkeypatch.chdir(ROOT)
    for local in prepared["file_mounts"].values():
        assert (ROOT / local).exists(), f"file_mounts names {local}, which is not in the checkout"
    runtime_hash, contents_hash = hash_runtime_conf(
        prepared["file_mounts"],
        prepared["cluster_synced_files"],
        [prepared["worker_setup_commands"]],
        generate_file_mounts_contents_hash=True,
    )
    assert runtime_hash and contents_hash


def test_file_mounts_ship_what_pyproject_installs(prepared: dict[str, Any]) -> None:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    mounts = {remote: str(Path(local)) for remote, local in prepared["file_mounts"].items()}
    needed = ["pyproject.toml", pyproject["project"]["readme"], "scripts"]
    needed += [pattern.rstrip("*") for pattern in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]]
    for name in needed:
        assert mounts.get(f"~/docextract/{name}") == name, f"{name} is not shipped to ~/docextract/{name}"


# --- what the cluster promises ------------------------------------------------------------


def test_head_is_cpu_only_and_runs_no_work(prepared: dict[str, Any]) -> None:
    head = _node_types(prepared)[prepared["head_node_type"]]
    assert head["resources"] == {"CPU": 0}
    assert head["max_workers"] == 0
    assert not head["node_config"]["InstanceType"].startswith(("g", "p"))


def test_gpu_types_scale_from_zero(prepared: dict[str, Any]) -> None:
    workers = _worker_types(prepared)
    assert {name: t["resources"].get("GPU") for name, t in workers.items()} == {"gpu_1x": 1, "gpu_4x": 4}
    assert {t["node_config"]["InstanceType"] for t in workers.values()} == {"g6.xlarge", "g6.12xlarge"}
    for name, node_type in workers.items():
        assert node_type["min_workers"] == 0, name
        assert 0 < node_type["max_workers"] <= prepared["max_workers"], name
        assert node_type["resources"].get("accelerator_type:L4") == 1, name
    assert prepared["idle_timeout_minutes"] > 0
    assert prepared["upscaling_speed"] > 0
    assert prepared["provider"]["cache_stopped_nodes"] is False  # idle GPU nodes are terminated


def test_stated_gpus_are_what_ray_detects_on_ec2(prepared: dict[str, Any]) -> None:
    # The shape of EC2's DescribeInstanceTypes answer for these types (4 and 48 vCPUs; 1 and 4 L4s),
    # read by the same accelerator managers Ray's AWS provider uses at `ray up`.
    from ray._private.accelerators import get_all_accelerator_managers

    ec2 = {
        "g6.xlarge": {
            "VCpuInfo": {"DefaultVCpus": 4},
            "GpuInfo": {"Gpus": [{"Name": "L4", "Manufacturer": "NVIDIA", "Count": 1}]},
        },
        "g6.12xlarge": {
            "VCpuInfo": {"DefaultVCpus": 48},
            "GpuInfo": {"Gpus": [{"Name": "L4", "Manufacturer": "NVIDIA", "Count": 4}]},
        },
    }
    for name, node_type in _worker_types(prepared).items():
        instance = node_type["node_config"]["InstanceType"]
        detected = {"CPU": ec2[instance]["VCpuInfo"]["DefaultVCpus"]}
        for manager in get_all_accelerator_managers():
            count = manager.get_ec2_instance_num_accelerators(instance, ec2)
            kind = manager.get_ec2_instance_accelerator_type(instance, ec2)
            if count:
                detected[manager.get_resource_name()] = count
                detected[f"accelerator_type:{kind}"] = 1
        assert node_type["resources"] == detected, name


def test_ports_for_jobs_and_serve_are_open_but_not_to_everyone(prepared: dict[str, Any]) -> None:
    rules = prepared["provider"]["security_group"]["IpPermissions"]
    for port in (8265, 8000):
        matching = [r for r in rules if r["IpProtocol"] == "tcp" and r["FromPort"] <= port <= r["ToPort"]]
        assert matching, f"no inbound rule for port {port}"
        cidrs = [ip["CidrIp"] for r in matching for ip in r.get("IpRanges", [])]
        assert cidrs and "0.0.0.0/0" not in cidrs, port
        assert not any(ip.get("CidrIpv6") == "::/0" for r in matching for ip in r.get("Ipv6Ranges", [])), port
    assert "--dashboard-host=0.0.0.0" in _commands(prepared, "head_start_ray_commands")


def test_every_node_installs_the_cuda_extra_with_this_ray(prepared: dict[str, Any]) -> None:
    setup_sh = (ROOT / "scripts" / "setup.sh").read_text()
    assert '-e ".[$EXTRA' in setup_sh  # EXTRA=cuda means the project's `cuda` extra
    for key in ("head_setup_commands", "worker_setup_commands"):
        commands = _commands(prepared, key)
        assert re.search(r"\bEXTRA=cuda\b.*\bscripts/setup\.sh\b", commands), key
        pins = re.findall(r"ray\[([^\]]*)\]==([\w.]+)", commands)
        assert pins, f"{key}: Ray's version is not pinned"
        for extras, version in pins:
            assert version == ray.__version__, f"{key} installs Ray {version}, this project runs {ray.__version__}"
            assert "default" in extras.split(","), key  # dashboard, job API, autoscaler
    # The autoscaler on the head launches instances with boto3; Ray's default head setup installs it.
    assert "boto3" in _commands(prepared, "head_setup_commands")


def test_every_node_runs_the_same_image(prepared: dict[str, Any]) -> None:
    images = {t["node_config"]["ImageId"] for t in _node_types(prepared).values()}
    assert len(images) == 1


def test_no_application_settings(raw: dict[str, Any]) -> None:
    text = json.dumps(raw)  # values only: comments may explain where settings belong
    for word in ["--model", "--task", "Qwen", "batch.run", "serve deploy", "DOCEXTRACT_", "HF_TOKEN"]:
        assert word not in text, word
    for task in builtin_task_names():
        assert not re.search(rf"\b{re.escape(task)}\b", text), task


# --- docextract's engines on these node types ---------------------------------------------


def _fits(bundle: dict[str, float], resources: dict[str, float]) -> bool:
    return all(amount <= resources.get(name, 0) for name, amount in bundle.items())


def _gpu_engine(tensor_parallel_size: int, **placement: Any) -> list[dict[str, float]]:
    config = ExtractionConfig(tensor_parallel_size=tensor_parallel_size, placement={"accelerator": "gpu", **placement})
    return engine_placement(config).bundles()


def test_engines_land_on_the_gpu_type_that_fits(prepared: dict[str, Any]) -> None:
    types = _node_types(prepared)

    def fitting(bundles: list[dict[str, float]]) -> set[str]:
        return {name for name, t in types.items() if all(_fits(b, t["resources"]) for b in bundles)}

    assert fitting(_gpu_engine(1, accelerator_type="L4")) == {"gpu_1x", "gpu_4x"}
    assert fitting(_gpu_engine(4, accelerator_type="L4")) == {"gpu_4x"}
    assert fitting(_gpu_engine(2, cpus_per_engine=2)) == {"gpu_4x"}
    assert fitting(_gpu_engine(8)) == set()
    assert fitting(_gpu_engine(1, accelerator_type="A10G")) == set()


def test_the_shipped_serve_config_fits_this_cluster(prepared: dict[str, Any]) -> None:
    workers = _worker_types(prepared)
    for model in load_serve_config(ROOT / "serve" / "serve_config.yaml").models:
        config = model.engine_config()
        config = config.model_copy(update={"placement": config.placement.model_copy(update={"accelerator": "gpu"})})
        bundles = engine_placement(config).bundles()
        assert any(all(_fits(b, t["resources"]) for b in bundles) for t in workers.values()), config.model
