"""The program each agency runs: local API, durable store, RabbitMQ transport.

Imports :mod:`federation`; never imports :mod:`broker`.
"""

__all__: list[str] = []
