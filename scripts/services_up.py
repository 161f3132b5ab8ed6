"""Exit 0 if the PostgreSQL and Redis URLs given both accept a connection."""

import socket
import sys
from urllib.parse import urlsplit

for url in sys.argv[1:]:
    parts = urlsplit(url)
    try:
        socket.create_connection((parts.hostname, parts.port), timeout=2).close()
    except OSError as exc:
        print(f"{url}: {exc}", file=sys.stderr)
        sys.exit(1)
