"""The disk under the sender's ``data_dir`` fills up mid-stream: submissions get 503 (never a
500, never a 202 whose message is then lost); once space is freed, everything accepted is
delivered exactly once.

The disk is real: ``data_dir`` is a small tmpfs mounted for the test (the tests run as root),
and a filler file takes all but a little of its space, so SQLite meets ENOSPC exactly as on a
full disk. The recipient's disk is filled the same way while deliveries arrive: they must
wait in the broker (not be dead-lettered by the queue's delivery limit) until space is freed.
The submissions that met the full disk carry no idempotency key and the case system
submits them again afterwards, so a 503 whose message went out anyway would show up as an
``unexpected`` delivery.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import subprocess
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import aiohttp
import pytest

from broker.devfed import DevFederation
from federation.topology import dead_letter_queue
from tests.faults.conftest import Report
from tests.faults.tally import RECIPIENT, SENDER, CaseSystem, Timer, read_inbox, referrals, tally
from tests.support.federation import AgentHandle, agent_settings, vhost_of
from tests.support.processes import wait_all_status
from tests.support.rabbitmq import RabbitServer

pytestmark = [pytest.mark.rabbitmq, pytest.mark.slow]

BEFORE, DURING, DISK_MB, HEADROOM = 100, 200, 16, 96 * 1024
INCOMING, FULL_SECONDS = 100, 15.0  # longer than the queue's delivery limit of retries takes
RESTARTS = 6  # more than the old delivery limit of 5 (the regression this pins)


@contextlib.contextmanager
def small_disk(directory: Path, megabytes: int) -> Iterator[Path]:
    """Mount a ``megabytes`` tmpfs on ``directory`` for the duration; unmount after."""
    directory.mkdir(parents=True, exist_ok=True)
    mount = ["mount", "-t", "tmpfs", "-o", f"size={megabytes}m,mode=0700", "tmpfs", str(directory)]
    result = subprocess.run(mount, capture_output=True, check=False)
    if result.returncode != 0:
        raise AssertionError(f"this scenario needs root to mount a tmpfs: {result.stderr!r}")
    try:
        yield directory
    finally:
        subprocess.run(["umount", "-l", str(directory)], check=False)


def fill(directory: Path, headroom: int) -> Path:
    """Take all the free space of ``directory``'s filesystem but ``headroom`` bytes.

    The agent keeps writing meanwhile, so the filler itself may meet a full disk: then it gives
    ``headroom`` bytes back (regression: ENOSPC inside this helper failed the test, not the
    agent)."""
    filler = directory / "filler.bin"
    free = os.statvfs(directory)
    size = max(0, free.f_bavail * free.f_frsize - headroom)
    try:
        with filler.open("wb") as out:
            out.write(b"\0" * size)
    except OSError as exc:
        if exc.errno != errno.ENOSPC:
            raise
        os.truncate(filler, max(0, filler.stat().st_size - headroom))
    return filler


async def submit_once(
    agent: AgentHandle, bodies: list[dict[str, object]]
) -> tuple[list[str], list[dict[str, object]], Counter[int]]:
    """POST each body once, in turn: the 202 ids, the bodies refused with 503, every status."""
    accepted: list[str] = []
    refused: list[dict[str, object]] = []
    answers: Counter[int] = Counter()
    for body in bodies:
        status, reply = await agent.post("/v1/messages", body)
        answers[status] += 1
        if status == 202:
            accepted.append(reply["id"])
        else:
            assert status == 503, (status, reply)  # never a 500
            assert reply["status"] == 503, reply
            refused.append(body)
    return accepted, refused, answers


class TestSenderDiskFull:
    async def test_full_disk_gives_503_and_everything_accepted_is_delivered_once(
        self, pair_federation: DevFederation, fault_report: Report
    ) -> None:
        """Disk full after 100: 503s, no 500s; space freed, the 503s resubmitted: all once."""
        timer, fed = Timer(), pair_federation
        settings = agent_settings(fed, SENDER)
        with small_disk(settings.data_dir, DISK_MB) as disk:
            async with aiohttp.ClientSession() as session:
                sender = AgentHandle(settings, fed.agency(SENDER).api_token, session)
                recipient = AgentHandle(
                    agent_settings(fed, RECIPIENT), fed.agency(RECIPIENT).api_token, session
                )
                await sender.start()
                await recipient.start()
                try:
                    case = CaseSystem(sender)
                    accepted = list(await case.submit_all(referrals(BEFORE, "before")))
                    filler = fill(disk, HEADROOM)
                    more, refused, answers = await submit_once(
                        sender, referrals(DURING, "full", keyed=False)
                    )
                    filler.unlink()
                    accepted += more
                    accepted += await CaseSystem(sender).submit_all(refused)
                    received = await read_inbox(recipient, len(accepted), within=60)
                    receipts = await wait_all_status(sender, accepted, "delivered", within=60)
                finally:
                    await recipient.shutdown()
                    await sender.shutdown()
        result = tally(accepted, received)
        fault_report("sender disk full", result, timer.seconds(),
                     f"while_full: 202={answers[202]} 503={answers[503]}")  # fmt: skip
        assert answers[503] >= DURING // 4, answers  # the disk really was full
        assert set(answers) <= {202, 503}
        assert result.exactly_once, result
        assert result.sent == BEFORE + DURING
        assert receipts == {"delivered": BEFORE + DURING}


class TestRecipientDiskFull:
    async def test_deliveries_wait_out_a_full_disk_then_each_arrives_once(
        self, pair_federation: DevFederation, fault_report: Report
    ) -> None:
        """Recipient's disk full for 15 s while 100 arrive: none dead-lettered, each once."""
        timer, fed = Timer(), pair_federation
        settings = agent_settings(fed, RECIPIENT)
        with small_disk(settings.data_dir, DISK_MB) as disk:
            async with aiohttp.ClientSession() as session:
                sender = AgentHandle(
                    agent_settings(fed, SENDER), fed.agency(SENDER).api_token, session
                )
                recipient = AgentHandle(settings, fed.agency(RECIPIENT).api_token, session)
                await sender.start()
                await recipient.start()
                try:
                    filler = fill(disk, HEADROOM)
                    accepted = await CaseSystem(sender).submit_all(referrals(INCOMING, "in-full"))
                    await asyncio.sleep(FULL_SECONDS)
                    status, page = await recipient.get("/v1/inbox?after=0&limit=500")
                    assert status in (200, 503), page  # reading is audited: 503, never 500
                    while_full = len(page["items"]) if status == 200 else 0
                    filler.unlink()
                    received = await read_inbox(recipient, len(accepted), within=60)
                    receipts = await wait_all_status(sender, accepted, "delivered", within=60)
                finally:
                    await recipient.shutdown()
                    await sender.shutdown()
        result = tally(accepted, received)
        fault_report("recipient disk full", result, timer.seconds(),
                     f"in_inbox_while_full={while_full}")  # fmt: skip
        assert while_full < INCOMING  # the disk really was full
        assert result.exactly_once, result
        assert receipts == {"delivered": INCOMING}


class TestRecipientRestartedWhileDiskFull:
    async def test_restarts_during_a_full_disk_dead_letter_nothing(
        self, pair_federation: DevFederation, rabbit_server: RabbitServer, fault_report: Report
    ) -> None:
        """Recipient restarted 6 times while its disk is full and 50 wait: each arrives once."""
        timer, fed = Timer(), pair_federation
        settings = agent_settings(fed, RECIPIENT)
        with small_disk(settings.data_dir, DISK_MB) as disk:
            async with aiohttp.ClientSession() as session:
                sender = AgentHandle(
                    agent_settings(fed, SENDER), fed.agency(SENDER).api_token, session
                )
                recipient = AgentHandle(settings, fed.agency(RECIPIENT).api_token, session)
                await sender.start()
                await recipient.start()
                try:
                    filler = fill(disk, HEADROOM)
                    accepted = await CaseSystem(sender).submit_all(referrals(50, "restarts"))
                    await asyncio.sleep(2.0)
                    for _ in range(RESTARTS):
                        await recipient.shutdown()
                        await recipient.start()
                        await asyncio.sleep(1.5)
                    filler.unlink()
                    received = await read_inbox(recipient, len(accepted), within=15)
                finally:
                    await recipient.shutdown()
                    await sender.shutdown()
        result = tally(accepted, received)
        dead = rabbit_server.api(
            "GET", f"queues/{quote(vhost_of(fed), safe='')}/{dead_letter_queue(RECIPIENT)}"
        )["messages"]
        fault_report("recipient restarts, disk full", result, timer.seconds(),
                     f"restarts={RESTARTS} dead_lettered={dead}")  # fmt: skip
        assert dead == 0
        assert result.exactly_once, result
