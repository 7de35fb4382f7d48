"""Container health check: exit 0 only when the agent's /readyz answers 200.

/readyz answers 200 while the agent can take referrals durably ("ready", or "degraded" when
the broker is unreachable and submits wait in the outbox) and 503 when it cannot (manifest
expired: fail closed; store unavailable). /healthz would report a broker outage as unhealthy
although the agent keeps working; a Kubernetes liveness probe uses /livez instead.

Usage: python healthcheck.py [URL]   (default http://127.0.0.1:8441/readyz)
"""

import sys
import urllib.error
import urllib.request

URL = sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8441/readyz"

try:
    with urllib.request.urlopen(URL, timeout=5) as response:  # noqa: S310 - fixed local URL
        sys.exit(0 if response.status == 200 else 1)
except (urllib.error.URLError, OSError) as exc:
    print(f"unhealthy: {exc}", file=sys.stderr)
    sys.exit(1)
