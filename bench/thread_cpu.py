"""Per-thread CPU of another process, sampled from ``/proc`` (Linux), for the benchmarks.

:class:`ThreadSampler` finds the first process whose command line holds every
given mark (a Ray actor's process title, say), reads each of its threads' CPU
time (``utime + stime`` of ``/proc/PID/task/TID/stat``, clock ticks) and name
every ``interval`` seconds in a daemon thread, and keeps the samples, so a
window of the process's life (engine up to last result) can be cut from them
afterwards: :meth:`ThreadSampler.window`. A tick is 10 ms on most kernels: over a
window of minutes each thread's figure is exact to a few ticks.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

__all__ = ["ThreadSampler"]

_TICK_S = 1 / os.sysconf("SC_CLK_TCK")


class ThreadSampler:
    """Samples the per-thread CPU of the first process whose command line holds all of ``marks``."""

    def __init__(self, *marks: str, interval: float = 1.0) -> None:
        self.marks = [m.encode() for m in marks]
        self.interval = interval
        self.pid: int | None = None
        #: (wall clock, {tid: (name, cpu seconds)}), in order.
        self.samples: list[tuple[float, dict[int, tuple[str, float]]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="thread-cpu-sampler", daemon=True)

    def __enter__(self) -> ThreadSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _find(self) -> int | None:
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    cmdline = (entry / "cmdline").read_bytes()
                except OSError:
                    continue
                if all(m in cmdline for m in self.marks):
                    return int(entry.name)
        return None

    def _threads(self, pid: int) -> dict[int, tuple[str, float]]:
        out = {}
        for task in Path(f"/proc/{pid}/task").iterdir():
            try:
                name = (task / "comm").read_text().strip()
                fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue  # the thread ended between listing and reading
            out[int(task.name)] = (name, (int(fields[11]) + int(fields[12])) * _TICK_S)
        return out

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            if self.pid is None:
                self.pid = self._find()
                continue
            try:
                self.samples.append((time.time(), self._threads(self.pid)))
            except OSError:
                return  # the process ended

    def window(self, start: float, end: float) -> dict[str, Any] | None:
        """CPU seconds by thread between the first sample at or after ``start`` and the last at or
        before ``end`` (wall clock): ``main`` (the process's first thread), ``other_threads`` by
        thread name (threads of one name summed; Python threads carry the process's own title), and
        the window's length. None when the samples do not cover it."""
        inside = [s for s in self.samples if start <= s[0] <= end]
        if len(inside) < 2 or self.pid is None:
            return None
        (t0, first), (t1, last) = inside[0], inside[-1]
        main, by_name = 0.0, {}
        for tid, (name, cpu) in last.items():
            spent = cpu - first.get(tid, (name, 0.0))[1]
            if tid == self.pid:
                main = spent
            else:
                by_name[name] = by_name.get(name, 0.0) + spent
        ranked = dict(sorted(by_name.items(), key=lambda kv: -kv[1]))
        return {"seconds": t1 - t0, "main_s": main, "other_threads_s": ranked}
