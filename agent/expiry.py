"""What this agent relies on that expires, for ``/metrics``, ``/healthz`` and ``isa-agent check``.

Rules:
1. The deadlines are ``federation.deadlines``' for this agency: the manifest it holds, the root
   and manifest-signer certificates, its own certificate and its own current announced
   encryption key, and the review and end date of every ISA in force (``agent.trust`` rule 8).
2. Each becomes a gauge of the seconds left (negative once lapsed), the names fixed by
   ``GAUGES``; ISA gauges carry an ``isa`` label, certificate gauges a ``certificate`` label
   (``root``, ``signer``, ``agency``). No personal data: ids, kinds and times only.
3. Pure: ``now`` is an argument.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from cryptography import x509

from federation.deadlines import Deadline, isa_deadlines, manifest_deadlines
from federation.isa import IsaRegistry
from federation.manifest import Manifest

__all__ = ["GAUGES", "agent_deadlines", "expiry_gauges"]

GAUGES = {
    "manifest": "isa_agent_manifest_expires_in_seconds",
    "root_certificate": 'isa_agent_certificate_expires_in_seconds{{certificate="root"}}',
    "signer_certificate": 'isa_agent_certificate_expires_in_seconds{{certificate="signer"}}',
    "agency_certificate": 'isa_agent_certificate_expires_in_seconds{{certificate="agency"}}',
    "encryption_key": "isa_agent_encryption_key_expires_in_seconds",
    "isa_review": 'isa_agent_isa_review_in_seconds{{isa="{subject}"}}',
    "isa_end": 'isa_agent_isa_end_in_seconds{{isa="{subject}"}}',
}


def agent_deadlines(
    manifest: Manifest, root: x509.Certificate, agency: str, isas: IsaRegistry, now: datetime
) -> list[Deadline]:
    """Rule 1."""
    ours = [
        d
        for d in manifest_deadlines(manifest, root, now)
        if d.kind not in ("agency_certificate", "encryption_key") or d.subject == agency
    ]
    local = (isa for isa in (isas.get(i) for i in isas.ids()) if isa is not None)
    return ours + isa_deadlines(local)


def expiry_gauges(deadlines: Iterable[Deadline], now: datetime) -> dict[str, float]:
    """Rule 2: ``{metric name with labels: seconds left}``."""
    return {
        GAUGES[d.kind].format(subject=d.subject.replace('"', "")): round(d.seconds_left(now))
        for d in deadlines
    }
