#!/usr/bin/env bash
# Makes .venv with the Python tools of requirements.txt, where it is missing or was made from
# other requirements. Needs no Docker and no root: `make lint` and `make unit` run on it alone.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x .venv/bin/molecule ] || ! cmp -s requirements.txt .venv/requirements.txt; then
  echo "installing the Python tools into .venv"
  python3 -m venv .venv
  .venv/bin/pip install -q -r requirements.txt
  cp requirements.txt .venv/requirements.txt
fi
