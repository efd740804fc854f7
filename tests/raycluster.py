"""A real local Ray cluster for the Serve and batch tests.

Started with ``ray start --head --block`` as a child process, with its own
temp dir and free ports, so it has a dashboard (for ``ray job submit``) and
stopping it stops only its own processes (``ray stop`` would kill every Ray
on the machine). Workers inherit this process's environment (offline hub,
vLLM CPU settings).
"""

from __future__ import annotations

import os
import pathlib
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

__all__ = ["LocalRayCluster", "free_port", "wait_for"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(condition, timeout: float, what: str, interval: float = 0.5):
    """``condition()``'s first truthy value; sleeps only inside this bounded polling loop."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


class LocalRayCluster:
    """``ray start --head`` on loopback; ``address`` for drivers, ``dashboard_url`` for jobs."""

    def __init__(self, num_cpus: int = 8, object_store_mb: int = 1024, resources: dict | None = None) -> None:
        self.num_cpus = num_cpus
        self.object_store_mb = object_store_mb
        self.resources = resources or {}
        self.port = free_port()
        self.dashboard_port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.dashboard_url = f"http://127.0.0.1:{self.dashboard_port}"
        # Unix socket paths under the temp dir must stay short (108 bytes).
        self.temp_dir = tempfile.mkdtemp(prefix="ray", dir="/tmp")
        self.log_path = pathlib.Path(self.temp_dir) / "ray-start.log"
        self._proc: subprocess.Popen | None = None

    def start(self, timeout: float = 120) -> LocalRayCluster:
        import json

        ray_bin = pathlib.Path(sys.executable).with_name("ray")
        cmd = [
            str(ray_bin), "start", "--head", "--block", "--disable-usage-stats",
            "--node-ip-address", "127.0.0.1",
            "--port", str(self.port),
            "--num-cpus", str(self.num_cpus),
            "--num-gpus", "0",
            "--object-store-memory", str(self.object_store_mb * 1024 * 1024),
            "--temp-dir", self.temp_dir,
            "--include-dashboard", "true",
            "--dashboard-host", "127.0.0.1",
            "--dashboard-port", str(self.dashboard_port),
            "--dashboard-agent-listen-port", str(free_port()),
            "--ray-client-server-port", str(free_port()),
            "--min-worker-port", "0", "--max-worker-port", "0",
        ]  # fmt: skip
        if self.resources:
            cmd += ["--resources", json.dumps(self.resources)]
        log = open(self.log_path, "wb")  # noqa: SIM115 - owned by the cluster until stop()
        # On SIGTERM, `ray start --block` first drains its node (Ray 2.60: for Serve's rolling
        # upgrades) until every worker lease is back, up to 30 s; a test cluster still holding Serve's
        # detached actors at the session's end waited out all 30 s. Nothing here needs draining.
        env = {**os.environ, "RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "0"}
        self._proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(
                    f"ray start exited with {self._proc.returncode}:\n{self.log_path.read_text()[-3000:]}"
                )
            try:
                # The job API answers only once the head (GCS, raylet, dashboard) is up.
                with urllib.request.urlopen(f"{self.dashboard_url}/api/version", timeout=2) as resp:
                    if resp.status == 200:
                        return self
            except OSError:
                pass
            time.sleep(0.5)  # polling a readiness endpoint, not synchronising on time
        self.stop()
        raise TimeoutError(f"Ray head not ready in {timeout} s:\n{self.log_path.read_text()[-3000:]}")

    def stop(self, timeout: float = 60) -> None:
        if self._proc is None or self._proc.poll() is not None:
            return
        # SIGTERM to `ray start --block` makes it stop the processes it started.
        self._proc.send_signal(signal.SIGTERM)
        try:
            self._proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self._proc.pid, signal.SIGKILL)
            self._proc.wait(10)
