#!/usr/bin/env bash
# Installs Debian's chromium package if no Chromium is on PATH, for the
# admin console's browser tests (integration/browser_test.go drives it
# headless with chromedp). Those tests skip, saying why, when Chromium
# cannot be found; this script exits non-zero when it cannot install it.
set -uo pipefail

if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; then
  exit 0
fi
sudo=""
if [[ "$(id -u)" != 0 ]]; then
  if ! command -v sudo >/dev/null 2>&1; then
    echo "chromium-install: chromium is missing and neither root nor sudo is available" >&2
    exit 1
  fi
  sudo="sudo"
fi
echo "chromium-install: installing chromium (apt-get install -y chromium)" >&2
# The package lists may be missing or stale on a fresh machine: update
# them only when the first attempt fails.
if ! $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >&2; then
  $sudo apt-get update -qq >&2 || exit 1
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >&2 || exit 1
fi
command -v chromium >/dev/null 2>&1
