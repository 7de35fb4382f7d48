"""The agent's errors: local subclasses of :mod:`federation.errors`, each with its HTTP status.

::

    federation.errors.LocalError
    ├── BadRequest              400  malformed JSON / wrong types / unknown fields in a request
    │   ├── ActorInvalid        400  a malformed or repeated ``X-Actor-*`` header (agent.actor)
    │   ├── ActorRequired       400  no ``X-Actor-Id``/``X-Actor-Role`` where a person must be
    │   │                            named (``[api] require_actor``, an ISA's ``log: dpa2018_s62``)
    │   └── JustificationRequired 400  a disclosure without ``X-Actor-Justification``
    ├── Unauthorized            401  missing or unknown bearer token
    ├── Forbidden               403  the token lacks the scope for this endpoint
    ├── Denied                  403  the ISA denies this referral (carries the Decision's reasons);
    │                                raised only from an ISA decision (at submit, or decided
    │                                again at a review's approval), never for trust or keys
    ├── NotFound                404
    │   └── PayloadPurged       410  the delivery exists but its payload was crypto-shredded
    ├── IdempotencyConflict     409  idempotency key reused with a different body
    ├── LegalHold               409  the delivery is under legal hold: it may not be erased
    ├── PayloadTooLarge         413
    ├── StoreUnavailable        503  cannot store durably (disk full, I/O error): nothing accepted
    │   └── SchemaTooNew        503  a database written by a newer release: never downgraded
    ├── TrustUnavailable        503  no valid manifest (fail-closed): sending is stopped
    ├── SendRefused             503  the manifest says no envelope to this recipient can be
    │   │                            accepted now (``federation.sending``); never a 403
    │   ├── SenderCertificateExpired      our own certificate is expired, revoked or missing
    │   ├── RecipientKeyUnavailable       the recipient has no current announced key
    │   └── RecipientCertificateExpired   the recipient's certificate is not valid now
    ├── TransportError          503  the broker could not take a message (never silently dropped)
    ├── WitnessUnavailable      503  the audit-head witness could not be reached or refused a head
    ├── RenewalUnavailable      503  a certificate renewal could not be requested (agent.renewal)
    └── AnnouncementNotAccepted 503  the manifest server could not be reached or refused a key

A 503 that retrying can cure carries ``retry_after`` (seconds), sent as ``Retry-After``.
"""

from __future__ import annotations

from collections.abc import Sequence

from federation.errors import LocalError

__all__ = [
    "ActorInvalid",
    "ActorRequired",
    "AnnouncementNotAccepted",
    "BadRequest",
    "Denied",
    "Forbidden",
    "IdempotencyConflict",
    "JustificationRequired",
    "LegalHold",
    "NotFound",
    "PayloadPurged",
    "PayloadTooLarge",
    "RecipientCertificateExpired",
    "RecipientKeyUnavailable",
    "RenewalUnavailable",
    "SchemaTooNew",
    "SendRefused",
    "SenderCertificateExpired",
    "StoreUnavailable",
    "TransportError",
    "TrustUnavailable",
    "Unauthorized",
    "WitnessUnavailable",
]


class BadRequest(LocalError):
    http_status = 400
    title = "Bad request"


class ActorInvalid(BadRequest):
    """An ``X-Actor-*`` header is malformed, repeated or given without its partner."""

    title = "Invalid actor header"


class ActorRequired(BadRequest):
    """The call must name the person acting (``X-Actor-Id`` and ``X-Actor-Role``)."""

    title = "The person acting must be named"


class JustificationRequired(BadRequest):
    """A disclosure must say why (``X-Actor-Justification``): DPA 2018 s62."""

    title = "A justification is required"


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


class LegalHold(LocalError):
    """A legal hold suspends every shredding of the delivery's payload (issue 18.5)."""

    http_status = 409
    title = "Under legal hold"


class PayloadTooLarge(LocalError):
    http_status = 413
    title = "Payload too large"


class StoreUnavailable(LocalError):
    http_status = 503
    title = "Cannot store durably"


class SchemaTooNew(StoreUnavailable):
    """The file's ``PRAGMA user_version`` is above every migration this release knows."""

    title = "Database from a newer release"


class TrustUnavailable(LocalError):
    http_status = 503
    title = "No valid federation manifest"

    def __init__(self, message: str, *, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class SendRefused(LocalError):
    """The federation's trust, not the ISA, stops this send (``federation.sending`` rules)."""

    http_status = 503
    title = "Cannot send under the federation manifest"

    def __init__(self, message: str, *, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class SenderCertificateExpired(SendRefused):
    """Our own agency certificate is not valid now: recipients would reject every envelope."""

    title = "Our agency certificate is not valid"


class RecipientKeyUnavailable(SendRefused):
    """The recipient has no current, non-revoked encryption key announced in the manifest."""

    title = "The recipient has no current encryption key"


class RecipientCertificateExpired(SendRefused):
    """The recipient's certificate is not valid now."""

    title = "The recipient's certificate is not valid"


class TransportError(LocalError):
    http_status = 503
    title = "Broker unavailable"


class WitnessUnavailable(LocalError):
    """The witness (``isa-broker serve``) could not be reached, or refused our audit head."""

    http_status = 503
    title = "Audit witness unavailable"


class RenewalUnavailable(LocalError):
    """The renewal endpoint (``isa-broker serve``) could not be reached, or refused a request."""

    http_status = 503
    title = "Certificate renewal unavailable"


class AnnouncementNotAccepted(LocalError):
    """A key announcement did not reach the manifest (server unreachable, or ``refused`` with
    its 4xx ``status``); the agent posts it again at its next tick."""

    http_status = 503
    title = "Key announcement not accepted"

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status
