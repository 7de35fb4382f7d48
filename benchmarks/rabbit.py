"""CPU accounting of the benchmarked processes and of the local RabbitMQ node (Linux).

Rules:
1. The broker and its management API are :class:`devtools.management.Broker` (the tools' one
   management client); this module only reads ``/proc``.
2. CPU accounting reads ``/proc/<pid>/stat``; the broker's node is the local ``beam.smp``
   listening on the AMQP port.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

__all__ = ["broker_cpu_seconds", "cpu_seconds"]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _listening_inodes(port: int) -> set[str]:
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                    inodes.add(fields[9])
    return inodes


def broker_pid(port: int) -> int | None:
    """The local ``beam.smp`` listening on ``port`` (the AMQP port), if any."""
    wanted = {f"socket:[{inode}]" for inode in _listening_inodes(port)}
    for proc in Path("/proc").iterdir():
        with contextlib.suppress(OSError):
            if (
                proc.name.isdigit()
                and (proc / "comm").read_text().strip() == "beam.smp"
                and any(os.readlink(fd) in wanted for fd in (proc / "fd").iterdir())
            ):
                return int(proc.name)
    return None


def broker_cpu_seconds(port: int = 5672) -> float:
    """CPU seconds so far of the local RabbitMQ node serving ``port``; 0.0 if it is not local.

    It includes whatever else the broker is doing for other users of it at the same time."""
    pid = broker_pid(port)
    with contextlib.suppress(OSError):
        return cpu_seconds(pid) if pid is not None else 0.0
    return 0.0
