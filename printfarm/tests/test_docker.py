"""The Docker setup without a Docker daemon: docker/entrypoint.sh runs here as the container
would run it (this checkout as /app, a temp dir as the /data volume, SQLite), and compose.yaml
is checked against the Compose Specification's JSON schema (printfarm/tests/compose-spec.json,
schema/compose-spec.json of github.com/compose-spec/compose-spec at 170098ba, Apache-2.0)."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import re
import socket
import sqlite3
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import jsonschema_rs
import yaml

ROOT = Path(__file__).resolve().parents[2]
ENTRYPOINT = ROOT / "docker" / "entrypoint.sh"
HEALTHCHECK = ROOT / "docker" / "healthcheck.py"
LOGIN = re.compile(r"Created admin login: admin / (\S+)")


def container_env(data_dir: Path, **extra: str) -> dict[str, str]:
    # Only what a fresh container has: none of the caller's printfarm settings or database.
    inherited = ("PRINTFARM_", "SECRET_KEY", "DEBUG", "ALLOWED_HOSTS", "CSRF_", "DATABASE_URL", "REDIS_URL")
    clean = {k: v for k, v in os.environ.items() if not k.startswith(inherited) and k not in ("HOST", "PORT")}
    return {
        **clean,
        "DJANGO_SETTINGS_MODULE": "printfarm.settings",  # not the tests' settings
        "PRINTFARM_PYTHON": sys.executable,
        "PRINTFARM_APP_DIR": str(ROOT),
        "PRINTFARM_DATA_DIR": str(data_dir),
        **extra,
    }


def entrypoint(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["sh", str(ENTRYPOINT), *args], env=env, capture_output=True, text=True, timeout=90, check=False
    )


@contextlib.contextmanager
def started(*args: str, env: dict[str, str], log: Path) -> Iterator[subprocess.Popen]:
    with log.open("w") as out:
        proc = subprocess.Popen(["sh", str(ENTRYPOINT), *args], env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wait_until(condition: Callable[[], object], what: str, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 60
    while not condition():
        if proc.poll() is not None:
            raise AssertionError(f"exited with {proc.returncode} before {what}:\n{log.read_text()}")
        if time.monotonic() > deadline:
            raise AssertionError(f"no {what} within 60 s:\n{log.read_text()}")
        time.sleep(0.1)


def runs(proc: subprocess.Popen, command: str) -> bool:
    # After `exec` the entrypoint's own process is the role's command, not a child of sh.
    return command in Path(f"/proc/{proc.pid}/cmdline").read_bytes().decode().split("\0")


def healthy(port: int) -> bool:
    env = {**os.environ, "PORT": str(port)}
    return subprocess.run([sys.executable, str(HEALTHCHECK)], env=env, capture_output=True).returncode == 0


def listening(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        return True
    return False


def pbkdf2_matches(password: str, encoded: str) -> bool:
    # Django's default hasher, checked by hand: the tests' settings configure a faster one.
    algorithm, iterations, salt, digest = encoded.split("$")
    raw = hashlib.pbkdf2_hmac("sha256", password.encode(), salt.encode(), int(iterations))
    return algorithm == "pbkdf2_sha256" and base64.b64encode(raw).decode() == digest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_first_start_sets_up_once_and_the_poller_waits_for_the_web_migrations(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    port = free_port()
    env = container_env(data, HOST="127.0.0.1", PORT=str(port))
    poller_log, web_log = tmp_path / "poller.log", tmp_path / "web.log"

    with started("poller", env=env, log=poller_log) as poller:
        # Started first on an empty volume, the poller neither migrates nor polls yet.
        wait_until(
            lambda: "migrate the database" in poller_log.read_text(), "wait message", poller, poller_log
        )
        assert not runs(poller, "poll_printers")
        with started("web", env=env, log=web_log) as web:
            wait_until(lambda: runs(web, "serve") and listening(port), "web server", web, web_log)
            assert healthy(port)
            wait_until(lambda: runs(poller, "poll_printers"), "poll_printers", poller, poller_log)
            notifier_log = tmp_path / "notifier.log"
            with started("notifier", env=env, log=notifier_log) as notifier:
                wait_until(
                    lambda: runs(notifier, "send_notifications"), "send_notifications", notifier, notifier_log
                )

    key_file = data / "secret_key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    key = key_file.read_text()
    assert len(key.strip()) >= 50
    web_output = web_log.read_text()
    assert "Applying printers.0001_initial... OK" in web_output
    assert len(LOGIN.findall(web_output)) == 1, web_output
    password = LOGIN.search(web_output).group(1)
    assert "login" not in poller_log.read_text().lower()

    # Restarted: same key, nothing to migrate, no login in the log; the admin is the one printed.
    again = entrypoint("setup", env=env)
    assert again.returncode == 0, again.stderr
    assert "No migrations to apply." in again.stdout
    assert "login" not in (again.stdout + again.stderr).lower()
    assert key_file.read_text() == key
    with contextlib.closing(sqlite3.connect(data / "printfarm.sqlite3")) as db:
        admins = db.execute("SELECT username, password FROM auth_user WHERE is_superuser").fetchall()
    assert [name for name, _ in admins] == ["admin"]
    assert pbkdf2_matches(password, admins[0][1])


def test_containers_starting_together_share_one_secret_key(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    env = container_env(data)
    with ThreadPoolExecutor(6) as pool:
        results = list(pool.map(lambda _: entrypoint("cat", str(data / "secret_key"), env=env), range(6)))
    assert {r.returncode for r in results} == {0}, [r.stderr for r in results]
    assert len({r.stdout for r in results}) == 1
    assert sorted(p.name for p in data.iterdir()) == ["secret_key"]  # no temp file left behind


def test_other_commands_run_as_given_with_the_environment_winning(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    show = 'printf "%s|%s" "$ALLOWED_HOSTS" "$SECRET_KEY"'

    # Any Host by default: the container cannot know the names its host is reached by.
    default = entrypoint("sh", "-c", show, env=container_env(data))
    assert default.returncode == 0, default.stderr
    assert default.stdout == "*|"

    env = container_env(data, ALLOWED_HOSTS="farm.example.org", SECRET_KEY="from-the-environment")
    given = entrypoint("sh", "-c", show, env=env)
    assert given.stdout == "farm.example.org|from-the-environment"


def test_a_secret_key_from_the_environment_leaves_the_volume_alone(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    result = entrypoint("true", env=container_env(data, SECRET_KEY="from-the-environment"))
    assert result.returncode == 0, result.stderr
    assert list(data.iterdir()) == []


def test_entrypoint_refuses_a_missing_data_volume(tmp_path):
    result = entrypoint("true", env=container_env(tmp_path / "absent"))
    assert result.returncode == 1
    assert "mount the data volume" in result.stderr


def compose() -> dict:
    return yaml.safe_load((ROOT / "compose.yaml").read_text())


def test_compose_file_follows_the_compose_specification():
    schema = json.loads((Path(__file__).parent / "compose-spec.json").read_text())
    validator = jsonschema_rs.validator_for(schema)
    assert [error.message for error in validator.iter_errors(compose())] == []
    # The schema does catch a mistake (the check above is not vacuous).
    broken = compose()
    broken["services"]["web"]["volume"] = ["data:/data"]
    assert not validator.is_valid(broken)


def test_web_poller_and_notifier_run_one_image_on_one_data_volume():
    spec = compose()
    web, poller, notifier = (spec["services"][name] for name in ("web", "poller", "notifier"))
    for service in (web, poller, notifier):
        assert service["build"] == "."
        assert "profiles" not in service  # all start with a plain `docker compose up`
    assert web["image"] == poller["image"] == notifier["image"]
    assert web["volumes"] == poller["volumes"] == notifier["volumes"] == ["data:/data"]
    assert "data" in spec["volumes"]  # a named volume: it outlives the containers
    assert web["command"] == ["web"] and poller["command"] == ["poller"]
    # "Poller stopped" is sent by a process that is not the poller.
    assert notifier["command"] == ["notifier"]
    assert web["environment"] == poller["environment"] == notifier["environment"]  # same database, same Redis
    assert web["healthcheck"]["test"] == ["CMD", "python", "/app/docker/healthcheck.py"]
    assert poller["healthcheck"] == notifier["healthcheck"] == {"disable": True}
    assert web["ports"] == ["${PRINTFARM_PORT:-8000}:8000"]


def test_postgres_profile_and_its_env_file_point_web_and_poller_at_it():
    spec = compose()
    in_profile = {name for name, s in spec["services"].items() if "postgres" in s.get("profiles", [])}
    assert in_profile == {"postgres", "redis"}
    assert spec["services"]["web"]["environment"]["DATABASE_URL"] == "${DATABASE_URL:-}"
    assert spec["services"]["web"]["environment"]["REDIS_URL"] == "${REDIS_URL:-}"

    env_file = {}
    for line in (ROOT / "docker" / "postgres.env").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            env_file[name] = value
    assert env_file["COMPOSE_PROFILES"] == "postgres"
    postgres = spec["services"]["postgres"]["environment"]
    assert postgres["POSTGRES_PASSWORD"] == "${POSTGRES_PASSWORD:-}"
    user, db = postgres["POSTGRES_USER"], postgres["POSTGRES_DB"]
    assert env_file["DATABASE_URL"] == f"postgres://{user}:${{POSTGRES_PASSWORD}}@postgres:5432/{db}"
    assert env_file["REDIS_URL"] == "redis://redis:6379/0"


def test_dockerfile_runs_the_entrypoint_as_a_user_with_a_healthcheck():
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert 'ENTRYPOINT ["/bin/sh", "/app/docker/entrypoint.sh"]' in dockerfile
    assert 'CMD ["web"]' in dockerfile
    assert re.search(r'^HEALTHCHECK .*CMD \["python", "/app/docker/healthcheck.py"\]$', dockerfile, re.M)
    assert "USER printfarm" in dockerfile and "VOLUME /data" in dockerfile
    assert ".env" in (ROOT / ".dockerignore").read_text().split()  # the PostgreSQL password stays out
