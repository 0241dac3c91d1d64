#!/usr/bin/env bash
# Lint, format check, then the whole test suite (what CI runs after scripts/setup_env.sh --testing).
# A lint or format error fails before any test runs; `.venv/bin/ruff format .` fixes the formatting.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
venv="${TEMDEBLUR_VENV:-.venv}"
"$venv/bin/ruff" check .
"$venv/bin/ruff" format --check .
"$venv/bin/python" -m pytest "$@"
