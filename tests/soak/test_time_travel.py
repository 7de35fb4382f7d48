"""The time-travel soak of issue 15 ("Done when"), on the real RabbitMQ with real agent processes.

Four agencies run as ``isa-agent run`` processes beside ``isa-broker serve``, all under one
libfaketime clock the test moves a day (23 h) at a time, with referrals on every ISA flow at
every step; the only operator actions are the scheduled jobs the README tells operators to
install (:mod:`devtools.soak`). This is the short form ``scripts/test`` runs: 50 simulated days
from federation day 297, which take in a certificate renewal of every agency and of the manifest
signer, key rotations, the provoked single-key revocation and a new version of one ISA
(``CHANGED_ISA``). ``SOAK_DAYS=800`` runs the long
form instead (``scripts/soak --days 800`` prints the same figures without pytest).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from devtools.soak import Soak, SoakPlan
from tests.support.rabbitmq import RabbitServer

pytestmark = [pytest.mark.rabbitmq, pytest.mark.slow]

LONG_DAYS = float(os.environ.get("SOAK_DAYS", "0"))
PLAN = SoakPlan.long(LONG_DAYS) if LONG_DAYS else SoakPlan.short()
CHANGED = "isa-police-assist-advocacy"  # the ISA of devtools.soak.run.CHANGED_ISA


@pytest.mark.timeout(600 + PLAN.steps * 6)
def test_a_federation_left_to_its_scheduled_jobs_delivers_every_referral_exactly_once(
    tmp_path: Path, rabbit_server: RabbitServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every 202 is delivered exactly once, with its delivered receipt back at the sender;
    the only refusals are those to the agency whose key the test revoked, until its new key
    is out; rotations, renewals and the signer renewal all happened by themselves; referrals
    went under both versions of the ISA the test changed."""
    figures = Soak(tmp_path / "soak", PLAN, broker=rabbit_server).run()
    with capsys.disabled():
        print("\n" + figures.table())
    assert figures.problems() == []
    assert figures.accepted >= 5 * PLAN.steps  # 6 a step: 3 flows, twice
    assert all(n >= 2 for n in figures.key_rotations_by_agency.values())
    assert all(n >= 1 for n in figures.agency_renewals_by_agency.values())
    assert figures.signer_renewals >= 1
    assert figures.revocations == 1
    assert figures.isa_version_changes == 1
    versions = {k.split()[1] for k in figures.deliveries_by_isa if k.startswith(CHANGED)}
    assert versions == {"1.0.0", "1.1.0"}  # referrals went under both, the switch lost none
