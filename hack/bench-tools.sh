#!/usr/bin/env bash
# Makes sure the HTTP load generator the status page benchmark uses (wrk, Debian's package) is
# installed, installing it with apt-get when missing, and prints its path. INCIDENT_BENCH_WRK skips it.
set -euo pipefail
wrk="${INCIDENT_BENCH_WRK:-$(command -v wrk || true)}"
if [[ -z "$wrk" || ! -x "$wrk" ]]; then
  command -v apt-get >/dev/null || { echo "hack/bench-tools.sh: wrk is missing and there is no apt-get: install wrk (4.x) and set INCIDENT_BENCH_WRK" >&2; exit 1; }
  sudo=""
  [[ "$(id -u)" == 0 ]] || sudo="sudo"
  echo "hack/bench-tools.sh: installing wrk (Debian package)" >&2
  { $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq wrk; } >&2 \
    || { echo "hack/bench-tools.sh: apt-get could not install wrk; install it and rerun" >&2; exit 1; }
  wrk="$(command -v wrk)"
fi
echo "$wrk"
