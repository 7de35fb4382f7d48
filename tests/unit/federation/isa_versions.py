"""Two versions of one shipped ISA and format-2 manifests carrying them (all data synthetic).

``V1`` is ``policies/police-to-assist.yaml`` as shipped (1.0.0); ``V2`` the same text as 1.1.0.
The federation is ``tests.unit.federation.helpers.Federation`` with the ISA's two parties added;
every time is fixed (``NOW``), never the date the suite runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from federation.canonical import b64url_encode, format_time
from federation.isa import Isa, load_isa
from federation.isa_entries import IsaEntry, entry_fields
from federation.manifest import Manifest, ManifestDocument
from tests.unit.federation.helpers import NOW, Federation

__all__ = [
    "ACCEPT_UNTIL",
    "FED",
    "NOW",
    "RECIPIENT",
    "SENDER",
    "SWITCH",
    "V1",
    "V2",
    "Version",
    "document",
    "entry",
    "manifest",
]

REPO = Path(__file__).resolve().parents[3]
SENDER, RECIPIENT = "police-scotland", "assist"
FED = Federation()
FED.add_agency(SENDER, 30)
FED.add_agency(RECIPIENT, 31)

SWITCH = NOW + timedelta(minutes=15)  # V1 is superseded then ...
ACCEPT_UNTIL = SWITCH + timedelta(days=7)  # ... and accepted until then


@dataclass(frozen=True)
class Version:
    """One version of the ISA: its exact bytes and the ISA they load to."""

    data: bytes
    isa: Isa


def _version(data: bytes) -> Version:
    return Version(data, load_isa("police-to-assist.yaml", data))


_SHIPPED = (REPO / "policies" / "police-to-assist.yaml").read_bytes()
V1 = _version(_SHIPPED)
V2 = _version(_SHIPPED.replace(b"version: 1.0.0", b"version: 1.1.0", 1))


def entry(version: Version, *, superseded: datetime | None = None, **changes: Any) -> IsaEntry:
    """The format-2 entry of ``version`` (superseded at ``superseded``, for 7 days)."""
    raw = entry_fields(version.isa) | {"document": b64url_encode(version.data)}
    if superseded is not None:
        raw |= {
            "superseded_at": format_time(superseded),
            "accept_until": format_time(superseded + timedelta(days=7)),
        }
    return IsaEntry(**(raw | changes))


def document(*entries: IsaEntry, serial: int = 5, v: int = 2) -> ManifestDocument:
    return FED.document(serial=serial, v=v, isas=list(entries))


def manifest(*entries: IsaEntry, serial: int = 5) -> Manifest:
    """A verified format-2 manifest listing ``entries`` (default: V1 superseded by V2)."""
    chosen = entries or (entry(V1, superseded=SWITCH), entry(V2))
    return FED.manifest(document(*chosen, serial=serial))
