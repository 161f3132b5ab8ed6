#!/usr/bin/env bash
# Set up and run the checks: ruff, the whole suite on SQLite, then the database and
# channel-layer tests again on PostgreSQL + Redis when those answer on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --dev
scripts/install_browser.sh
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/python manage.py makemigrations --check --dry-run --settings=printfarm.test_settings >/dev/null

# Two pytest-xdist workers; the tests that run whole sites (browsers, the load and chaos runs)
# stay on one of them, one at a time (the root conftest's xdist_group "site").
# PRINTFARM_TEST_WORKERS=0 runs everything in this one process.
XDIST=(-n "${PRINTFARM_TEST_WORKERS:-2}" --dist loadgroup)
echo "== tests on SQLite, in-memory channel layer"
env -u DATABASE_URL -u REDIS_URL .venv/bin/pytest -q "${XDIST[@]}" "$@"
echo "== the Moonraker driver contract again, over its websocket subscription (the default transport)"
env -u DATABASE_URL -u REDIS_URL PRINTFARM_MOONRAKER_TRANSPORT=websocket .venv/bin/pytest -q \
  printers/tests/drivers/test_contract.py -k moonraker

PG_URL=${PRINTFARM_TEST_PG_URL:-postgres://postgres@127.0.0.1:5432/test}
RD_URL=${PRINTFARM_TEST_REDIS_URL:-redis://127.0.0.1:6379/0}
if .venv/bin/python scripts/services_up.py "$PG_URL" "$RD_URL"; then
  echo "== database and channel-layer tests on PostgreSQL + Redis"
  DATABASE_URL=$PG_URL REDIS_URL=$RD_URL PRINTFARM_CHAOS_SEEDS=${PRINTFARM_CHAOS_SEEDS:-7} .venv/bin/pytest -q "${XDIST[@]}" -m "not browser" \
    printers/tests/test_services.py printers/tests/test_coordinator.py \
    printers/tests/test_views.py printers/tests/test_realtime.py \
    jobs/tests/test_dispatch.py jobs/tests/test_queue.py jobs/tests/test_library.py \
    jobs/tests/test_history.py printfarm/api/tests/test_api.py printfarm/accounts/tests \
    printfarm/ops/tests/test_metrics.py printfarm/ops/tests/test_busy.py printfarm/tests/test_crypto.py \
    printfarm/tests/test_lockout.py jobs/tests/test_queue_concurrency.py printers/tests/test_status_batch.py \
    printfarm/tests/test_db_pool.py printfarm/tests/test_load.py jobs/tests/test_dispatch_truth.py \
    jobs/tests/test_chaos.py printfarm/api/tests/test_errors.py printfarm/api/tests/test_patch.py \
    printfarm/tests/test_change_path.py printers/tests/test_poller_health.py printers/tests/test_command_answers.py \
    printers/tests/test_card_numbers.py jobs/tests/test_print_numbers.py printfarm/api/tests/test_queue_reasons.py \
    jobs/tests/test_next_up.py printfarm/tests/test_upload_paths.py printfarm/tests/test_web.py \
    printers/tests/test_state_counts.py printfarm/api/tests/test_schema_sources.py \
    printfarm/api/tests/test_cura_plugin.py printfarm/api/tests/test_slicer_uploads.py \
    jobs/tests/test_library_facts.py jobs/tests/test_threemf.py jobs/tests/test_threemf_jobs.py \
    printers/tests/test_push_connections.py printers/tests/drivers/test_bambu.py printers/tests/test_bambu_forms.py \
    printfarm/api/tests/test_bambu_printers.py jobs/tests/test_trays.py printers/tests/test_trays_card.py \
    printers/tests/test_bambu_farm.py printers/tests/test_set_ready.py jobs/tests/test_dispatch_prusalink.py \
    printers/tests/test_find_printers.py notifications/tests/test_sender.py notifications/tests/test_pages.py \
    notifications/tests/test_events.py printers/tests/test_cameras.py printers/tests/test_card_story.py \
    printers/tests/test_printer_thumbnails.py jobs/tests/test_card_filaments.py printers/tests/test_bulk_actions.py \
    printfarm/accounts/tests/test_display_links.py printfarm/tests/test_edges.py \
    printers/tests/drivers/test_moonraker_ws.py printers/tests/test_prusalink_farm.py \
    printfarm/api/tests/test_cameras.py printers/tests/test_bambu_camera.py "$@"
elif [ -n "${CI:-}" ]; then
  echo "PostgreSQL or Redis is not answering on 127.0.0.1; CI needs both." >&2
  exit 1
else
  echo "== PostgreSQL/Redis not reachable: skipped that configuration"
fi
