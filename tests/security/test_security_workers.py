"""A SIGKILLed ``reproduce`` leaves no worker process behind (issue 16).

The parent builds the pool exactly as `run_preset` does (`make_pool`) and gives each worker a
task that would run for ten minutes; after SIGKILL of the parent every worker must be gone within
a few seconds. Before issue 16 they kept running (and holding their run's lock) forever.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

PARENT = textwrap.dedent(
    """
    import sys, time
    from coolmix.reproduce.runner import make_pool

    with make_pool(2) as pool:
        futs = [pool.submit(time.sleep, 600) for _ in range(2)]
        time.sleep(1.0)
        print(" ".join(str(p) for p in pool._processes), flush=True)
        time.sleep(600)
    """
)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie awaiting its reaper is dead for our purpose
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except OSError:
        return True


@pytest.mark.slow
def test_workers_exit_when_the_reproduce_process_is_killed():
    parent = subprocess.Popen([sys.executable, "-c", PARENT], stdout=subprocess.PIPE, text=True)
    try:
        line = parent.stdout.readline() if parent.stdout else ""
        workers = [int(x) for x in line.split()]
        assert len(workers) == 2 and all(_alive(p) for p in workers), line
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=30)
        deadline = time.monotonic() + 10
        while any(_alive(p) for p in workers) and time.monotonic() < deadline:
            time.sleep(0.1)
        left = [p for p in workers if _alive(p)]
        assert not left, f"workers still running after their parent was killed: {left}"
    finally:
        parent.kill()
        for p in workers if "workers" in locals() else []:
            if _alive(p):
                os.kill(p, signal.SIGKILL)
