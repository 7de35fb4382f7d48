"""The receiver's one call, ``federation.receive.receive``: every check of docs/protocol.md
section 6 by its step number, each refusal with its step's reason, the lowest failing step first.

A ``Case`` is one delivery (the frame's spec and payload, a mutation of its bytes, the receiver's
facts, ``now``, ``seen`` and the AMQP ``user_id``); ``STEPS[n]`` turns a conforming case into one
failing step ``n``, so two of them together fail two steps.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import timedelta
from itertools import combinations
from pathlib import Path
from typing import Any

import pytest

from federation.envelope import WireVersion, envelope_sha256, peek_header, seal
from federation.isa import Isa, IsaRegistry, load_isa
from federation.keys import Keyring
from federation.manifest import IsaEntry, Manifest
from federation.pipeline import Prepared, prepare
from federation.receive import Accepted, ReceiverFacts, Refused, receive
from federation.synth import generate_referral
from tests.unit.federation.helpers import NOW, Federation

POLICIES = Path(__file__).resolve().parents[3] / "policies"
SENDER, RECIPIENT = "assist", "marac-coordinator"
_PATH = POLICIES / "marac-referrals.yaml"
ISA: Isa = load_isa(str(_PATH), _PATH.read_bytes())
FED = Federation()
FED.add_agency(SENDER, 20)
FED.add_agency(RECIPIENT, 21)


def _isa_entry(**changes: Any) -> IsaEntry:
    raw: dict[str, Any] = {
        "id": ISA.id, "version": ISA.version, "sha256": ISA.sha256,
        "parties": [SENDER, RECIPIENT], "status": "active",
        "effective_from": "2026-01-01T00:00:00Z", "effective_to": None,
    }  # fmt: skip
    return IsaEntry(**(raw | changes))


def _manifest(**isa_changes: Any) -> Manifest:
    return FED.manifest(FED.document(isas=[_isa_entry(**isa_changes)]))


MANIFEST = _manifest()


def _prepared(level: str = "high") -> Prepared:
    payload = generate_referral("marac_referral", random.Random(3), risk_level=level)
    prep = prepare(
        ISA, sender=SENDER, recipient=RECIPIENT, purpose="marac_risk_management",
        message_type="marac_referral", payload=payload, now=NOW, ttl=timedelta(hours=1),
    )  # fmt: skip
    assert prep.spec is not None
    return prep


PREPARED = _prepared()
EXPIRES = NOW + timedelta(hours=1)


@dataclass(frozen=True)
class Case:
    """One delivery to the recipient, conforming unless changed."""

    spec: dict[str, Any] = field(default_factory=dict)
    payload: dict[str, Any] = field(default_factory=dict)
    mutations: tuple[Callable[[bytes], bytes], ...] = ()
    recipient: str = RECIPIENT
    manifest: Manifest = MANIFEST
    registry: IsaRegistry = field(default_factory=lambda: IsaRegistry([ISA]))
    keyring: Keyring = FED.agencies[RECIPIENT].keyring
    now: Any = NOW
    seen: Callable[[str], bool] = lambda _id: False
    user_id: str | None = SENDER
    max_ciphertext: int = 1024 * 1024

    def frame(self, version: WireVersion = 2) -> bytes:
        assert PREPARED.spec is not None
        frame = seal(
            PREPARED.payload | self.payload, replace(PREPARED.spec, **self.spec),
            signing_key=FED.agencies[SENDER].signing,
            recipient_public=FED.agencies[RECIPIENT].encryption.public, now=NOW, version=version,
        )  # fmt: skip
        for mutate in self.mutations:
            frame = mutate(frame)
        return frame

    def run(self, version: WireVersion = 2, frame: bytes | None = None) -> Accepted | Refused:
        facts = ReceiverFacts(
            recipient=self.recipient, manifest=self.manifest, registry=self.registry,
            keyring=self.keyring, max_ciphertext=self.max_ciphertext,
        )  # fmt: skip
        return receive(
            self.frame(version) if frame is None else frame,
            user_id=self.user_id,
            facts=facts,
            now=self.now,
            seen=self.seen,
        )


def _flip_last_byte(frame: bytes) -> bytes:
    return frame[:-1] + bytes([frame[-1] ^ 1])


#: step number -> (its reason code, a change making a conforming case fail that step)
STEPS: dict[int, tuple[str, Callable[[Case], Case]]] = {
    1: ("bad_frame", lambda c: replace(c, mutations=(*c.mutations, lambda f: f[:-1]))),
    2: ("bad_signature", lambda c: replace(c, mutations=(*c.mutations, _flip_last_byte))),
    3: ("wrong_recipient", lambda c: replace(c, recipient="syn-council")),
    4: ("expired", lambda c: replace(c, now=EXPIRES)),
    5: ("clock_skew", lambda c: replace(c, now=NOW - timedelta(minutes=6))),
    6: ("replay", lambda c: replace(c, seen=lambda _id: True)),
    7: ("key_unknown", lambda c: replace(c, keyring=Keyring())),
    8: ("isa_inactive", lambda c: replace(c, manifest=_manifest(status="suspended"))),
    9: ("isa_mismatch", lambda c: replace(c, registry=IsaRegistry())),
    10: ("payload_invalid", lambda c: replace(c, payload=c.payload | {"shoe_size": 9})),
    11: (
        "lawful_basis_mismatch",
        lambda c: replace(c, spec=c.spec | {"lawful_basis": {f"{SENDER}.article6": "a6_1_a"}}),
    ),
    12: ("isa_violation", lambda c: replace(c, spec=c.spec | {"risk": "medium"})),
    13: ("transport_identity", lambda c: replace(c, user_id="syn-police")),
}
_SAME_INPUT = {(4, 5)}  # both set ``now``: no one delivery fails both
PAIRS = [pair for pair in combinations(STEPS, 2) if pair not in _SAME_INPUT]


def failing(*steps: int) -> Case:
    case = Case()
    for step in steps:
        case = STEPS[step][1](case)
    return case


def refusal(case: Case, version: WireVersion = 2) -> Refused:
    result = case.run(version)
    assert isinstance(result, Refused), result
    return result


class TestReceive:
    @pytest.mark.parametrize("version", [1, 2])
    def test_a_conforming_envelope_is_accepted(self, version: WireVersion) -> None:
        """What prepare produced, sealed and delivered by its sender's broker user, is accepted."""
        result = Case().run(version)
        assert isinstance(result, Accepted)
        assert result.payload == PREPARED.payload
        assert (result.header.sender, result.header.to) == (SENDER, RECIPIENT)

    @pytest.mark.parametrize("version", [1, 2])
    @pytest.mark.parametrize("step", sorted(STEPS))
    def test_a_frame_failing_one_step_is_refused_with_that_steps_reason(
        self, step: int, version: WireVersion
    ) -> None:
        """A delivery failing exactly step N of section 6 is refused with step N's reason."""
        assert refusal(failing(step), version).reason == STEPS[step][0]

    @pytest.mark.parametrize(("low", "high"), PAIRS)
    def test_a_frame_failing_two_steps_reports_the_lower(self, low: int, high: int) -> None:
        """A delivery failing steps N < M is refused with step N's reason, whatever M is."""
        assert refusal(failing(low, high)).reason == STEPS[low][0]


class TestStepDetails:
    """The receiver-side ISA checks (moved here from the TestAccept of
    tests/unit/federation/test_pipeline.py)."""

    def test_an_isa_we_do_not_hold_is_isa_mismatch(self) -> None:
        """Step 9: our own registry must hold the cited ISA."""
        refused = refusal(failing(9))
        assert refused.reason == "isa_mismatch"
        assert refused.detail == "our copy of the ISA differs from the cited one"

    def test_a_payload_that_breaks_its_schema_is_payload_invalid(self) -> None:
        """Step 10: unknown fields in the decrypted payload are refused, named in the detail."""
        refused = refusal(failing(10))
        assert refused.reason == "payload_invalid"
        assert "shoe_size" in refused.detail

    def test_wrong_lawful_basis_tags_are_rejected(self) -> None:
        """Step 11: a sender claiming another legal footing than the ISA's is refused."""
        assert refusal(failing(11)).reason == "lawful_basis_mismatch"

    def test_a_field_the_isa_withholds_is_an_isa_violation(self) -> None:
        """Step 12: a medium-risk envelope carrying high-risk-only fields names the paths."""
        refused = refusal(failing(12))
        assert refused.reason == "isa_violation"
        assert "not allowed" in refused.detail

    def test_a_delivery_without_a_user_id_is_transport_identity(self) -> None:
        """Step 13: an absent AMQP user_id (RabbitMQ did not validate it) is refused too."""
        assert refusal(replace(Case(), user_id=None)).reason == "transport_identity"


class TestWhomARefusalAnswers:
    @pytest.mark.parametrize("step", [1, 2, 6])
    def test_an_unauthenticated_or_replayed_frame_answers_nobody(self, step: int) -> None:
        """Steps 1, 2 (before the signature holds) and 6 refuse without naming whom to answer."""
        assert refusal(failing(step)).reply_to is None

    @pytest.mark.parametrize("step", [3, 4, 5, 7, 8, 9, 10, 11, 12, 13])
    def test_an_authenticated_frame_answers_its_sender(self, step: int) -> None:
        """A refusal after step 2 names the sender's routing and the hash of the frame."""
        case = failing(step)
        frame = case.frame()
        refused = case.run(frame=frame)
        assert isinstance(refused, Refused)
        assert refused.reply_to == peek_header(frame)
        assert refused.reply_to.sender == SENDER
        assert refused.envelope_sha256 == envelope_sha256(frame)

    def test_a_refusal_of_a_frame_over_one_mebibyte_names_its_sender(self) -> None:
        """With a ciphertext limit above 1 MiB, a large authenticated frame refused at step 10
        still names whom to answer (the agent used to re-parse it under the 1 MiB default)."""
        case = replace(failing(10), payload={"notes": "x" * (1536 * 1024)}, max_ciphertext=4 << 20)
        refused = refusal(case)
        assert refused.reason == "payload_invalid"
        assert refused.reply_to is not None
        assert refused.reply_to.sender == SENDER
