#!/usr/bin/env bash
# Installs the Strapi packages whose telemetry senders tests/strapi.rs drives, and prints
# their node_modules directory on the last line (the test reads it from
# TALLY_STRAPI_NODE_MODULES). Idempotent: nothing is fetched when the installed packages
# already match package.json and package-lock.json.
#
#   export TALLY_STRAPI_NODE_MODULES="$(bash crates/tally-collector/tests/strapi-node/setup.sh | tail -n 1)"
#
# The install lives outside the work tree, in $TALLY_STRAPI_NODE_DIR (default
# ~/.cache/tally/strapi-node), so that a fresh checkout reuses it. Packages come from the
# npm registry; install scripts are not run (the senders need none).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
dir="${TALLY_STRAPI_NODE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/tally/strapi-node}"

command -v node >/dev/null || { echo "setup.sh: node is not installed (Node.js 20 or later is needed)" >&2; exit 1; }
command -v npm >/dev/null || { echo "setup.sh: npm is not installed" >&2; exit 1; }

mkdir -p "$dir"
stamp="$dir/.tally-stamp"
want="$(cat "$here/package.json" "$here/package-lock.json" 2>/dev/null | sha256sum | cut -d' ' -f1)-node$(node --version)"
if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" && -f "$dir/node_modules/create-strapi-app/package.json" \
      && -f "$dir/node_modules/@strapi/core/package.json" ]]; then
  echo "setup.sh: Strapi packages already installed in $dir" >&2
else
  echo "setup.sh: installing Strapi packages into $dir (about 1 minute, 400 MB)" >&2
  rm -f "$stamp"
  cp "$here/package.json" "$dir/package.json"
  if [[ -f "$here/package-lock.json" ]]; then
    cp "$here/package-lock.json" "$dir/package-lock.json"
    (cd "$dir" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >&2)
  else
    (cd "$dir" && npm install --ignore-scripts --no-audit --no-fund --loglevel=error >&2)
  fi
  echo "$want" > "$stamp"
fi
echo "$dir/node_modules"
