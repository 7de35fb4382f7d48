"""`isa-broker` commands: agency (not yet implemented)."""

from __future__ import annotations

import argparse

__all__ = ["register"]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add this module's commands to the `isa-broker` parser (none yet)."""
