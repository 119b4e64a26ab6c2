#!/usr/bin/env bash
# Installs what tests/dashboard.rs drives the dashboard with: Debian's chromium (with
# apt-get, when /usr/bin/chromium is missing), and from npm playwright-core (the library
# only; it downloads no browser) and axe-core (the accessibility checks). Prints the node_modules directory on the last line (the
# test reads it from TALLY_DASHBOARD_NODE_MODULES). Idempotent: nothing is fetched when
# chromium is there and the installed packages match package.json and package-lock.json.
#
#   export TALLY_DASHBOARD_NODE_MODULES="$(bash crates/tally-cli/tests/dashboard-browser/setup.sh | tail -n 1)"
#
# The npm install lives outside the work tree, in $TALLY_DASHBOARD_NODE_DIR (default
# ~/.cache/tally/dashboard-browser), so that a fresh checkout reuses it. Install scripts
# are not run (playwright-core needs none).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
dir="${TALLY_DASHBOARD_NODE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/tally/dashboard-browser}"

command -v node >/dev/null || { echo "setup.sh: node is not installed (Node.js 20 or later is needed)" >&2; exit 1; }
command -v npm >/dev/null || { echo "setup.sh: npm is not installed" >&2; exit 1; }

if [[ ! -x /usr/bin/chromium ]]; then
  command -v apt-get >/dev/null || { echo "setup.sh: /usr/bin/chromium is missing and there is no apt-get: install Chromium there" >&2; exit 1; }
  sudo=""
  [[ "$(id -u)" == 0 ]] || sudo="sudo"
  echo "setup.sh: installing Debian's chromium with apt-get (about 1-2 minutes, 300 MB)" >&2
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >&2
fi

mkdir -p "$dir"
stamp="$dir/.tally-stamp"
want="$(cat "$here/package.json" "$here/package-lock.json" | sha256sum | cut -d' ' -f1)-node$(node --version)"
if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" && -f "$dir/node_modules/playwright-core/package.json" \
      && -f "$dir/node_modules/axe-core/axe.min.js" ]]; then
  echo "setup.sh: playwright-core and axe-core already installed in $dir" >&2
else
  echo "setup.sh: installing playwright-core and axe-core into $dir (a few seconds, 13 MB)" >&2
  rm -f "$stamp"
  cp "$here/package.json" "$here/package-lock.json" "$dir/"
  (cd "$dir" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >&2)
  echo "$want" > "$stamp"
fi
echo "$dir/node_modules"
