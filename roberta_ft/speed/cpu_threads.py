"""CPU settings: one compute thread per core this process may really use; freed memory kept for reuse.

PyTorch starts one intra-op thread per physical core of the machine. In a container limited by CPU
affinity (``--cpuset-cpus``, ``taskset``) or a cgroup quota (``--cpus``) that can be many more
threads than usable CPUs, and oversubscribed OpenMP threads spin-wait on each other: a run gets
several times slower. An explicit ``OMP_NUM_THREADS`` (or ``torch.set_num_threads`` by the caller)
always wins.

glibc returns every freed block above its mmap threshold (at most 32 MB) to the kernel, so each
training step maps its big tensors (activations, the dense word-embedding gradient) afresh and
pays one page fault per 4 KB page while the kernel zeroes it: about 20,000 faults per MiniLM step.
``keep_freed_memory`` raises both thresholds so those blocks stay in the heap and are reused.
Peak memory is unchanged; the process just does not shrink between steps. Setting
``MALLOC_MMAP_THRESHOLD_`` or ``MALLOC_TRIM_THRESHOLD_`` yourself keeps glibc's behaviour yours.
"""

from __future__ import annotations

import ctypes
import logging
import math
import os
import sys
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


_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt parameters (malloc.h)
_KEEP_BYTES = 1 << 30


def keep_freed_memory() -> bool:
    """Keep freed blocks below 1 GiB in glibc's heap for reuse; True when the setting took."""
    if not sys.platform.startswith("linux") or any(
        os.environ.get(name) for name in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")
    ):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl or another libc: leave it alone
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    done = mallopt(_M_MMAP_THRESHOLD, _KEEP_BYTES) == 1 and mallopt(_M_TRIM_THRESHOLD, _KEEP_BYTES) == 1
    logger.debug("glibc keeps freed blocks below %d MB: %s", _KEEP_BYTES >> 20, done)
    return done
