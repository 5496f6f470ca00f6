#!/usr/bin/env bash
# Checks (and on Debian/Ubuntu installs) what the build needs besides the Rust toolchain:
# a C compiler and cmake, which build the bundled libopus. Says clearly what it does.
set -euo pipefail

missing=()
command -v cc >/dev/null 2>&1 || missing+=(gcc)
command -v cmake >/dev/null 2>&1 || missing+=(cmake)
command -v pkg-config >/dev/null 2>&1 || missing+=(pkg-config)
[ ${#missing[@]} -eq 0 ] && exit 0

echo "build needs: ${missing[*]} (cmake builds the bundled libopus)" >&2
if command -v apt-get >/dev/null 2>&1; then
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  echo "installing with apt-get: ${missing[*]}" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
  echo "installed: ${missing[*]}" >&2
else
  echo "please install ${missing[*]} with your package manager and run again" >&2
  exit 1
fi
