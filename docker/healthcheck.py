"""The web container's HEALTHCHECK: exit 0 when the web server answers its login page.

Any answer below 500 counts: with PRINTFARM_HTTPS the page is a redirect to https, and with
ALLOWED_HOSTS set to the real names Django refuses 127.0.0.1 with a 400, yet both prove the
server is up and running Django. Redirects are not followed (no TLS here). Standard library
only, so it runs in the image without Django starting up.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def main() -> int:
    url = f"http://127.0.0.1:{os.environ.get('PORT') or 8000}/login/"
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        with opener.open(url, timeout=5) as response:
            status = response.status
    except urllib.error.HTTPError as exc:
        status = exc.code
    except OSError as exc:
        sys.stderr.write(f"{url}: {exc}\n")
        return 1
    sys.stdout.write(f"{url}: HTTP {status}\n")
    return 0 if status < 500 else 1


if __name__ == "__main__":
    sys.exit(main())
