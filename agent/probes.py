"""Liveness and readiness, judged from the agent's health facts (Kubernetes probe semantics).

Rules:
1. ``/livez`` answers 200 while the process, its event loop and its store answer; it never
   looks at the manifest or the broker, so a liveness probe never restarts an agent that is
   merely waiting for something outside it (a restart would not bring either back).
2. ``/readyz`` answers 503 (``not_ready``) only for what makes a submit fail now:
   - ``manifest``: no valid federation manifest; the agent fails closed (submits answer 503);
   - ``store``: the store cannot be read (submits could not be made durable: 503);
   - ``certificate``: our own agency certificate is expired, revoked or not in the manifest;
     every recipient would reject what we sign, so every submit answers 503
     (``sender-certificate-expired``).
3. Broker down is ``degraded``, still 200: submits are accepted durably into the outbox and the
   relay sends them once the broker is back (DESIGN: "202 only after the message is durably in
   the outbox"). Marking the agent not ready would take every agent of a federation out of
   service at once whenever the shared broker blips, and stop case systems queueing referrals,
   which is what the outbox is for. The same holds for a current key not (yet) announced:
   peers keep sealing to the previous announced key until the manifest carries the new one.
   Recipients that cannot be sent to now (no current key, certificate not valid) are per
   recipient: ``degraded`` with check ``recipients`` naming them; submits to the others work.
4. ``/healthz`` is kept as it was (200 only when ``ok``) for existing monitors; probes should
   use ``/livez`` and ``/readyz``.
5. This module performs no I/O; findings carry no personal data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from agent.api_models import ProbeFinding, ReadinessResponse

__all__ = ["ReadinessFacts", "judge_readiness"]


@dataclass(frozen=True)
class ReadinessFacts:
    """What the agent knows about itself at one instant."""

    trust: str  # "valid" | "fail_closed" | "none" (federation.manifest.TrustState.status)
    store_ok: bool
    broker_connected: bool
    key_announced: bool
    certificate_problem: str | None = None  # why our own certificate is not valid now
    unreachable: tuple[str, ...] = ()  # recipients submits to would answer 503 now


_TRUST_DETAIL = {
    "fail_closed": "the federation manifest has expired: sending is stopped (fail closed)",
    "none": "no verified federation manifest is held: sending is stopped (fail closed)",
}


def judge_readiness(facts: ReadinessFacts) -> ReadinessResponse:
    """``not_ready`` if anything of rule 2 is missing, else ``degraded`` (rule 3) or ``ready``."""
    missing: list[ProbeFinding] = []
    if facts.trust != "valid":
        detail = _TRUST_DETAIL.get(facts.trust, "no valid federation manifest (fail closed)")
        missing.append(ProbeFinding(check="manifest", detail=detail))
    if not facts.store_ok:
        missing.append(ProbeFinding(check="store", detail="the store cannot be read"))
    if facts.certificate_problem is not None:
        detail = f"{facts.certificate_problem}: sending is stopped"
        missing.append(ProbeFinding(check="certificate", detail=detail))
    degraded: list[ProbeFinding] = []
    if not facts.broker_connected:
        detail = "the broker is unreachable: submits are queued durably and sent on reconnection"
        degraded.append(ProbeFinding(check="broker", detail=detail))
    if not facts.key_announced:
        detail = "our current encryption key is not in the manifest yet"
        degraded.append(ProbeFinding(check="keys", detail=detail))
    if facts.unreachable:
        detail = "no envelope can be sealed now for: " + ", ".join(facts.unreachable)
        degraded.append(ProbeFinding(check="recipients", detail=detail))
    status: Literal["ready", "degraded", "not_ready"] = (
        "not_ready" if missing else "degraded" if degraded else "ready"
    )
    return ReadinessResponse(status=status, missing=missing, degraded=degraded)
