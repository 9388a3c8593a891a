"""The suite's own end check: what a test leaves running is found, whatever it did to
detach it (the check in conftest.py fails the run on it)."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile

from engine_util import SUITE_ENV, suite_leftovers


def test_a_detached_engine_a_test_left_running_is_found() -> None:
    token = os.environ[SUITE_ENV]
    directory = tempfile.mkdtemp(prefix="mtrt-", dir="/tmp")
    proc = subprocess.Popen([sys.executable, "-m", "migtui", "engine", "--foreground", "--runtime-dir", directory],
                            start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert proc.pid in [pid for pid, _ in suite_leftovers(token)]
        assert proc.pid not in [pid for pid, _ in suite_leftovers("another-run")]  # another suite's: not ours
    finally:
        proc.kill()
        proc.wait()
    assert proc.pid not in [pid for pid, _ in suite_leftovers(token)]
