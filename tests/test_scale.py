"""Scale-out on a simulated multi-node cluster: placement of engines, and the loss of a node or a replica.

One Ray cluster of a head and two workers on this machine
(``ray.cluster_utils.Cluster``: each node its own raylet, object store and
resources). ``fake_gpu`` stands in for a GPU (each worker has one, an engine
reserves one through ``placement.device_resource``: the code path a GPU
engine takes, with the GPU request swapped); ``ssd`` is a resource only
worker 2 has.

* Serve: two replicas asking for ``ssd`` both land on worker 2; one is
  killed (SIGKILL of its process) while requests flow, and the service
  answers again within a bound, with Serve's replacement replica.
* Batch: a job with a pool of two engine actors (one ``fake_gpu`` each)
  spreads them over both workers; worker 1 is then removed while the job
  runs and a fresh worker joins (as the autoscaler would add one): the job
  still ends with every row exactly once. One run shows both, to start two
  engines fewer on this 2-core machine.

This process stays off the cluster (it may be a driver of the session's
other cluster): it reads actors and nodes through the dashboard's state API
and drives jobs and Serve through subprocesses and HTTP. The tiny model's
weights are random: the tests check mechanics, not accuracy.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
import yaml
from conftest import REPO
from docfactory import image_bytes
from raycluster import free_port, wait_for
from test_batch_ray import TASK, assert_outputs_validate, engine_flags, read_output

from batch.resume import list_parts

pytestmark = pytest.mark.integration

SERVE_APP = "docextract-scale"
REPLICA_CLASS = f"ServeReplica:{SERVE_APP}:Extractor_tiny"
BATCH_ACTOR_CLASS = "MapWorker(MapBatches(ExtractionActor))"
ROWS = 60


class MultiNode:
    """A head (no engine resources) and two workers, each a separate Ray node on loopback."""

    def __init__(self) -> None:
        from ray.cluster_utils import Cluster

        self.dashboard_port = free_port()
        self.dashboard_url = f"http://127.0.0.1:{self.dashboard_port}"
        self.cluster = Cluster(
            initialize_head=True,
            head_node_args={
                "num_cpus": 2,
                "include_dashboard": True,
                "dashboard_host": "127.0.0.1",
                "dashboard_port": self.dashboard_port,
                "ray_client_server_port": free_port(),
                "object_store_memory": 256 * 1024**2,
            },
        )
        self.worker1 = self.add_worker({"fake_gpu": 1})
        self.worker2 = self.add_worker({"fake_gpu": 1, "ssd": 2}, num_cpus=3)
        wait_for(self._dashboard_up, 60, "the dashboard")

    @property
    def address(self) -> str:
        return self.cluster.address

    def add_worker(self, resources: dict[str, float], num_cpus: int = 2):
        # Every node has this machine's IP: a driver started here attaches to the head (Ray
        # prefers it among nodes of one host), so removing a worker never takes a driver with it.
        return self.cluster.add_node(num_cpus=num_cpus, resources=resources, object_store_memory=256 * 1024**2)

    def _dashboard_up(self) -> bool:
        try:
            return httpx.get(f"{self.dashboard_url}/api/version", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def actors(self, class_name: str, state: str | None = None) -> list:
        from ray.util.state import list_actors

        filters = [("class_name", "=", class_name)] + ([("state", "=", state)] if state else [])
        return list_actors(address=self.dashboard_url, filters=filters, detail=True, limit=1000)

    def shutdown(self) -> None:
        self.cluster.shutdown()


@pytest.fixture(scope="module")
def multinode():
    cluster = MultiNode()
    yield cluster
    cluster.shutdown()


# --- Serve ------------------------------------------------------------------------------------


@pytest.fixture(scope="class")
def service(multinode, tiny_config, tmp_path_factory):
    """The app deployed with ``serve deploy`` (two replicas that need ``ssd``); deleted after."""
    port = free_port()
    model = {
        **tiny_config.model_dump(mode="json"),
        "served_model_name": "tiny",
        "placement": {"accelerator": "cpu", "custom_resources": {"ssd": 1}},
        "deployment": {"num_replicas": 2, "max_ongoing_requests": 8, "health_check_period_s": 2},
    }
    config = tmp_path_factory.mktemp("scale-serve") / "serve.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                # Every node is on this machine: one proxy (on the head), not one per node on one port.
                "proxy_location": "HeadOnly",
                "http_options": {"host": "127.0.0.1", "port": port},
                "applications": [
                    {
                        "name": SERVE_APP,
                        "route_prefix": "/",
                        "import_path": "serve.app:build_app",
                        "args": {"models": [model], "limits": {"request_timeout_s": 60}},
                    }  # fmt: skip
                ],
            }
        )
    )
    serve_cli = Path(sys.executable).with_name("serve")
    deploy = [str(serve_cli), "deploy", str(config), "--address", multinode.dashboard_url]
    deployed = subprocess.run(deploy, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert deployed.returncode == 0, deployed.stderr[-3000:]
    base_url = f"http://127.0.0.1:{port}"
    wait_for(lambda: _healthy(base_url), 400, f"{SERVE_APP} healthy", interval=2)
    yield base_url
    subprocess.run([str(serve_cli), "shutdown", "-y", "--address", multinode.dashboard_url], timeout=120)


def _healthy(base_url: str) -> bool:
    try:
        return httpx.get(f"{base_url}/healthz", timeout=10).json().get("status") == "ok"
    except (httpx.HTTPError, ValueError):
        return False


def _running_replicas(multinode: MultiNode) -> set[str]:
    """Actor ids of the model's replicas that Serve reports RUNNING (its REST API on the dashboard)."""
    details = httpx.get(f"{multinode.dashboard_url}/api/serve/applications/", timeout=10).json()
    app = (details.get("applications") or {}).get(SERVE_APP) or {}
    replicas = ((app.get("deployments") or {}).get("Extractor_tiny") or {}).get("replicas") or []
    return {r["actor_id"] for r in replicas if r["state"] == "RUNNING"}


def _extract(http: httpx.Client) -> httpx.Response:
    png = image_bytes((96, 64), color=(30, 120, 200))
    return http.post("/v1/extract", files={"file": ("tag.png", png, "image/png")}, data={"task": TASK, "model": "tiny"})


@pytest.mark.timeout(600)
class TestServe:
    def test_replicas_that_need_a_resource_land_on_the_one_worker_that_has_it(self, multinode, service):
        replicas = multinode.actors(REPLICA_CLASS, state="ALIVE")
        assert len(replicas) == 2
        assert {r.node_id for r in replicas} == {multinode.worker2.node_id}
        with httpx.Client(base_url=service, timeout=120) as http:
            response = _extract(http)
        assert response.status_code == 200, response.text
        assert response.json()["results"][0]["valid"]

    def test_killed_replica_is_replaced_and_the_service_keeps_answering(self, multinode, service):
        before = {r.actor_id: r for r in multinode.actors(REPLICA_CLASS, state="ALIVE")}
        assert len(before) == 2
        victim = next(iter(before.values()))
        outcomes: list[tuple[float, float, int | str]] = []  # (sent, answered, status or error name)
        stop = threading.Event()

        def load() -> None:
            with httpx.Client(base_url=service, timeout=120) as http:
                while not stop.is_set():
                    sent = time.monotonic()
                    try:
                        status: int | str = _extract(http).status_code
                    except httpx.HTTPError as exc:
                        status = type(exc).__name__
                    outcomes.append((sent, time.monotonic(), status))

        with concurrent.futures.ThreadPoolExecutor(3) as pool:
            clients = [pool.submit(load) for _ in range(3)]
            try:
                wait_for(lambda: sum(o[2] == 200 for o in outcomes) >= 3, 120, "requests flowing")
                killed_at = time.monotonic()
                os.kill(victim.pid, signal.SIGKILL)  # the replica's process dies, as on an OOM kill or a crash

                # Serve notices, starts a replacement (a new actor: a new engine) and, once its
                # engine is up, routes to it: two RUNNING replicas again, one of them new.
                def replacement() -> set[str] | None:
                    running = _running_replicas(multinode)
                    return running - set(before) if len(running) == 2 else None

                replaced = wait_for(replacement, 300, "a replacement replica RUNNING", interval=1)
                recovered_at = time.monotonic()
                wait_for(lambda: _healthy(service), 120, "the service healthy again")
                wait_for(lambda: sum(o[0] > recovered_at and o[2] == 200 for o in outcomes) >= 3, 120, "answers")
            finally:
                stop.set()
                for client in clients:
                    client.result(timeout=180)

        assert len(replaced) == 1 and victim.actor_id not in replaced
        alive = multinode.actors(REPLICA_CLASS, state="ALIVE")
        assert victim.actor_id not in {a.actor_id for a in alive} and len(alive) == 2
        assert {a.node_id for a in alive} == {multinode.worker2.node_id}  # the replacement honours placement too
        # The service never stopped answering: every request got an HTTP status, the ones that met the
        # dying replica a 5xx, and one sent after the kill succeeded within the bound.
        statuses = {o[2] for o in outcomes}
        assert statuses <= {200, 500, 503}, statuses
        first_ok = min(o[1] for o in outcomes if o[0] > killed_at and o[2] == 200)
        assert first_ok - killed_at < 60, f"no answer for {first_ok - killed_at:.0f} s after the kill"
        later = [o for o in outcomes if o[0] > recovered_at]
        assert later and all(o[2] == 200 for o in later), later


# --- Batch ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def node_loss_job(multinode, tiny_model_dir, tmp_path_factory):
    """A job with two engine actors; once both are up, worker 1 is removed and a new worker with
    a ``fake_gpu`` joins, as the autoscaler would add one."""
    tmp = tmp_path_factory.mktemp("scale-batch")
    inputs = tmp / "in"
    inputs.mkdir()
    for i in range(ROWS):
        (inputs / f"tag{i:02d}.png").write_bytes(image_bytes((100 + i, 80), color=(i * 4, 90, 250 - i * 4)))
    out = tmp / "out"
    job = [sys.executable, "-m", "batch.run", "--input", str(inputs), "--output", str(out), "--task", TASK,
           *engine_flags(tiny_model_dir), "--address", multinode.address, "--num-actors", "2",
           "--accelerator", "cpu", "--device-resource", "fake_gpu",
           "--batch-size", "2", "--max-in-flight", "2", "--part-rows", "2", "--flush-seconds", "1"]  # fmt: skip
    log_path = tmp / "job.log"
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    # Ray Data's documented knob: the pool waits for both engines before the first batch, so the
    # first engine cannot run through the rows alone while the second is still loading.
    env["RAY_DATA_DEFAULT_WAIT_FOR_MIN_ACTORS_S"] = "600"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(job, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        try:
            # Both engines up (an actor is ALIVE once its engine is built): the pool is two
            # actors, each with one worker's fake_gpu. The job starts on its rows now, and the
            # node goes at once: the two engines need many seconds for all the rows.
            def two_engines() -> list | None:
                assert proc.poll() is None, log_path.read_text()[-4000:]
                alive = multinode.actors(BATCH_ACTOR_CLASS, state="ALIVE")
                return alive if len(alive) == 2 else None

            engines = wait_for(two_engines, 400, "two engine actors")
            rows_before = sum(_rows(p) for p in list_parts(out))
            multinode.cluster.remove_node(multinode.worker1, allow_graceful=False)
            multinode.worker3 = multinode.add_worker({"fake_gpu": 1})
            code = proc.wait(600)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(30)
    return {
        "code": code,
        "out": out,
        "log": log_path.read_text(),
        "engine_nodes": sorted(a.node_id for a in engines),
        "rows_before": rows_before,
    }


def _rows(part: Path) -> int:
    import pyarrow.parquet as pq

    return pq.read_metadata(part).num_rows


@pytest.mark.timeout(900)
def test_batch_engines_spread_over_both_workers(multinode, node_loss_job):
    assert node_loss_job["engine_nodes"] == sorted([multinode.worker1.node_id, multinode.worker2.node_id])


@pytest.mark.timeout(120)
def test_losing_a_worker_mid_job_still_gives_every_row_exactly_once(node_loss_job):
    job = node_loss_job
    assert job["code"] == 0, job["log"][-5000:]
    assert job["rows_before"] < ROWS, "the job ended before the node was removed: nothing was tested"
    table = read_output(job["out"])
    ids = table.column("image_id").to_pylist()
    assert len(ids) == len(set(ids)) == ROWS
    assert set(ids) == {f"tag{i:02d}.png" for i in range(ROWS)}
    # Rows in flight on the lost engine were retried, not turned into errors.
    assert table.column("error").null_count == ROWS
    assert_outputs_validate(table)
    summary = json.loads((job["out"] / "summary.json").read_text())
    assert summary["rows"] == ROWS and summary["duplicate_ids"] == 0
