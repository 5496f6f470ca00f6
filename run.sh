#!/usr/bin/env bash
# The first command: build and start the gateway on its embedded defaults — a SQLite
# database in ./data, a demo company with calls enabled, a call chatbot, and the widget
# demo page at http://127.0.0.1:8080/ . Extra arguments go to `gateway serve`.
set -euo pipefail
cd "$(dirname "$0")"
scripts/ensure-build-deps.sh
exec cargo run --release --bin gateway -- serve --demo "$@"
