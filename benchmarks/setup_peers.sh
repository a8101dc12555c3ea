#!/usr/bin/env bash
# litellm pins an older openai SDK than our tests use, so it lives in its own venv
# (with the system site-packages visible for aiohttp/httpx). run.py finds it here.
set -euo pipefail
venv="${1:-$(dirname "$0")/.venv-litellm}"
python -m venv --system-site-packages "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check litellm
echo "$venv/bin/python"
