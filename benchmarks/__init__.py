"""Benchmarks: throughput, latency and memory of ISA Relay against a real RabbitMQ.

Run ``.venv/bin/python -m benchmarks.pipeline --help`` from the repository root; see
``benchmarks/README.md``. Nothing here is imported by the shipped packages.
"""
