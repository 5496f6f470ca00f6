#!/usr/bin/env bash
# Checks (and on Debian/Ubuntu installs) what the widget's browser tests need:
#  - Debian's Chromium at /usr/bin/chromium (the tests never download a browser) and an
#    emoji font;
#  - widget-js/node_modules matching widget-js/package-lock.json (`npm ci`).
# Says clearly what it does.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
# An emoji font, so the configured button icons (📞) render in the test screenshots.
if command -v dpkg >/dev/null 2>&1 && ! dpkg -s fonts-noto-color-emoji >/dev/null 2>&1; then
  missing+=(fonts-noto-color-emoji)
fi
if [ ${#missing[@]} -gt 0 ]; then
  if command -v apt-get >/dev/null 2>&1; then
    sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    echo "browser tests need: ${missing[*]}; installing with apt-get" >&2
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
    echo "installed: ${missing[*]} ($(/usr/bin/chromium --version 2>/dev/null || echo chromium))" >&2
  elif [ ! -x /usr/bin/chromium ]; then
    echo "browser tests need Chromium at /usr/bin/chromium: please install it with your package manager" >&2
    exit 1
  fi
fi

if ! command -v npm >/dev/null 2>&1; then
  echo "browser tests need Node.js 20+ and npm: please install them" >&2
  exit 1
fi

# npm ci when node_modules is missing or older than the lock file (npm writes its own
# copy of the lock to node_modules/.package-lock.json on every install).
lock=widget-js/package-lock.json
installed=widget-js/node_modules/.package-lock.json
if [ ! -f "$installed" ] || [ "$lock" -nt "$installed" ]; then
  echo "installing the widget's test dependencies (npm ci in widget-js)" >&2
  (cd widget-js && npm ci --no-audit --no-fund --loglevel=error)
fi
