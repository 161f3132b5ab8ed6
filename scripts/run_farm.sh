#!/usr/bin/env bash
# Set up and run printfarm on SQLite with a demo farm of simulated printers:
# venv + install, migrate, first admin login, then the simulator, the poller and the
# web server (uvicorn, `manage.py serve`) and the notifier (`manage.py send_notifications`: it
# watches the poller, so "poller stopped" reaches you while it is down). Ctrl-C stops them all.
#   PORT=8000  HOST=127.0.0.1  DEMO_PRINTERS=12 (0 = no demo farm)  DEMO_SPEED=60
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh

export PRINTFARM_DATA_DIR=${PRINTFARM_DATA_DIR:-$PWD/data}
mkdir -p "$PRINTFARM_DATA_DIR"
if [ -z "${SECRET_KEY:-}" ] && [ ! -s "$PRINTFARM_DATA_DIR/secret_key" ]; then
  (umask 077; python3 -c 'import secrets; print(secrets.token_urlsafe(50))' > "$PRINTFARM_DATA_DIR/secret_key")
fi
HOST=${HOST:-127.0.0.1}
PORT=${PORT:-8000}
DEMO_PRINTERS=${DEMO_PRINTERS:-12}
DEMO_PORT=${DEMO_PORT:-17125}
py=.venv/bin/python

$py manage.py migrate --noinput >/dev/null
login=$($py manage.py ensure_admin)

pids=()
cleanup() {
  # Ignore a second Ctrl-C/TERM rather than dying before the children are stopped.
  trap '' INT TERM
  trap - EXIT
  [ ${#pids[@]} -gt 0 ] || return 0
  kill "${pids[@]}" 2>/dev/null
  for _ in $(seq 50); do
    kill -0 "${pids[@]}" 2>/dev/null || break
    sleep 0.2
  done
  kill -9 "${pids[@]}" 2>/dev/null  # one that ignored TERM for 10 s
  wait 2>/dev/null
}
trap cleanup EXIT INT TERM

if [ "$DEMO_PRINTERS" -gt 0 ]; then
  demo_file="$PRINTFARM_DATA_DIR/demo-printers.json"
  rm -f "$demo_file"
  $py manage.py simulate_printers --count "$DEMO_PRINTERS" --protocol mixed \
    --port "$DEMO_PORT" --control-port $((DEMO_PORT - 1)) --speed "${DEMO_SPEED:-60}" \
    --printers-file "$demo_file" --upload-dir "$PRINTFARM_DATA_DIR/simulator" -v 0 &
  pids+=($!)
  for _ in $(seq 100); do [ -s "$demo_file" ] && break; sleep 0.1; done
  [ -s "$demo_file" ] || { echo "The printer simulator did not start (port $DEMO_PORT in use?)." >&2; exit 1; }
  # Nobody clears a simulated bed: demo printers take their next job on their own.
  $py manage.py register_printers "$demo_file" --tag demo --auto-clear --find-cameras
  $py scripts/demo_prints.py "http://127.0.0.1:$((DEMO_PORT - 1))"
  $py manage.py demo_files
fi

$py manage.py poll_printers &
pids+=($!)
$py manage.py send_notifications &
pids+=($!)
$py manage.py serve --host "$HOST" --port "$PORT" &
pids+=($!)
for _ in $(seq 100); do
  $py -c "import socket,sys; socket.create_connection(('$HOST', $PORT), 1)" 2>/dev/null && break
  sleep 0.2
done
# The address and login come last, after the start-up lines of the other processes.
$py manage.py wait_poller --timeout 20
sleep 1
echo
echo "printfarm is running at http://$HOST:$PORT/"
echo "$login"
echo "Press Ctrl-C to stop."
wait -n
