"""How many CPUs this process may really use (standard library only: trainer and server share it)."""

from __future__ import annotations

import math
import os
from pathlib import Path


def available_cpus(cgroup_root: Path = Path("/sys/fs/cgroup")) -> int:
    """CPUs this process may use: the container's CPU limit (cgroup v2 cpu.max, or v1 quota)
    when set, else the CPUs it is allowed to run on. os.cpu_count() alone would report the
    whole node inside a Kubernetes pod and oversubscribe it."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    for quota_file, period_file in (("cpu.max", None), ("cpu/cpu.cfs_quota_us", "cpu/cpu.cfs_period_us")):
        try:
            if period_file is None:
                quota, period = (cgroup_root / quota_file).read_text().split()[:2]
            else:
                quota = (cgroup_root / quota_file).read_text().strip()
                period = (cgroup_root / period_file).read_text().strip()
            if quota not in ("max", "-1"):
                return max(1, min(cpus, math.ceil(int(quota) / int(period))))
        except (OSError, ValueError):
            continue
    return max(1, cpus)
