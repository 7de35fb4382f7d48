"""The one agent-process launcher of the tools: ``isa-agent run --config FILE`` as a process.

Rules:
1. An :class:`AgentProcess` is one agent started from its ``agent.toml`` (default program: the
   ``isa-agent`` console script beside this Python, exactly what an agency runs; a caller may
   name another, e.g. ``python -m agent.cli`` or a profiler wrapping it). Its output goes to a
   log file whose tail explains a failed start.
2. Ready means ``GET /healthz`` answers 200 (the agent answers 200 only when its status is
   ``ok``). Waiting has a synchronous form (scripts) and an async one that never blocks the
   caller's event loop for more than one short health probe in a worker thread (tests that keep
   other work running while an agent restarts).
3. Stopping is SIGTERM (the agent drains in-flight work), then SIGKILL if it has not ended
   within the grace period; SIGKILL alone is a crash. Only processes this module started, or
   pids the caller proves are still its own (``is_ours``), are ever signalled.
4. Failures are one :class:`LaunchError` naming the agent and carrying its log tail.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "ISA_AGENT",
    "AgentProcess",
    "LaunchError",
    "free_port",
    "stop_pids",
    "wait_all_healthy",
]

ISA_AGENT = (str(Path(sys.executable).with_name("isa-agent")),)
PROBE_SECONDS = 2.0


class LaunchError(RuntimeError):
    """An agent process did not start, did not become healthy, or would not stop."""


def free_port() -> int:
    """A TCP port that was free a moment ago on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class AgentProcess:
    """One agent process: how to start it, where it answers, and the process once started."""

    agency: str
    config: Path
    url: str
    log: Path
    program: Sequence[str] = ISA_AGENT
    options: Sequence[str] = ()  # after ``run --config FILE``: --event-loop, --log-level...
    env: Mapping[str, str] | None = None  # None: this process's environment
    cwd: Path | None = None
    new_session: bool = False  # its own session: a terminal's Ctrl-C does not reach it
    preexec: Callable[[], None] | None = field(default=None, repr=False)
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def pid(self) -> int:
        if self.process is None:
            raise LaunchError(f"agent {self.agency} was never started")
        return self.process.pid

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> None:
        """Start the process (it is not ready yet: see :meth:`wait_healthy`)."""
        if self.running:
            raise LaunchError(f"agent {self.agency} is already running")
        argv = [*self.program, "run", "--config", str(self.config), *self.options]
        with self.log.open("ab") as sink:
            self.process = subprocess.Popen(  # noqa: S603 - our own program, no shell
                argv, stdin=subprocess.DEVNULL, stdout=sink, stderr=subprocess.STDOUT,
                env=None if self.env is None else dict(self.env), cwd=self.cwd,
                start_new_session=self.new_session, preexec_fn=self.preexec,
            )  # fmt: skip

    def healthy(self) -> bool:
        """One probe of ``/healthz`` (rule 2); raises :class:`LaunchError` if it has exited."""
        if self.process is not None and self.process.poll() is not None:
            raise LaunchError(f"agent {self.agency} exited with {self.process.returncode} "
                              f"during start-up; {self.log}:\n{self.tail()}")  # fmt: skip
        try:
            with urllib.request.urlopen(self.url + "/healthz", timeout=PROBE_SECONDS) as resp:  # noqa: S310
                return bool(resp.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def wait_healthy(self, within: float) -> None:
        wait_all_healthy([self], within)

    async def await_healthy(self, within: float) -> None:
        """:meth:`wait_healthy` for async callers (rule 2)."""
        deadline = time.monotonic() + within
        while not await asyncio.to_thread(self.healthy):
            if time.monotonic() > deadline:
                raise LaunchError(f"agent {self.agency} not healthy within {within:.0f}s:\n"
                                  f"{self.tail()}")  # fmt: skip
            await asyncio.sleep(0.1)

    def stop(self, signum: signal.Signals = signal.SIGTERM, grace: float = 30.0) -> int | None:
        """Signal, wait up to ``grace``, SIGKILL if still running; the exit code (rule 3).

        Raises :class:`LaunchError` (after killing it) if it ignored ``signum``."""
        process, self.process = self.process, None
        if process is None:
            return None
        if process.poll() is None:
            process.send_signal(signum)
        try:
            return process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise LaunchError(f"agent {self.agency} ignored {signum.name} for {grace:.0f}s "
                              "and was killed") from None  # fmt: skip

    async def astop(
        self, signum: signal.Signals = signal.SIGTERM, grace: float = 30.0
    ) -> int | None:
        """:meth:`stop` for async callers: the waiting happens in a worker thread."""
        return await asyncio.to_thread(self.stop, signum, grace)

    def tail(self, lines: int = 30) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])


def wait_all_healthy(
    agents: Sequence[AgentProcess], within: float,
    ready: Callable[[AgentProcess], bool] | None = None,
) -> None:
    """Wait until every agent is healthy (and ``ready``, when given); :class:`LaunchError` if
    one exits or the time is up, naming those still waiting."""
    deadline, waiting = time.monotonic() + within, list(agents)
    while waiting:
        waiting = [a for a in waiting if not (a.healthy() and (ready is None or ready(a)))]
        if not waiting:
            return
        if time.monotonic() > deadline:
            names = ", ".join(sorted(a.agency for a in waiting))
            raise LaunchError(f"no healthy /healthz within {within:.0f}s from: {names}")
        time.sleep(0.1)


def stop_pids(
    pids: Iterable[int], is_ours: Callable[[int], bool], grace: float = 15.0
) -> tuple[int, list[int]]:
    """SIGTERM each pid still ours, wait for all to drain, SIGKILL the stubborn (rule 3).

    For processes recorded by an earlier run (no handle left); returns (how many were
    stopped, the pids that had to be killed)."""
    mine = [pid for pid in pids if is_ours(pid)]
    for pid in mine:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while any(is_ours(pid) for pid in mine) and time.monotonic() < deadline:
        time.sleep(0.05)
    stubborn = [pid for pid in mine if is_ours(pid)]
    for pid in stubborn:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return len(mine), stubborn
