#!/usr/bin/env bash
# Installs chDB (PyPI `chdb-core`, the engine of ClickHouse 26.9) into a virtualenv with the
# exact versions of requirements.txt, for the tests against a current ClickHouse release
# (server.py puts it behind ClickHouse's HTTP interface). Prints the venv's python on the
# last line (the tests read it from TALLY_CLICKHOUSE_CURRENT_PYTHON). Idempotent.
#
#   export TALLY_CLICKHOUSE_CURRENT_PYTHON="$(bash crates/tally-store-clickhouse/tests/current/setup.sh | tail -n 1)"
#
# The venv lives in $TALLY_CLICKHOUSE_CURRENT_DIR (default ~/.cache/tally/clickhouse-current).
# Measured here: 25 s, 890 MB.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
dir="${TALLY_CLICKHOUSE_CURRENT_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/tally/clickhouse-current}"
exec bash "$here/../../../../xtask/venv.sh" "$dir" "$here/requirements.txt" bin/python "chdb (ClickHouse 26.9, about 190 MB download)"
