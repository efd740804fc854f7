"""Engine placement: one resource request for Serve replicas and batch actors."""

from __future__ import annotations

import pytest

from docextract.cluster.placement import engine_placement
from docextract.config import ExtractionConfig, load_config
from docextract.errors import DocExtractError


def test_gpu_engine_reserves_tensor_parallel_gpus_in_one_actor():
    config = ExtractionConfig(tensor_parallel_size=4, placement={"accelerator": "gpu", "accelerator_type": "L4"})
    placement = engine_placement(config)
    assert placement.actor_options() == {"num_cpus": 1.0, "num_gpus": 4, "accelerator_type": "L4"}
    assert placement.bundles() == [{"CPU": 1.0, "GPU": 4, "accelerator_type:L4": 0.001}]


def test_auto_follows_the_cluster():
    config = ExtractionConfig(tensor_parallel_size=2)
    assert engine_placement(config, cluster_gpus=8).num_gpus == 2
    assert engine_placement(config, cluster_gpus=0).num_gpus == 0


def test_cpu_test_bed_swaps_the_gpu_request_for_a_device_resource():
    placement = {"accelerator_type": "L4", "device_resource": "fake_gpu", "custom_resources": {"ssd": 1}}
    on_gpu = engine_placement(ExtractionConfig(tensor_parallel_size=2, placement={**placement, "accelerator": "gpu"}))
    on_cpu = engine_placement(ExtractionConfig(tensor_parallel_size=2, placement={**placement, "accelerator": "cpu"}))
    assert not on_cpu.uses_gpu
    assert on_cpu.actor_options() == {"num_cpus": 1.0, "num_gpus": 0, "resources": {"ssd": 1, "fake_gpu": 2}}
    # The same bundle, with the stand-in where the GPUs were (and no accelerator type on CPU).
    assert on_gpu.bundles() == [{"CPU": 1.0, "ssd": 1, "GPU": 2, "accelerator_type:L4": 0.001}]
    assert on_cpu.bundles() == [{"CPU": 1.0, "ssd": 1, "fake_gpu": 2}]


def test_null_section_in_yaml_plus_flag_override(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("sampling: null\nplacement: null\n")
    config = load_config(path, sampling={"max_tokens": 7}, placement={"cpus_per_engine": 0.5})
    assert config.sampling.max_tokens == 7
    assert config.placement.cpus_per_engine == 0.5


def test_unknown_placement_key_is_an_error():
    with pytest.raises(DocExtractError, match="placement.gpus"):
        load_config(None, placement={"gpus": 1})
