#!/usr/bin/env bash
# Install headless Chromium from Debian for tests/test_report_layout.py, which lays report.html out in a
# real browser (misalign_fv.report.screen). Idempotent: does nothing when a Chromium is already on PATH.
# Needs root and apt; without them the browser tests skip, saying why.
set -euo pipefail
for b in chromium chromium-browser google-chrome; do command -v "$b" >/dev/null && exit 0; done
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
  echo "tests/install_chromium.sh: need root and apt-get to install chromium" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends chromium fonts-dejavu-core
