#!/usr/bin/env bash
# Installs npm's node-machine-id (the reference for tally::node_machine_id) into a private
# directory and prints the node_modules path to use as TALLY_NODE_MODULES. Idempotent.
#
#   export TALLY_NODE_MODULES="$(crates/tally/tests/setup-node.sh)"
#   cargo test -p tally --test node_machine_id
set -euo pipefail
dir="${TALLY_NODE_DIR:-${CARGO_TARGET_DIR:-${TMPDIR:-/tmp}}/tally-node}"
if [ ! -f "$dir/node_modules/node-machine-id/package.json" ]; then
    mkdir -p "$dir"
    npm install --no-save --no-audit --no-fund --silent --prefix "$dir" node-machine-id@1.1.12 >&2
fi
echo "$dir/node_modules"
