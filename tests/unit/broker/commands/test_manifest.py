"""``isa-broker manifest build --validity-hours``: the manifest lifetime, set, kept and bounded.

Every expiry is judged with the clock the build was given (``BUILT``), never the wall clock.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from broker.cli import main
from broker.fedstate import FederationLayout, load_state
from federation import pki
from federation.errors import ManifestRejected
from federation.manifest import Manifest, verify_manifest
from tests.unit.broker.conftest import NOW

BUILT = NOW + timedelta(hours=1)


def build(layout: FederationLayout, *extra: str) -> int:
    return main(["manifest", "build", "--federation", str(layout.root), *extra],
                clock=lambda: BUILT)  # fmt: skip


def verify_at(layout: FederationLayout, moment: timedelta) -> Manifest:
    """Verify the written manifest as an agent would at ``BUILT + moment`` (it held serial 1)."""
    root = pki.certificate_from_bytes(layout.root_cert.read_bytes())
    return verify_manifest(
        layout.manifest.read_bytes(), root_cert=root, pinned_fingerprint=pki.fingerprint(root),
        now=BUILT + moment, current_serial=1,
    )  # fmt: skip


class TestManifestValidityHours:
    def test_the_manifest_expires_the_given_hours_after_the_build(
        self, layout: FederationLayout
    ) -> None:
        """--validity-hours 36: accepted 35 h 59 min after the build, expired at 36 h."""
        assert build(layout, "--validity-hours", "36") == 0
        assert verify_at(layout, timedelta(hours=36, minutes=-1)).serial == 2
        with pytest.raises(ManifestRejected) as refused:
            verify_at(layout, timedelta(hours=36))
        assert refused.value.reason == "expired"

    def test_the_lifetime_is_kept_for_later_builds(self, layout: FederationLayout) -> None:
        """A build without the option keeps the lifetime the last one set."""
        assert build(layout, "--validity-hours", "36") == 0
        assert build(layout) == 0
        assert load_state(layout).manifest_validity_hours == 36
        assert verify_at(layout, timedelta()).expires_at == BUILT + timedelta(hours=36)

    @pytest.mark.parametrize("hours", ["0.5", "2161", "nan", "-5"])
    def test_a_lifetime_out_of_range_is_refused_and_nothing_written(
        self, layout: FederationLayout, hours: str, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """Outside 1 h .. 90 days: exit 1 with the range, no new serial, no new lifetime."""
        before = layout.manifest.read_bytes()
        assert build(layout, f"--validity-hours={hours}") == 1
        assert "1 to 2160 hours" in capsys.readouterr().err
        assert layout.manifest.read_bytes() == before
        assert (load_state(layout).serial, load_state(layout).manifest_validity_hours) == (1, 168)
