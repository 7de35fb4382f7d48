"""Developer tooling shared by the demo, the benchmarks and the tests (never shipped).

Why a top-level package of its own, and not ``tests/support`` made importable: the demo
(``scripts/demo.py``) and the benchmarks (``python -m benchmarks.pipeline``) are not tests and
must not import pytest fixtures or test packages, and the tests must not import the benchmarks.
``devtools`` depends only on the product packages and the standard library, so all three can use
it; the product packages (``agent``, ``broker``, ``federation``) never import it, and it is not
part of the ``isa-relay`` distribution (``pyproject.toml`` packages only the product).

- :mod:`devtools.management`: the one RabbitMQ management client of the tools, which is the
  product's own :class:`broker.rabbitmq.ManagementClient` seen synchronously.
- :mod:`devtools.launcher`: the one agent-process launcher (``isa-agent run --config``).
- :mod:`devtools.federation`: dev federations on a throw-away vhost, for the tools.
"""
