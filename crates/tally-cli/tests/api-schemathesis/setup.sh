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

python=""
for candidate in python3.11 python3; do
  if command -v "$candidate" >/dev/null; then python="$(command -v "$candidate")"; break; fi
done
[[ -n "$python" ]] || { echo "setup.sh: python3 is not installed (CPython 3.11 is what requirements.txt was made with)" >&2; exit 1; }

stamp="$dir/.tally-stamp"
want="$(sha256sum "$here/requirements.txt" | cut -d' ' -f1)-$("$python" --version 2>&1)"
if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" && -x "$dir/bin/schemathesis" ]]; then
  echo "setup.sh: schemathesis already installed in $dir" >&2
else
  echo "setup.sh: installing schemathesis into $dir (about 50 s, 95 MB)" >&2
  rm -rf "$dir"
  "$python" -m venv "$dir" >&2
  "$dir/bin/pip" install --quiet --disable-pip-version-check --no-input -r "$here/requirements.txt" >&2
  echo "$want" > "$stamp"
fi
echo "$dir/bin/schemathesis"
