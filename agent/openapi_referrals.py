"""The referral payloads in the OpenAPI document: a request schema per message type, and
synthetic examples that the dev federation accepts.

Rules:
1. The submit and preview bodies are a ``oneOf`` of one schema per message type
   (``Submit<Model>``), keyed by a ``discriminator`` on the body's ``type`` (OpenAPI 3.1; the
   mapping names each schema). Each is the :class:`~agent.api_models.SubmitRequest` schema with
   ``type`` fixed by ``const`` and ``payload`` a ``$ref`` to the message type's own JSON Schema
   (``federation.referrals.MESSAGE_TYPES``, validation mode), a component of its own.
2. Payload schemas keep every field optional, as the models do (recipients get minimised
   payloads); ``x-required-on-submit`` lists what a sender must supply, and a submit missing
   one is a 422 naming it.
3. Examples come from ``federation.synth`` with a fixed seed (deterministic; ``synthetic: true``,
   ``SYN-`` references, invented names), each on a flow the shipped ISAs PERMIT
   (:data:`EXAMPLE_FLOWS`): submitted by its sender's agent in the dev federation, each gets
   202 (``tests/integration/test_api_fuzz.py`` proves it). ``dash_risk_assessment`` has no
   example: no shipped ISA carries that type, so any example of it would be denied.
4. This module performs no I/O.
"""

from __future__ import annotations

import copy
import random
from dataclasses import dataclass
from typing import Any, Final

from pydantic import BaseModel

from federation.referrals import MESSAGE_TYPES, REQUIRED_ON_SUBMIT, RiskLevel
from federation.synth import generate_referral

__all__ = [
    "EXAMPLE_FLOWS",
    "EXAMPLE_SEED",
    "ExampleFlow",
    "referral_body_schema",
    "referral_examples",
    "referral_models",
    "referral_schemas",
]

EXAMPLE_SEED: Final = 16


@dataclass(frozen=True)
class ExampleFlow:
    """A flow of the shipped ISAs that PERMITs this message type at this risk level."""

    sender: str
    to: str
    isa: str
    purpose: str
    type: str
    risk: RiskLevel

    def body(self) -> dict[str, Any]:
        """The submit body (without ``idempotency_key``), its payload from ``federation.synth``."""
        rng = random.Random(EXAMPLE_SEED)  # noqa: S311 - a reproducible synthetic example
        payload = generate_referral(self.type, rng, risk_level=self.risk)
        return {
            "to": self.to,
            "isa": self.isa,
            "purpose": self.purpose,
            "type": self.type,
            "payload": payload,
        }


#: One example per message type that a shipped ISA carries (rule 3): MARAC referrals need high
#: risk (standard is denied, medium goes to review); the others are permitted at standard risk.
EXAMPLE_FLOWS: Final[tuple[ExampleFlow, ...]] = (
    ExampleFlow("police-scotland", "marac-coordinator", "isa-marac-referrals",
                "marac_risk_management", "marac_referral", "high"),
    ExampleFlow("police-scotland", "assist", "isa-police-assist-advocacy",
                "advocacy_after_charge", "police_concern", "standard"),
    ExampleFlow("police-scotland", "assist", "isa-police-assist-advocacy",
                "advocacy_after_charge", "support_referral", "standard"),
    ExampleFlow("caledonian-mens", "caledonian-womens", "isa-caledonian-partner-contact",
                "partner_safety", "caledonian_partner_contact", "standard"),
)  # fmt: skip


def referral_models() -> list[type[BaseModel]]:
    """Every message type's model, in the order of their names."""
    return [MESSAGE_TYPES[name] for name in sorted(MESSAGE_TYPES)]


def _submit_name(message_type: str) -> str:
    return "Submit" + MESSAGE_TYPES[message_type].__name__


def referral_schemas(components: dict[str, Any], ref: str, submit_request: str) -> dict[str, Any]:
    """The per-type submit schemas (rule 1), and ``x-required-on-submit`` on each payload's."""
    base = components[submit_request]
    added: dict[str, Any] = {}
    for message_type in sorted(MESSAGE_TYPES):
        model = MESSAGE_TYPES[message_type].__name__
        payload = components[model]
        payload["x-message-type"] = message_type
        payload["x-required-on-submit"] = list(REQUIRED_ON_SUBMIT[message_type])
        schema = copy.deepcopy(base)
        schema.pop("examples", None)
        schema["title"] = _submit_name(message_type)
        schema["description"] = f"A {message_type} referral, before minimisation."
        properties = schema["properties"]
        properties["type"] = {"type": "string", "const": message_type, "title": "Type"}
        properties["payload"] = {
            "$ref": ref.format(model=model),
            "description": "The referral before minimisation; see x-required-on-submit.",
        }
        added[_submit_name(message_type)] = schema
    return added


def referral_body_schema(ref: str) -> dict[str, Any]:
    """The request body: one of the per-type schemas, picked by ``type`` (rule 1)."""
    mapping = {t: ref.format(model=_submit_name(t)) for t in sorted(MESSAGE_TYPES)}
    return {
        "oneOf": [{"$ref": target} for target in mapping.values()],
        "discriminator": {"propertyName": "type", "mapping": mapping},
    }


def referral_examples() -> dict[str, Any]:
    """OpenAPI ``examples`` for the submit and preview bodies, one per flow (rule 3)."""
    return {
        flow.type: {
            "summary": f"{flow.type}: {flow.sender} -> {flow.to} ({flow.risk} risk, synthetic)",
            "description": (
                f"Synthetic (federation.synth, seed {EXAMPLE_SEED}). Submitted by the "
                f"{flow.sender} agent under {flow.isa} for {flow.purpose}: PERMIT, 202."
            ),
            "value": flow.body(),
        }
        for flow in EXAMPLE_FLOWS
    }
