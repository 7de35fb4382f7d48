"""Container health check: exit 0 only when the agent's /healthz answers 200 (status "ok").

Usage: python healthcheck.py [URL]   (default http://127.0.0.1:8441/healthz)
"""

import sys
import urllib.error
import urllib.request

URL = sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8441/healthz"

try:
    with urllib.request.urlopen(URL, timeout=5) as response:  # noqa: S310 - fixed local URL
        sys.exit(0 if response.status == 200 else 1)
except (urllib.error.URLError, OSError) as exc:
    print(f"unhealthy: {exc}", file=sys.stderr)
    sys.exit(1)
