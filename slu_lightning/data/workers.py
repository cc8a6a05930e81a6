"""DataLoader workers that leave stop signals to the main process, and never block its exit."""

from __future__ import annotations

import atexit
import functools
import multiprocessing
import signal
from collections.abc import Callable


def ignore_stop_signals(worker_id: int) -> None:
    """Workers leave SIGINT/SIGTERM to the main process, which saves before exiting: a signal sent to
    the whole process group (Ctrl-C, SLURM) would otherwise kill them and abort the run unsaved."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def stop_safe_worker_init(num_workers: int) -> Callable[[int], None]:
    """The loaders' ``worker_init_fn``: ``ignore_stop_signals``, with ``kill_workers_at_exit``
    registered when there are workers, since the one makes the other necessary."""
    if num_workers:
        kill_workers_at_exit()
    return ignore_stop_signals


@functools.cache
def kill_workers_at_exit() -> None:
    """At interpreter exit, multiprocessing stops daemonic children with SIGTERM and waits for them:
    workers that ignore it, of a loader iterator still alive then, would hang the exit for good.
    Registered after multiprocessing's own exit handler, this one runs first and kills them."""
    atexit.register(_kill_daemonic_children)


def _kill_daemonic_children() -> None:
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # torch's handler reports a killed worker as a failure
    for child in multiprocessing.active_children():
        if child.daemon:
            child.kill()
