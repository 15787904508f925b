#!/usr/bin/env bash
# Stops the local control plane started by up.sh and removes its state. Safe to run when none is up.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/versions.env"
source "$here/lib.sh"

bin="$(cluster_bin_dir)"
export KWOK_WORKDIR="$CLUSTER_DIR/kwok"
if [[ -x "$bin/kwokctl" && -d "$KWOK_WORKDIR" ]]; then
  "$bin/kwokctl" delete cluster --name "$CLUSTER_NAME" >&2 || echo "warning: kwokctl delete failed; removing state anyway" >&2
fi
rm -rf "$CLUSTER_DIR"
echo "local cluster '$CLUSTER_NAME' removed" >&2
