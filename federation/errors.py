"""The project's one exception tree.

Every error knows the HTTP status an API should answer with and prints a diagnosis for the CLI
without a traceback (``diagnostics()``). Local errors (our config, our request, our files) are
distinct from remote ones (a peer's envelope, receipt or manifest)::

    IsaRelayError
    ├── LocalError                    something on our side is wrong
    │   ├── ConfigError               a config file or setting is invalid            (500 → CLI)
    │   ├── PolicyError               an ISA file fails to load or lint (file:line)  (400)
    │   ├── PayloadInvalid            a referral fails its schema (field errors)     (422)
    │   ├── KeyFileError              a key file is missing, unsafe or undecryptable (500 → CLI)
    │   ├── CryptoError               a local crypto operation failed                (500)
    │   ├── outbox.IllegalTransition  a status move the outbox table forbids (a bug)  (409)
    │   └── review.ReviewRefused      a review action that is not allowed; changes nothing
    │       ├── NotAReviewer          no person named, or not the ISA's review role  (403)
    │       ├── OwnSubmission         the reviewer is the referral's submitter       (403)
    │       ├── ReviewSettled         approved, returned or expired already          (409)
    │       └── NarrowingInvalid      a narrowing to nothing                         (422)
    │           └── NarrowingWidens   a narrowing naming a field that would not leave (422)
    └── RemoteError                   something a peer sent is unacceptable
        ├── EnvelopeRejected          ONE opaque error for every envelope failure; carries only a
        │                             reason code for the audit log and the rejection receipt
        ├── ReceiptRejected           a receipt failed verification
        ├── ManifestRejected          a manifest was refused (the current one stays in force)
        ├── AuditHeadRefused          a witness refused an agency's signed audit head    (4xx)
        ├── RenewalRefused            the operator refused a certificate renewal request (4xx)
        └── AnnouncementRefused       the manifest server refused a key announcement     (4xx)

Never put key material, payload values or personal data in an error message.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import ClassVar

__all__ = [
    "AnnouncementRefused",
    "AuditHeadRefused",
    "ConfigError",
    "CryptoError",
    "EnvelopeRejected",
    "IsaRelayError",
    "KeyFileError",
    "LocalError",
    "ManifestRejected",
    "PayloadInvalid",
    "PolicyError",
    "PolicyProblem",
    "ReceiptRejected",
    "RemoteError",
    "RenewalRefused",
]


class IsaRelayError(Exception):
    """Base of every error this project raises on purpose."""

    http_status: ClassVar[int] = 500
    title: ClassVar[str] = "ISA Relay error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def diagnostics(self) -> str:
        """A human-readable diagnosis for the CLI (no traceback)."""
        return f"error: {self.message}"


class LocalError(IsaRelayError):
    """Our own configuration, files or request are at fault."""


class ConfigError(LocalError):
    title = "Configuration error"


class KeyFileError(LocalError):
    title = "Key file error"


class CryptoError(LocalError):
    title = "Cryptographic operation failed"


class PolicyProblem:
    """One problem found in an ISA file: where, how bad, and what."""

    __slots__ = ("file", "line", "message", "severity")

    def __init__(self, file: str, line: int, message: str, severity: str = "error") -> None:
        self.file = file
        self.line = line
        self.message = message
        self.severity = severity

    def __str__(self) -> str:
        prefix = "" if self.severity == "error" else f"{self.severity}: "
        return f"{self.file}:{self.line}: {prefix}{self.message}"

    def __repr__(self) -> str:
        return f"PolicyProblem({self!s})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PolicyProblem):
            return NotImplemented
        return str(self) == str(other)

    def __hash__(self) -> int:
        return hash(str(self))


class PolicyError(LocalError):
    """An ISA file could not be loaded or failed lint; ``problems`` has file:line entries."""

    http_status = 400
    title = "Invalid information sharing agreement"

    def __init__(self, problems: Sequence[PolicyProblem]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(str(p) for p in self.problems) or "invalid ISA")

    def diagnostics(self) -> str:
        return "\n".join(str(p) for p in self.problems)


class PayloadInvalid(LocalError):
    """A referral payload does not match its message type. ``errors`` maps field path → message."""

    http_status = 422
    title = "Payload invalid"

    def __init__(self, message: str, errors: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.errors = dict(errors or {})

    def diagnostics(self) -> str:
        lines = [f"error: {self.message}"]
        lines += [f"  {path}: {msg}" for path, msg in sorted(self.errors.items())]
        return "\n".join(lines)


class RemoteError(IsaRelayError):
    """A peer sent something we will not accept."""

    http_status = 400


class EnvelopeRejected(RemoteError):
    """The single, opaque failure to open or authenticate a peer's envelope.

    ``reason`` is a short code (``bad_frame``, ``bad_signature``, ``unknown_sender``,
    ``sender_mismatch``, ``sender_revoked``, ``sender_certificate_revoked``,
    ``sender_key_expired``, ``wrong_recipient``, ``expired``, ``clock_skew``, ``replay``,
    ``isa_unknown``, ``isa_mismatch``, ``isa_superseded``, ``isa_version_unknown``,
    ``isa_parties``, ``isa_inactive``, ``key_unknown``,
    ``key_retired``, ``key_revoked``, ``decrypt_failed``, ``payload_invalid``,
    ``lawful_basis_mismatch``, ``isa_violation``, ``transport_identity``; see docs/protocol.md
    section 6, whose step numbers ``federation.receive`` uses) for the audit log and the
    signed rejection receipt.
    The message shown to anyone is always the same.
    """

    title = "Envelope rejected"

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__("envelope rejected")
        self.reason = reason
        #: for OUR audit log only (e.g. the field paths that broke the ISA): never sent back
        self.detail = detail

    def __repr__(self) -> str:
        return f"EnvelopeRejected(reason={self.reason!r})"

    def diagnostics(self) -> str:
        return f"error: envelope rejected ({self.reason})"


class ReceiptRejected(RemoteError):
    title = "Receipt rejected"

    def __init__(self, reason: str) -> None:
        super().__init__("receipt rejected")
        self.reason = reason

    def diagnostics(self) -> str:
        return f"error: receipt rejected ({self.reason})"


class ManifestRejected(RemoteError):
    """A manifest was refused; the one already held stays in force. ``reason`` is a short code."""

    title = "Manifest rejected"

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"manifest rejected: {reason}" + (f" ({detail})" if detail else ""))
        self.reason = reason


class AuditHeadRefused(RemoteError):
    """A witness refused a signed audit head (``federation.audit_head`` rule 2); the head it
    holds stays. ``reason``: ``malformed``, ``unknown_agency``, ``revoked``, ``bad_signature``
    (403), ``rollback``, ``fork`` (409)."""

    title = "Audit head refused"
    _STATUS: ClassVar[Mapping[str, int]] = {
        "malformed": 400, "unknown_agency": 403, "revoked": 403, "bad_signature": 403,
        "rollback": 409, "fork": 409,
    }  # fmt: skip

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"audit head refused ({reason}): {detail}")
        self.reason = reason
        self.status = self._STATUS.get(reason, 400)

    def diagnostics(self) -> str:
        return f"error: {self.message}"


class RenewalRefused(RemoteError):
    """The manifest server refused a certificate renewal request (``federation.renewal`` rule
    4). ``reason``: ``malformed``, ``stale`` (400), ``wrong_agency``, ``unknown_agency``,
    ``revoked``, ``bad_signature``, ``certificate_expired`` (403)."""

    title = "Renewal refused"
    _STATUS: ClassVar[Mapping[str, int]] = {"malformed": 400, "stale": 400}

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"renewal refused ({reason}): {detail}")
        self.reason = reason
        self.status = self._STATUS.get(reason, 403)


class AnnouncementRefused(RemoteError):
    """The manifest server refused an agency's posted key announcement (``federation.key_offer``
    rule 2); nothing is stored. ``reason``: ``malformed``, ``agency_mismatch`` (400),
    ``unknown_agency``, ``revoked``, ``bad_signature`` (403), ``key_revoked``, ``kid_conflict``,
    ``stale`` (409), ``window`` (422)."""

    title = "Key announcement refused"
    _STATUS: ClassVar[Mapping[str, int]] = {
        "malformed": 400, "agency_mismatch": 400, "unknown_agency": 403, "revoked": 403,
        "bad_signature": 403, "key_revoked": 409, "kid_conflict": 409, "stale": 409,
        "window": 422,
    }  # fmt: skip

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"key announcement refused ({reason}): {detail}")
        self.reason = reason
        self.status = self._STATUS.get(reason, 400)
