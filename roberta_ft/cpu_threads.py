"""CPU thread count: one compute thread per core this process may really use.

PyTorch starts one intra-op thread per physical core of the machine. In a container limited by CPU
affinity (``--cpuset-cpus``, ``taskset``) or a cgroup quota (``--cpus``) that can be many more
threads than usable CPUs, and oversubscribed OpenMP threads spin-wait on each other: a run gets
several times slower. An explicit ``OMP_NUM_THREADS`` (or ``torch.set_num_threads`` by the caller)
always wins.
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path

logger = logging.getLogger(__name__)


def usable_cpus() -> int:
    """CPUs this process may run on: its affinity mask, capped by a cgroup v2 CPU quota if there is one."""
    try:
        count = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        count = os.cpu_count() or 1
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            count = min(count, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return max(1, count)


def fit_threads_to_cpus() -> None:
    """Lower torch's intra-op threads to the usable CPUs when nobody chose a thread count."""
    if os.environ.get("OMP_NUM_THREADS") or os.environ.get("MKL_NUM_THREADS"):
        return
    import torch

    threads, usable = torch.get_num_threads(), usable_cpus()
    if threads > usable:
        torch.set_num_threads(usable)
        logger.info("Using %d CPU threads (torch wanted %d; this process may use %d CPUs)", usable, threads, usable)
