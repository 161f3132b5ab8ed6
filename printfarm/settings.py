"""printfarm settings, read from environment variables (see README's configuration table)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from printfarm.env import env_bool, env_fernet_key, env_float, env_int, env_list, env_secret, env_str

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = Path(env_str("PRINTFARM_DATA_DIR", str(BASE_DIR / "data"))).resolve()
DATA_DIR.mkdir(parents=True, exist_ok=True)

DEBUG = env_bool("DEBUG", False)

SECRET_KEY = env_secret("SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG:
        # No fallback key in production; the run script generates one into the data dir.
        _key_file = DATA_DIR / "secret_key"
        if _key_file.exists():
            SECRET_KEY = _key_file.read_text().strip()
        else:
            raise ImproperlyConfigured(
                f"SECRET_KEY is not set. Set SECRET_KEY (or SECRET_KEY_FILE), or put a key in {_key_file}."
            )
    else:
        SECRET_KEY = "dev-only-insecure-key-do-not-deploy"  # noqa: S105 - DEBUG only

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "django_htmx",
    "template_partials",
    "printers",
    "jobs",
    "printfarm.accounts",
    "notifications",
    "ninja",
    "axes",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "printfarm.ops.middleware.request_log_middleware",
    "printfarm.ops.security.content_security_policy_middleware",
    "printfarm.staticfiles.StaticFilesMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "printfarm.accounts.displays.DisplayOnlyMiddleware",  # a TV's display link sees the wall only
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "printfarm.ops.busy.DatabaseBusyMiddleware",  # a busy database answers 503, not a 500 page
    "axes.middleware.AxesMiddleware",  # last: it turns a lockout into the lockout page
]

ROOT_URLCONF = "printfarm.urls"
ASGI_APPLICATION = "printfarm.asgi.application"
WSGI_APPLICATION = None

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "printfarm.accounts.roles.roles",
                "printers.health.poller_health_context",
            ],
        },
    },
]

# How long a request waits for the database (SQLite's write lock, a pooled PostgreSQL
# connection) before it is answered 503 "busy, try again" (printfarm.ops.busy, the API's own
# handler). Writers queue in arrival order (printfarm/sqlite3), so a wait this long means the
# server is overloaded about twofold: better a clear "try again" than 20 s of hanging. Not 5 s:
# 50 writers that never pause, on a shared 2-core machine, queued 5-7 s at the tail and got
# 6-10 503s a minute (BENCHMARKS.md, issue 7), when waiting was the better answer.
PRINTFARM_DB_TIMEOUT = env_float("PRINTFARM_DB_TIMEOUT", 10.0)
# PostgreSQL connections each process keeps at most (psycopg's pool; web workers and pollers
# alike): the server sees up to (web workers + pollers) x this many.
PRINTFARM_DB_POOL_SIZE = env_int("PRINTFARM_DB_POOL_SIZE", 8)
DATABASE_URL = env_str("DATABASE_URL")
if DATABASE_URL:
    # A real pool, not CONN_MAX_AGE: under ASGI each request's sync_to_async thread kept its own
    # persistent connection, 74 of them for one web worker and the poller after 20 s (issue 7).
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=0)}
    if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
        DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
            "min_size": min(2, PRINTFARM_DB_POOL_SIZE),
            "max_size": PRINTFARM_DB_POOL_SIZE,
            "timeout": PRINTFARM_DB_TIMEOUT,  # waiting for a free connection: then PoolTimeout
        }
else:
    _busy_ms = round(PRINTFARM_DB_TIMEOUT * 1000)
    DATABASES = {
        "default": {
            # Django's SQLite backend with a fair queue for the write lock (printfarm/sqlite3).
            "ENGINE": "printfarm.sqlite3",
            "NAME": DATA_DIR / "printfarm.sqlite3",
            "OPTIONS": {
                # One writer at a time: take the write lock up front instead of failing
                # on upgrade; wait for it up to PRINTFARM_DB_TIMEOUT, then "database is locked".
                "transaction_mode": "IMMEDIATE",
                "timeout": PRINTFARM_DB_TIMEOUT,
                "init_command": (
                    "PRAGMA journal_mode=WAL;"
                    "PRAGMA synchronous=NORMAL;"
                    f"PRAGMA busy_timeout={_busy_ms};"
                    "PRAGMA foreign_keys=ON;"
                ),
            },
        }
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env_str("REDIS_URL")
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {
                "hosts": [REDIS_URL],
                "capacity": 1500,
                "expiry": 30,
                # Two farms on one Redis database keep apart by prefix (channels_redis's default).
                "prefix": env_str("PRINTFARM_REDIS_PREFIX") or "asgi",
            },
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",  # first: refuses a locked-out login before any password check
    "django.contrib.auth.backends.ModelBackend",
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "printers:dashboard"
LOGOUT_REDIRECT_URL = "login"

# -- Security (README "Production") ---------------------------------------------------------
# PRINTFARM_HTTPS=1: the site is reached over https (TLS here or at a reverse proxy).
PRINTFARM_HTTPS = env_bool("PRINTFARM_HTTPS", False)
# PRINTFARM_BEHIND_PROXY=1: a reverse proxy (on this host or another) forwards every request.
# Only then are X-Forwarded-Proto and X-Forwarded-For believed: by Django here, and by uvicorn
# (`serve`), which then takes the client address from the right-most X-Forwarded-For entry not
# in FORWARDED_ALLOW_IPS (the one the proxy appended). Without it, anyone who can connect from
# 127.0.0.1 could name any client address, and the login lockout would count each apart.
PRINTFARM_BEHIND_PROXY = env_bool("PRINTFARM_BEHIND_PROXY", False)
if PRINTFARM_BEHIND_PROXY:
    # The proxy must set it on every request, never pass a client's on.
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SESSION_COOKIE_SECURE = PRINTFARM_HTTPS
CSRF_COOKIE_SECURE = PRINTFARM_HTTPS
SECURE_SSL_REDIRECT = PRINTFARM_HTTPS
SECURE_HSTS_SECONDS = env_int("PRINTFARM_HSTS_SECONDS", 365 * 24 * 3600) if PRINTFARM_HTTPS else 0
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("PRINTFARM_HSTS_INCLUDE_SUBDOMAINS", True)
# Preloading is a commitment for the whole domain that takes months to undo: opt in only.
SECURE_HSTS_PRELOAD = env_bool("PRINTFARM_HSTS_PRELOAD", False)
SILENCED_SYSTEM_CHECKS = [
    # `check --deploy` asks for these; leaving them off is a deliberate, configurable choice.
    *([] if SECURE_HSTS_PRELOAD else ["security.W021"]),
    *([] if SECURE_HSTS_INCLUDE_SUBDOMAINS else ["security.W005"]),
]
SESSION_COOKIE_HTTPONLY = True
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
# The Content-Security-Policy header: printfarm.ops.security.

# Printer API keys are encrypted at rest (printfarm.crypto) with this Fernet key, or else with
# one derived from SECRET_KEY. Old keys (Fernet keys or old SECRET_KEYs) still decrypt.
PRINTFARM_ENCRYPTION_KEY = env_fernet_key("PRINTFARM_ENCRYPTION_KEY")
PRINTFARM_ENCRYPTION_KEY_OLD = [
    key.strip() for key in (env_secret("PRINTFARM_ENCRYPTION_KEY_OLD") or "").split(",") if key.strip()
]

# Login lockout (django-axes): 5 failures for one user name from one address lock that pair
# out for the cool-off; a successful login clears the count.
AXES_FAILURE_LIMIT = env_int("PRINTFARM_LOGIN_FAILURE_LIMIT", 5)
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_COOLOFF_TIME = dt.timedelta(minutes=env_float("PRINTFARM_LOGIN_COOLOFF_MINUTES", 15))
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
# The address locked out is the one the server believed (REMOTE_ADDR: see PRINTFARM_BEHIND_PROXY),
# never a header read again here (should django-ipware ever be installed, axes would use it).
AXES_IPWARE_META_PRECEDENCE_ORDER = ("REMOTE_ADDR",)

# Request log and metrics (printfarm.ops); PROMETHEUS_MULTIPROC_DIR: see printfarm/ops/metrics.py.
PRINTFARM_SLOW_REQUEST_MS = env_float("PRINTFARM_SLOW_REQUEST_MS", 500.0)

LANGUAGE_CODE = "en-us"
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = DATA_DIR / "staticfiles"
STATIC_ROOT.mkdir(exist_ok=True)  # whitenoise serves from the finders; it only needs the dir to exist
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {"httpx": {"level": "WARNING"}, "uvicorn.access": {"level": "WARNING"}},
}

# Polling (printers.coordinator)
PRINTFARM_POLL_INTERVAL = env_float("PRINTFARM_POLL_INTERVAL", 2.0)
PRINTFARM_POLL_CONCURRENCY = env_int("PRINTFARM_POLL_CONCURRENCY", 256)
PRINTFARM_POLL_TIMEOUT = env_float("PRINTFARM_POLL_TIMEOUT", 3.0)
PRINTFARM_BACKOFF_MAX = env_float("PRINTFARM_BACKOFF_MAX", 60.0)
# How Moonraker printers report: "websocket" (a status subscription) or "poll" (objects/query
# every interval). BENCHMARKS.md, "Moonraker: websocket vs polling": the subscription took half
# the poller's CPU and brought changes sooner.
PRINTFARM_MOONRAKER_TRANSPORT = env_str("PRINTFARM_MOONRAKER_TRANSPORT", "websocket").strip().lower()
if PRINTFARM_MOONRAKER_TRANSPORT not in ("poll", "websocket"):
    raise ImproperlyConfigured(
        f"PRINTFARM_MOONRAKER_TRANSPORT={PRINTFARM_MOONRAKER_TRANSPORT!r}: expected poll or websocket"
    )
# Live updates without Redis: each web process reads the status change feed this often (two
# small indexed queries a tick; a quarter second keeps a change on screens within ~0.5 s).
PRINTFARM_FEED_INTERVAL = env_float("PRINTFARM_FEED_INTERVAL", 0.25)
# Live status counts as stopped when a poller shard has not written its heartbeat for this
# long (printers.health): every page then says so and marks that shard's cards stale.
PRINTFARM_POLLER_STALE_SECONDS = env_float(
    "PRINTFARM_POLLER_STALE_SECONDS", max(15.0, 3 * PRINTFARM_POLL_INTERVAL)
)

# Files and jobs (jobs app)
PRINTFARM_FILES_DIR = DATA_DIR / "files"
PRINTFARM_UPLOAD_MAX_BYTES = env_int("PRINTFARM_UPLOAD_MAX_BYTES", 2 * 1024**3)
# Request bodies past FILE_UPLOAD_MAX_MEMORY_SIZE spool to disk here, not to a RAM-backed /tmp.
FILE_UPLOAD_TEMP_DIR = DATA_DIR / "tmp"
FILE_UPLOAD_TEMP_DIR.mkdir(exist_ok=True)
# Dispatch (jobs.dispatch, in the poller process)
PRINTFARM_DISPATCH_INTERVAL = env_float("PRINTFARM_DISPATCH_INTERVAL", 0.5)
PRINTFARM_TRANSFER_ATTEMPTS = env_int("PRINTFARM_TRANSFER_ATTEMPTS", 3)
PRINTFARM_TRANSFER_RETRY_SECONDS = env_float("PRINTFARM_TRANSFER_RETRY_SECONDS", 10.0)
# A transfer that moves no bytes for this long is stalled (retried); once every byte is sent,
# the printer gets CONFIRM seconds to answer (Moonraker parses metadata before it does).
PRINTFARM_TRANSFER_STALL_SECONDS = env_float("PRINTFARM_TRANSFER_STALL_SECONDS", 30.0)
PRINTFARM_TRANSFER_CONFIRM_SECONDS = env_float("PRINTFARM_TRANSFER_CONFIRM_SECONDS", 120.0)
# A print whose printer stays unreachable this long is recorded failed (outcome unknown).
PRINTFARM_LOST_PRINT_MINUTES = env_float("PRINTFARM_LOST_PRINT_MINUTES", 30.0)
# Staggered start: at most COUNT printers start heating within SECONDS; 0 turns it off.
PRINTFARM_STAGGER_COUNT = env_int("PRINTFARM_STAGGER_COUNT", 0)
PRINTFARM_STAGGER_SECONDS = env_float("PRINTFARM_STAGGER_SECONDS", 60.0)

# Notifications (notifications app; the sender runs in the poller, or `send_notifications`)
# Links in messages start here (e.g. https://farm.example.com); unset: the address an admin
# last opened the notifications page at.
PRINTFARM_BASE_URL = env_str("PRINTFARM_BASE_URL", "")
PRINTFARM_NOTIFY_INTERVAL = env_float("PRINTFARM_NOTIFY_INTERVAL", 1.0)  # outbox look, seconds
PRINTFARM_NOTIFY_CHECK_SECONDS = env_float("PRINTFARM_NOTIFY_CHECK_SECONDS", 30.0)  # offline, queue, poller
PRINTFARM_NOTIFY_SEND_TIMEOUT = env_float("PRINTFARM_NOTIFY_SEND_TIMEOUT", 30.0)  # one attempt at most
# Waits before each retry of a failed message; after the last one it is given up.
PRINTFARM_NOTIFY_RETRY_SECONDS = [
    float(s) for s in env_list("PRINTFARM_NOTIFY_RETRY_SECONDS", ["30", "120", "600"])
]
