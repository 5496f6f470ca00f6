#!/usr/bin/env bash
# The second command: every test of the project.
#  - Rust: unit tests, store tests (SQLite always; Postgres too when
#    GATEWAY_TEST_POSTGRES_URL names a server, or a local one answers on 127.0.0.1:5432),
#    integration tests against a real gateway with local mock providers, and recordings
#    stored in a local directory and in a local S3-compatible server.
#  - Browser: the widget in headless Chromium against a real gateway (widget-js/).
set -euo pipefail
cd "$(dirname "$0")"
scripts/ensure-build-deps.sh
# The recording tests store recordings in a local S3-compatible server too (moto, from PyPI).
scripts/ensure-s3-server.sh
export GATEWAY_TEST_REQUIRE_S3=1

if [ -z "${GATEWAY_TEST_POSTGRES_URL:-}" ] && command -v pg_isready >/dev/null 2>&1 \
   && pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
  export GATEWAY_TEST_POSTGRES_URL="postgres://postgres@127.0.0.1:5432/test"
fi
if [ -n "${GATEWAY_TEST_POSTGRES_URL:-}" ]; then
  echo "store tests also run on Postgres: ${GATEWAY_TEST_POSTGRES_URL}"
else
  echo "no Postgres found: store tests run on SQLite only (set GATEWAY_TEST_POSTGRES_URL to include Postgres)"
fi

cargo test --workspace --locked

# The widget in headless Chromium against a real gateway and the mock providers
# (installs Debian's chromium and the npm test dependencies when missing).
scripts/ensure-browser-deps.sh
cargo build --locked --bins
(cd widget-js && npm test)
