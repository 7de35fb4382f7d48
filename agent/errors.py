"""The agent's errors: local subclasses of :mod:`federation.errors`, each with its HTTP status.

::

    federation.errors.LocalError
    ├── BadRequest              400  malformed JSON / wrong types / unknown fields in a request
    ├── Unauthorized            401  missing or unknown bearer token
    ├── Forbidden               403  the token lacks the scope for this endpoint
    ├── Denied                  403  the ISA denies this referral (carries the Decision's reasons)
    ├── NotFound                404
    │   └── PayloadPurged       410  the delivery exists but its payload was crypto-shredded
    ├── IdempotencyConflict     409  idempotency key reused with a different body
    ├── PayloadTooLarge         413
    ├── StoreUnavailable        503  cannot store durably (disk full, I/O error): nothing accepted
    ├── TrustUnavailable        503  no valid manifest (fail-closed): sending is stopped
    ├── TransportError          503  the broker could not take a message (never silently dropped)
    ├── WitnessUnavailable      503  the audit-head witness could not be reached or refused a head
    └── AnnouncementNotAccepted 503  the manifest server could not be reached or refused a key
"""

from __future__ import annotations

from collections.abc import Sequence

from federation.errors import LocalError

__all__ = [
    "AnnouncementNotAccepted",
    "BadRequest",
    "Denied",
    "Forbidden",
    "IdempotencyConflict",
    "NotFound",
    "PayloadPurged",
    "PayloadTooLarge",
    "StoreUnavailable",
    "TransportError",
    "TrustUnavailable",
    "Unauthorized",
    "WitnessUnavailable",
]


class BadRequest(LocalError):
    http_status = 400
    title = "Bad request"


class Unauthorized(LocalError):
    http_status = 401
    title = "Unauthorized"


class Forbidden(LocalError):
    http_status = 403
    title = "Forbidden"


class Denied(LocalError):
    """The ISA does not permit this referral; ``reasons`` say why in plain English."""

    http_status = 403
    title = "Denied by the information sharing agreement"

    def __init__(self, message: str, reasons: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.reasons = list(reasons)


class NotFound(LocalError):
    http_status = 404
    title = "Not found"


class PayloadPurged(NotFound):
    """The delivery exists but its payload was crypto-shredded (its data key is gone)."""

    http_status = 410
    title = "Payload purged"


class IdempotencyConflict(LocalError):
    http_status = 409
    title = "Idempotency key reused with a different body"


class PayloadTooLarge(LocalError):
    http_status = 413
    title = "Payload too large"


class StoreUnavailable(LocalError):
    http_status = 503
    title = "Cannot store durably"


class TrustUnavailable(LocalError):
    http_status = 503
    title = "No valid federation manifest"


class TransportError(LocalError):
    http_status = 503
    title = "Broker unavailable"


class WitnessUnavailable(LocalError):
    """The witness (``isa-broker serve``) could not be reached, or refused our audit head."""

    http_status = 503
    title = "Audit witness unavailable"


class AnnouncementNotAccepted(LocalError):
    """A key announcement did not reach the manifest (server unreachable, or ``refused`` with
    its 4xx ``status``); the agent posts it again at its next tick."""

    http_status = 503
    title = "Key announcement not accepted"

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status
