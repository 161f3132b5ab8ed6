#!/usr/bin/env bash
# Create .venv and install printfarm's pinned dependencies (add --dev for the test tools).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
reqs=requirements.txt
[ "${1:-}" = "--dev" ] && reqs=requirements-dev.txt
# Skip pip when the requirements have not changed since the last install.
stamp=.venv/.installed-$(sha256sum requirements.txt requirements-dev.txt | sha256sum | cut -c1-16)-$(basename "$reqs")
if [ ! -f "$stamp" ]; then
  .venv/bin/pip install --quiet --disable-pip-version-check -r "$reqs"
  touch "$stamp"
fi
