"""The network operator's program: RabbitMQ provisioning, PKI, manifest and directory.

Imports :mod:`federation`; never imports :mod:`agent`.
"""

__all__: list[str] = []
