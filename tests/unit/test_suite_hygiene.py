"""The suite's own end check: what a test leaves running is found, whatever it did to
detach it (the check in conftest.py fails the run on it)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time

from engine_util import SUITE_ENV, suite_leftovers


def test_a_detached_engine_a_test_left_running_is_found() -> None:
    token = os.environ[SUITE_ENV]
    directory = tempfile.mkdtemp(prefix="mtrt-", dir="/tmp")
    proc = subprocess.Popen([sys.executable, "-m", "migtui", "engine", "--foreground", "--runtime-dir", directory],
                            start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        # Popen returns once exec began; the kernel sets up the new argv a moment later.
        deadline = time.monotonic() + 10
        while proc.pid not in [pid for pid, _ in suite_leftovers(token)]:
            assert time.monotonic() < deadline, "the detached engine was never found"
            time.sleep(0.02)
        assert proc.pid not in [pid for pid, _ in suite_leftovers("another-run")]  # another suite's: not ours
    finally:
        proc.kill()
        proc.wait()
        shutil.rmtree(directory, ignore_errors=True)
    assert proc.pid not in [pid for pid, _ in suite_leftovers(token)]
