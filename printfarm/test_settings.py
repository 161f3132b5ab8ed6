"""Settings for the test suite: the real settings, with a throwaway data dir and key."""

import atexit
import os
import shutil
import tempfile

os.environ.setdefault("SECRET_KEY", "test-only-secret-key")
if "PRINTFARM_DATA_DIR" not in os.environ:
    _data_dir = tempfile.mkdtemp(prefix="printfarm-test-")
    os.environ["PRINTFARM_DATA_DIR"] = _data_dir
    atexit.register(shutil.rmtree, _data_dir, ignore_errors=True)

from printfarm.settings import *  # noqa: E402,F403
from printfarm.settings import CHANNEL_LAYERS, DATA_DIR, DATABASES, REDIS_URL  # noqa: E402
from printfarm.testing import redis_channel_layer  # noqa: E402

if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # A real file, not :memory:, so threads (simulator, live server, channels) share it.
    DATABASES["default"]["TEST"] = {"NAME": str(DATA_DIR / "test.sqlite3")}

if REDIS_URL:
    CHANNEL_LAYERS = redis_channel_layer(REDIS_URL, **CHANNEL_LAYERS["default"]["CONFIG"])

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast logins in tests

# The suite's coordinator, health and command tests use Moonraker printers as the polled kind;
# the websocket driver has its own tests (printers/tests/drivers/test_moonraker_ws.py), and the
# driver tests take both transports (drivers/conftest.py `moonraker_transport`).
if "PRINTFARM_MOONRAKER_TRANSPORT" not in os.environ:
    PRINTFARM_MOONRAKER_TRANSPORT = "poll"
