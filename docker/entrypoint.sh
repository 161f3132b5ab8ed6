#!/bin/sh
# printfarm's container entrypoint (Dockerfile, compose.yaml). Roles:
#   web     first start: SECRET_KEY into the data volume, migrate, the first admin (its login
#           printed once); then `manage.py serve` on $HOST:$PORT (0.0.0.0:8000). Extra
#           arguments go to serve: `web --workers 2`.
#   poller  waits until the web container has migrated the database, then `manage.py poll_printers`
#           (extra arguments go to it: `poller --shard 0/2`).
#   notifier  waits the same way, then `manage.py send_notifications`: it watches the pollers,
#           so "poller stopped" is sent while a poller is down (a dead poller can't say so).
#   setup   what `web` does before serving, then exits (`docker compose run --rm web setup`).
#   else    run as given, with the same SECRET_KEY and ALLOWED_HOSTS (`python manage.py shell`).
# Web and poller must share one data volume: the secret key, the SQLite database and the
# uploaded files live there. PRINTFARM_PYTHON and PRINTFARM_APP_DIR point it at another
# Python and checkout (the tests run it outside a container).
set -eu

PYTHON=${PRINTFARM_PYTHON:-python}
APP_DIR=${PRINTFARM_APP_DIR:-/app}
export PRINTFARM_DATA_DIR="${PRINTFARM_DATA_DIR:-/data}"
# How long the web role waits for the database to answer, the poller for it to be migrated.
DB_WAIT=${PRINTFARM_DB_WAIT_SECONDS:-120}

say() { echo "printfarm: $*"; }
die() {
  echo "printfarm: $*" >&2
  exit 1
}
last_line() { printf "%s\n" "$1" | tail -n 1; }

manage() { "$PYTHON" manage.py "$@"; }

ensure_secret_key() {
  # SECRET_KEY or SECRET_KEY_FILE from the environment wins; settings read the file otherwise.
  if [ -n "${SECRET_KEY:-}" ] || [ -n "${SECRET_KEY_FILE:-}" ]; then
    return 0
  fi
  key_file=$PRINTFARM_DATA_DIR/secret_key
  if [ ! -e "$key_file" ]; then
    # Written whole into a private temp file, then hard-linked into place: web and poller
    # start together, and ln refuses to replace a key the other one linked first, so both
    # end up with the same key and neither ever reads a half-written one.
    tmp=$(mktemp "$PRINTFARM_DATA_DIR/.secret_key.XXXXXX") # mktemp creates it 0600
    "$PYTHON" -c 'import secrets; print(secrets.token_urlsafe(50))' >"$tmp"
    ln "$tmp" "$key_file" 2>/dev/null || true
    rm -f "$tmp"
  fi
  [ -s "$key_file" ] || die "$key_file is empty: delete it to have a new key made, or set SECRET_KEY."
}

wait_for_database() {
  # PostgreSQL (the compose `postgres` profile) may still be starting; SQLite answers at once.
  [ -n "${DATABASE_URL:-}" ] || return 0
  deadline=$(($(date +%s) + DB_WAIT))
  until error=$(LOG_LEVEL=WARNING manage shell -c "from django.db import connection; connection.ensure_connection()" 2>&1); do
    [ "$(date +%s)" -lt "$deadline" ] || die "the database did not answer in ${DB_WAIT}s: $(last_line "$error")"
    say "waiting for the database..."
    sleep 2
  done
}

wait_for_migrations() {
  # Only the web role migrates. Two `migrate` runs at once race on a fresh database (both
  # see a migration unapplied, one fails on "table already exists"; Django takes no lock on
  # SQLite or PostgreSQL), so the poller waits until every migration this image ships is
  # applied: after an upgrade too, where a marker file from the last start would lie.
  deadline=$(($(date +%s) + DB_WAIT))
  said=""
  until error=$(LOG_LEVEL=WARNING manage migrate --check --skip-checks 2>&1); do
    [ "$(date +%s)" -lt "$deadline" ] ||
      die "the database is still not migrated after ${DB_WAIT}s: is the web container running? $(last_line "$error")"
    [ -n "$said" ] || say "waiting for the web container to migrate the database..."
    said=1
    sleep 2
  done
}

first_admin() {
  # ensure_admin creates the admin only when there is no superuser. Its login goes to the
  # log once (marker in the volume), and again only when a new admin had to be created.
  marker=$PRINTFARM_DATA_DIR/.admin_login_shown
  login=$(manage ensure_admin)
  case $login in
  "Created admin login:"*) rm -f "$marker" ;;
  esac
  if [ ! -e "$marker" ]; then
    say "$login"
    case $login in
    *" / "*) say "(printed once; \`python manage.py ensure_admin\` in this container prints it again until it is changed)" ;;
    esac
    : >"$marker"
  fi
}

setup() {
  wait_for_database
  manage migrate --noinput
  first_admin
}

if ! [ -d "$PRINTFARM_DATA_DIR" ] || ! [ -w "$PRINTFARM_DATA_DIR" ]; then
  die "$PRINTFARM_DATA_DIR is not a writable directory for uid $(id -u): mount the data volume there (compose.yaml)."
fi
cd "$APP_DIR"
ensure_secret_key
# The container cannot know the names its host is reached by (host name, LAN address, DNS
# name), so it accepts any Host unless ALLOWED_HOSTS (comma-separated) is set; set it in production.
export ALLOWED_HOSTS="${ALLOWED_HOSTS:-*}"

role=${1:-web}
[ $# -eq 0 ] || shift
case $role in
web)
  setup
  exec "$PYTHON" manage.py serve --host "${HOST:-0.0.0.0}" --port "${PORT:-8000}" "$@"
  ;;
poller)
  wait_for_migrations
  exec "$PYTHON" manage.py poll_printers "$@"
  ;;
notifier)
  wait_for_migrations
  exec "$PYTHON" manage.py send_notifications "$@"
  ;;
setup)
  setup
  ;;
*)
  exec "$role" "$@"
  ;;
esac
