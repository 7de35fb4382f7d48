"""The time-travel soak of issue 15: a federation of real agent processes on the real RabbitMQ,
run through simulated years under libfaketime with only the documented scheduled jobs.

- :mod:`devtools.soak.clock`: the fake clock every faked process shares.
- :mod:`devtools.soak.isas`: the soak's ISA copies, dated relative to its start.
- :mod:`devtools.soak.processes`: the federation, ``isa-broker serve`` and the agents.
- :mod:`devtools.soak.ledger`: what was sent, delivered and refused; the figures.
- :mod:`devtools.soak.run`: the run itself (steps, scheduled jobs, provoked events).

``python -m devtools.soak --days 800`` (``scripts/soak``) runs the long form;
``tests/soak/test_time_travel.py`` runs the short form (``SOAK_DAYS`` makes it long).
"""

from devtools.soak.ledger import Figures
from devtools.soak.run import Soak, SoakPlan

__all__ = ["Figures", "Soak", "SoakPlan"]
