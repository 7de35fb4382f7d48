"""Shared test helpers (fixtures, fakes, data builders)."""
