"""Where the agent reaches the manifest server's other endpoints (the witness, announcements).

Rule: the manifest server is the ``isa-broker serve`` the agent already polls; for ``[trust]
manifest_url = "http://host:port/manifest"`` an endpoint ``/v1/...`` is at
``http://host:port/v1/...``. With a manifest FILE there is no server: the URL is None.
"""

from __future__ import annotations

from yarl import URL

from agent.config import TrustSettings

__all__ = ["server_url"]


def server_url(trust: TrustSettings, path: str) -> str | None:
    """``path`` on the manifest server, or None when the manifest comes from a file."""
    if not trust.manifest_url:
        return None
    return str(URL(trust.manifest_url).with_path(path).with_query(None))
