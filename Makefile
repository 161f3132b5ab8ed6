.PHONY: run test bench bench-poller bench-web bench-jobs bench-load bench-cameras bench-wall lint chaos
run:
	./scripts/run_farm.sh
test:
	./scripts/test.sh
lint:
	.venv/bin/ruff check . && .venv/bin/ruff format --check .
bench: bench-poller bench-web bench-jobs
# Options pass through: make bench-poller POLLER_ARGS="--protocol bambu" (or mixed; BENCHMARKS.md)
bench-poller:
	.venv/bin/python scripts/bench_poller.py $(POLLER_ARGS)
bench-web:
	.venv/bin/python scripts/bench_web.py
bench-jobs:
	.venv/bin/python scripts/bench_jobs.py
# 100 simulated cameras on the camera wall in headless chromium (needs scripts/install_browser.sh)
bench-cameras:
	env -u DATABASE_URL -u REDIS_URL .venv/bin/python scripts/bench_cameras.py $(CAMERAS_ARGS)
# The wall with 1,000 printers in headless chromium: load time, bytes, poller write -> card (issue 12)
bench-wall:
	env -u DATABASE_URL -u REDIS_URL .venv/bin/python scripts/bench_wall.py $(WALL_ARGS)
# Poller crashes + printer faults vs the simulator's print log; seeds: PRINTFARM_CHAOS_SEEDS="1 2"
CHAOS_SEEDS ?= random
chaos:
	env -u DATABASE_URL -u REDIS_URL PRINTFARM_CHAOS_SEEDS="$${PRINTFARM_CHAOS_SEEDS:-$(CHAOS_SEEDS)}" .venv/bin/pytest -q jobs/tests/test_chaos.py
# Not part of `bench` (nor CI, which runs a 15 s version in the suite): 60 s per database.
bench-load:
	.venv/bin/python scripts/bench_load.py
