"""Rotating the federation root with an overlap (issue 15.3; ``broker.rootrotation``,
``agent.trust`` rule 6): agents pinning both roots follow the switch; unpinning ends it."""

from __future__ import annotations

import shutil
from datetime import timedelta
from pathlib import Path

import pytest

from agent.config import TrustSettings
from agent.trust import TrustHolder
from broker.fedstate import FederationLayout
from broker.rootrotation import begin_root_rotation, switch_root
from federation import pki
from federation.errors import ConfigError
from tests.unit.broker.conftest import NOW, _template, layout

__all__ = ["_template", "layout"]  # the broker tests' dev federation, copied per test

SWITCH = NOW + timedelta(hours=1)
LATER = NOW + timedelta(hours=2)


def _pin(path: Path) -> str:
    return pki.fingerprint(pki.certificate_from_bytes(path.read_bytes()))


def _holder(layout: FederationLayout, tmp: Path, *roots: Path) -> TrustHolder:
    """An agent's trust pinning ``roots`` (the first as root, the second as next root)."""
    pins = {"root_certificate": roots[0], "root_fingerprint": _pin(roots[0])}
    if len(roots) > 1:
        pins |= {"next_root_certificate": roots[1], "next_root_fingerprint": _pin(roots[1])}
    settings = TrustSettings(manifest_file=layout.manifest, policies_dir=layout.policies, **pins)
    return TrustHolder(settings, tmp / "data")


def _rotation(layout: FederationLayout, tmp: Path) -> tuple[Path, Path, bytes]:
    """Begin a rotation; returns copies of the old and next roots and the serial-1 bytes."""
    old, new = tmp / "old-root.pem", tmp / "new-root.pem"
    shutil.copy(layout.root_cert, old)
    begin_root_rotation(layout, NOW, name="SYN root 2")
    shutil.copy(layout.root / "ca" / "next-root.pem", new)
    return old, new, layout.manifest.read_bytes()


class TestRootRotation:
    def test_an_agent_pinning_both_roots_accepts_the_manifest_after_the_switch(
        self, layout: FederationLayout, tmp_path: Path
    ) -> None:
        """The overlap: the first manifest under the new root is applied."""
        old, new, serial_1 = _rotation(layout, tmp_path)
        holder = _holder(layout, tmp_path, old, new)
        assert holder.offer(serial_1, NOW)
        switch_root(layout, SWITCH)
        assert holder.offer(layout.manifest.read_bytes(), LATER)
        assert holder.manifest is not None
        assert holder.manifest.serial == 2

    def test_an_agent_pinning_only_the_old_root_refuses_the_switched_manifest(
        self, layout: FederationLayout, tmp_path: Path
    ) -> None:
        """Why agencies pin the next root before the switch: otherwise they are left behind."""
        old, _new, serial_1 = _rotation(layout, tmp_path)
        holder = _holder(layout, tmp_path, old)
        holder.offer(serial_1, NOW)
        switch_root(layout, SWITCH)
        assert not holder.offer(layout.manifest.read_bytes(), LATER)
        assert holder.last_error is not None
        assert "signer_untrusted" in holder.last_error

    def test_after_the_old_root_is_unpinned_a_manifest_under_it_is_refused(
        self, layout: FederationLayout, tmp_path: Path
    ) -> None:
        """Ending the overlap: an agent pinning only the new root refuses the old one's."""
        _old, new, serial_1 = _rotation(layout, tmp_path)
        switch_root(layout, SWITCH)
        holder = _holder(layout, tmp_path, new)
        assert not holder.offer(serial_1, NOW)
        assert holder.offer(layout.manifest.read_bytes(), LATER)

    def test_the_switch_keeps_every_signing_key(
        self, layout: FederationLayout, tmp_path: Path
    ) -> None:
        """Re-certified, not re-keyed: in-flight envelopes keep verifying."""
        old, new, serial_1 = _rotation(layout, tmp_path)
        holder = _holder(layout, tmp_path, old, new)
        holder.offer(serial_1, NOW)
        before = holder.manifest.signing_key_of("assist") if holder.manifest else None
        switch_root(layout, SWITCH)
        holder.offer(layout.manifest.read_bytes(), LATER)
        after = holder.manifest.signing_key_of("assist") if holder.manifest else None
        assert before is not None
        assert after is not None
        assert (bytes(after.verify_key), after.not_after) == (
            bytes(before.verify_key),
            before.not_after,
        )

    def test_a_second_rotation_cannot_begin_while_one_is_under_way(
        self, layout: FederationLayout, tmp_path: Path
    ) -> None:
        """The next root is never overwritten."""
        _rotation(layout, tmp_path)
        with pytest.raises(ConfigError, match="already under way"):
            begin_root_rotation(layout, NOW, name="SYN root 3")
