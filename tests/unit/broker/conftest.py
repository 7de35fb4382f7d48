"""A synthetic dev federation per test (copied from one built per module) and a fixed clock."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest

from broker.devfed import create_dev_federation
from broker.fedstate import FederationLayout

REPO = Path(__file__).resolve().parents[3]
NOW = datetime(2026, 11, 24, 12, 0, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def _template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("federation-template") / "fed"
    create_dev_federation(
        root,
        policies=REPO / "policies",
        now=NOW,
        agencies=None,
        vhost="syn-unit-never-provisioned",
    )
    return root


@pytest.fixture
def layout(_template: Path, tmp_path: Path) -> FederationLayout:
    """A fresh copy of a whole dev federation (every agency of the shipped ISAs), serial 1."""
    root = tmp_path / "fed"
    shutil.copytree(_template, root)
    return FederationLayout(root)
