#!/usr/bin/env bash
# Makes sure headless Chromium and its WebDriver (Debian's chromium and chromium-driver packages) are
# installed, installing them with apt-get when missing, and prints two lines: the chromium binary and
# the chromedriver binary. The status page's e2e tests run it (INCIDENT_E2E_CHROMIUM and
# INCIDENT_E2E_CHROMEDRIVER skip it); they fail with this script's message when it cannot.
set -euo pipefail
chromium="${INCIDENT_E2E_CHROMIUM:-/usr/bin/chromium}"
driver="${INCIDENT_E2E_CHROMEDRIVER:-/usr/bin/chromedriver}"
if [[ ! -x "$chromium" || ! -x "$driver" ]]; then
  if ! command -v apt-get >/dev/null; then
    echo "hack/browser.sh: $chromium or $driver is missing and there is no apt-get: install Chromium and" \
         "ChromeDriver of the same version and set INCIDENT_E2E_CHROMIUM and INCIDENT_E2E_CHROMEDRIVER" >&2
    exit 1
  fi
  sudo=""
  [[ "$(id -u)" == 0 ]] || sudo="sudo"
  echo "hack/browser.sh: installing chromium and chromium-driver (Debian packages)" >&2
  { $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium chromium-driver; } >&2 || {
    echo "hack/browser.sh: apt-get could not install chromium and chromium-driver; install them" \
         "(Debian: apt-get install chromium chromium-driver) and rerun" >&2
    exit 1
  }
fi
for binary in "$chromium" "$driver"; do
  [[ -x "$binary" ]] || { echo "hack/browser.sh: $binary is still missing after the install" >&2; exit 1; }
done
echo "$chromium"
echo "$driver"
