"""Loader workers ignore stop signals, yet a script that exits with a live iterator still exits."""

import os
import signal
import subprocess
import sys

import pytest

SCRIPT = """
from torch.utils.data import DataLoader
from slu_lightning.data.workers import ignore_stop_signals, stop_safe_worker_init

if __name__ == "__main__":
    init = stop_safe_worker_init(2) if {guard} else ignore_stop_signals  # as the loaders get it, or bare
    loader = DataLoader(list(range(100)), batch_size=2, num_workers=2, worker_init_fn=init)
    batches = iter(loader)  # alive until the interpreter exits
    print(next(batches).tolist(), flush=True)
"""


def start(tmp_path, guard: bool) -> subprocess.Popen:
    script = tmp_path / "exit_with_live_workers.py"
    script.write_text(SCRIPT.format(guard=guard))
    process = subprocess.Popen(
        [sys.executable, str(script)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert process.stdout.readline() == "[0, 1]\n"  # the workers are up; the script now exits
    return process


def test_the_exit_handler_kills_workers_that_ignore_sigterm(tmp_path):
    process = start(tmp_path, guard=True)
    try:
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode == 0 and stderr == ""  # torch reports no killed worker either


def test_without_it_multiprocessing_waits_for_them_for_good(tmp_path):
    """The trap the handler removes: if this exits, the handler is no longer needed."""
    process = start(tmp_path, guard=False)
    try:
        with pytest.raises(subprocess.TimeoutExpired):
            process.wait(timeout=5)
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
