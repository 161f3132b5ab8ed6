"""Production settings from the environment: `check --deploy` is clean, HTTPS turns on what it must."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys

from django.conf import settings


def run(args: list[str], tmp_path, **env: str) -> subprocess.CompletedProcess:
    # Only what the test says: none of the caller's own printfarm settings.
    inherited = ("PRINTFARM_", "SECRET_KEY", "DEBUG", "ALLOWED_HOSTS", "DATABASE_URL")
    clean = {k: v for k, v in os.environ.items() if not k.startswith(inherited)}
    return subprocess.run(
        [sys.executable, *args],
        env={
            **clean,
            "DJANGO_SETTINGS_MODULE": "printfarm.settings",
            "PRINTFARM_DATA_DIR": str(tmp_path),
            **env,
        },
        cwd=settings.BASE_DIR,
        capture_output=True,
        text=True,
        timeout=60,
    )


PRODUCTION = {
    "DEBUG": "0",
    "PRINTFARM_HTTPS": "1",
    "SECRET_KEY": secrets.token_urlsafe(50),
    "ALLOWED_HOSTS": "farm.example.org",
}


def test_check_deploy_is_clean_in_production(tmp_path):
    result = run(["manage.py", "check", "--deploy"], tmp_path, **PRODUCTION)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "System check identified no issues" in result.stdout
    assert "WARNING" not in output and "?: (" not in output, output


def test_check_deploy_does_complain_without_https(tmp_path):
    # The test above would pass vacuously if --deploy checked nothing.
    env = {**PRODUCTION, "PRINTFARM_HTTPS": "0"}
    result = run(["manage.py", "check", "--deploy"], tmp_path, **env)
    for warning in ("security.W004", "security.W008", "security.W012", "security.W016"):
        assert warning in result.stderr


SHOW = (
    "import json, django; django.setup(); from django.conf import settings as s; print(json.dumps({n: "
    "getattr(s, n, None) for n in ['SESSION_COOKIE_SECURE', 'CSRF_COOKIE_SECURE', 'SECURE_SSL_REDIRECT', "
    "'SECURE_HSTS_SECONDS', 'SECURE_HSTS_INCLUDE_SUBDOMAINS', 'SECURE_HSTS_PRELOAD', "
    "'SECURE_PROXY_SSL_HEADER', 'SESSION_COOKIE_HTTPONLY', 'X_FRAME_OPTIONS', 'AXES_FAILURE_LIMIT']}))"
)


def settings_with(tmp_path, **env: str) -> dict:
    result = run(["-c", SHOW], tmp_path, **{**PRODUCTION, **env})
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_https_turns_on_secure_cookies_redirect_and_a_year_of_hsts(tmp_path):
    shown = settings_with(tmp_path)
    assert shown["SESSION_COOKIE_SECURE"] and shown["CSRF_COOKIE_SECURE"] and shown["SECURE_SSL_REDIRECT"]
    assert shown["SECURE_HSTS_SECONDS"] == 365 * 24 * 3600
    assert shown["SECURE_HSTS_INCLUDE_SUBDOMAINS"] is True and shown["SECURE_HSTS_PRELOAD"] is False
    assert shown["SECURE_PROXY_SSL_HEADER"] is None  # only when told there is a proxy
    assert shown["SESSION_COOKIE_HTTPONLY"] and shown["X_FRAME_OPTIONS"] == "DENY"


def test_plain_http_keeps_cookies_usable_and_sends_no_hsts(tmp_path):
    shown = settings_with(tmp_path, PRINTFARM_HTTPS="0")
    assert not shown["SESSION_COOKIE_SECURE"] and not shown["SECURE_SSL_REDIRECT"]
    assert shown["SECURE_HSTS_SECONDS"] == 0


def test_behind_a_proxy_trusts_its_forwarded_proto_and_knobs_are_read(tmp_path):
    shown = settings_with(
        tmp_path,
        PRINTFARM_BEHIND_PROXY="1",
        PRINTFARM_HSTS_SECONDS="600",
        PRINTFARM_HSTS_INCLUDE_SUBDOMAINS="0",
        PRINTFARM_LOGIN_FAILURE_LIMIT="8",
    )
    assert shown["SECURE_PROXY_SSL_HEADER"] == ["HTTP_X_FORWARDED_PROTO", "https"]
    assert shown["SECURE_HSTS_SECONDS"] == 600
    assert shown["SECURE_HSTS_INCLUDE_SUBDOMAINS"] is False
    assert shown["AXES_FAILURE_LIMIT"] == 8


def test_a_malformed_encryption_key_stops_the_start(tmp_path):
    result = run(["manage.py", "check"], tmp_path, **PRODUCTION, PRINTFARM_ENCRYPTION_KEY="letmein")
    assert result.returncode != 0
    assert "PRINTFARM_ENCRYPTION_KEY is not a Fernet key" in result.stderr
