"""The ISA Relay protocol core: what both sides of a referral speak.

Rules for everything under this package:

1. It performs no I/O: no sockets, files, environment or clock reads. Callers pass bytes, parsed
   values, keys and ``now``; functions return values, bytes or raise the errors in
   :mod:`federation.errors`.
2. It never imports aiohttp, aio_pika, sqlite3 or asyncio.
3. Randomness enters through one named seam per operation (``seal`` draws, ``seal_with`` takes).
"""

__all__: list[str] = []
