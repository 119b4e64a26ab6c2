#!/usr/bin/env bash
# Installs schemathesis (PyPI), which tests/api.rs runs against a live `tally serve`, into
# a virtualenv with the exact versions of requirements.txt. Prints the schemathesis
# executable on the last line (the test reads it from TALLY_SCHEMATHESIS). Idempotent:
# nothing is fetched when the venv already holds what requirements.txt pins.
#
#   export TALLY_SCHEMATHESIS="$(bash crates/tally-cli/tests/api-schemathesis/setup.sh | tail -n 1)"
#
# The venv lives outside the work tree, in $TALLY_SCHEMATHESIS_DIR (default
# ~/.cache/tally/schemathesis), so that a fresh checkout reuses it. A fresh install takes
# about 50 s and 95 MB. Needs CPython 3.9 or later with venv and pip (python3.11 first).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
dir="${TALLY_SCHEMATHESIS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/tally/schemathesis}"
exec bash "$here/../../../../xtask/venv.sh" "$dir" "$here/requirements.txt" bin/schemathesis "schemathesis (about 50 s, 95 MB)"
