"""Unit tests of broker.agency and broker.serve (agency add/announce/revoke, manifest serving)."""
