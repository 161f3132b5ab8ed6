#!/usr/bin/env bash
# wrk (Debian package) for the API and web benchmarks.
set -euo pipefail
if command -v wrk >/dev/null; then exit 0; fi
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq wrk >/dev/null
