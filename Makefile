.PHONY: run test bench bench-poller bench-web bench-jobs lint
run:
	./scripts/run_farm.sh
test:
	./scripts/test.sh
lint:
	.venv/bin/ruff check . && .venv/bin/ruff format --check .
bench: bench-poller bench-web bench-jobs
bench-poller:
	.venv/bin/python scripts/bench_poller.py
bench-web:
	.venv/bin/python scripts/bench_web.py
bench-jobs:
	.venv/bin/python scripts/bench_jobs.py
