#!/usr/bin/env bash
# Installs chDB (PyPI `chdb-core`, the engine of ClickHouse 26.9) into a virtualenv with the
# exact versions of requirements.txt, for the tests against a current ClickHouse release
# (server.py puts it behind ClickHouse's HTTP interface). Prints the venv's python on the
# last line (the tests read it from TALLY_CLICKHOUSE_CURRENT_PYTHON). Idempotent: nothing
# is fetched when the venv already holds what requirements.txt pins.
#
#   export TALLY_CLICKHOUSE_CURRENT_PYTHON="$(bash crates/tally-store-clickhouse/tests/current/setup.sh | tail -n 1)"
#
# The venv lives outside the work tree, in $TALLY_CLICKHOUSE_CURRENT_DIR (default
# ~/.cache/tally/clickhouse-current). Needs CPython 3.11 or later with venv and pip.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
dir="${TALLY_CLICKHOUSE_CURRENT_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/tally/clickhouse-current}"

python=""
for candidate in python3.11 python3; do
  if command -v "$candidate" >/dev/null; then python="$(command -v "$candidate")"; break; fi
done
[[ -n "$python" ]] || { echo "setup.sh: python3 is not installed" >&2; exit 1; }

stamp="$dir/.tally-stamp"
want="$(sha256sum "$here/requirements.txt" | cut -d' ' -f1)-$("$python" --version 2>&1)"
if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" && -x "$dir/bin/python" ]]; then
  echo "setup.sh: chdb already installed in $dir" >&2
else
  echo "setup.sh: installing chdb into $dir (about 190 MB download)" >&2
  rm -rf "$dir"
  "$python" -m venv "$dir" >&2
  "$dir/bin/pip" install --quiet --disable-pip-version-check --no-input -r "$here/requirements.txt" >&2
  echo "$want" > "$stamp"
fi
echo "$dir/bin/python"
