#!/usr/bin/env bash
# Installs the local S3-compatible server the recording tests store recordings in: moto's
# server (PyPI `moto`), in a Python virtual environment at target/tools/moto. The tests
# start it themselves on a free loopback port; nothing is fetched at test time.
# Needs python3 with the venv module (Debian: python3-venv, installed with apt-get if missing).
set -euo pipefail
cd "$(dirname "$0")/.."

venv=target/tools/moto
# Pinned so every machine tests against the same server.
packages=("moto[s3]==5.2.6" "flask==3.1.3" "flask-cors==6.0.5")

if [ -x "$venv/bin/moto_server" ] && [ -f "$venv/.installed" ] && [ "$(cat "$venv/.installed")" = "${packages[*]}" ]; then
  exit 0
fi
if ! command -v python3 >/dev/null 2>&1; then
  echo "the recording tests need python3 for their local S3 server: please install it" >&2
  exit 1
fi
if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1; then
    sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    echo "the local S3 server needs python3-venv; installing it with apt-get" >&2
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq python3-venv >/dev/null
  else
    echo "the recording tests need python3's venv module for their local S3 server" >&2
    exit 1
  fi
fi
echo "installing the local S3 server for the recording tests (${packages[*]}) in $venv" >&2
rm -rf "$venv"
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check "${packages[@]}"
echo "${packages[*]}" > "$venv/.installed"
