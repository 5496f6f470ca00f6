#!/usr/bin/env bash
# The first command: build and start the gateway on its embedded defaults — a SQLite
# database in ./data, a demo company with calls enabled, a call chatbot, and the widget
# demo page at http://127.0.0.1:8080/ . Extra arguments go to `gateway serve`.
set -euo pipefail
cd "$(dirname "$0")"
scripts/ensure-build-deps.sh

binary="${CARGO_TARGET_DIR:-target}/release/gateway"
if [ ! -x "$binary" ]; then
  echo "Building the gateway (release). The first build compiles a few hundred crates and" >&2
  echo "the bundled libopus: about 10 minutes on 2 cores, a few on 8. Later runs take seconds." >&2
else
  echo "Building the gateway (release) if its sources changed..." >&2
fi
# cargo shows its progress (each crate as it compiles, and a bar on a terminal).
cargo build --release --bin gateway
exec "$binary" serve --demo "$@"
