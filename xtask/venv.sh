#!/usr/bin/env bash
# Makes a Python virtualenv with the exact versions of a requirements file, for a test that
# needs a PyPI package. Idempotent: nothing is fetched when the venv already holds what the
# file pins (a stamp of its hash and the Python version). Prints the given executable of the
# venv on the last line, which `cargo xtask test` passes to the tests.
#
#   venv.sh DIR REQUIREMENTS EXECUTABLE WHAT
#
# DIR lives outside the work tree (under ~/.cache/tally) so that a fresh checkout reuses it;
# EXECUTABLE is relative to it (bin/python); WHAT names it in messages. Needs CPython 3.11
# or later with venv and pip (python3.11 first).
set -euo pipefail
dir="$1" requirements="$2" executable="$3" what="$4"

python=""
for candidate in python3.11 python3; do
  if command -v "$candidate" >/dev/null; then python="$(command -v "$candidate")"; break; fi
done
[[ -n "$python" ]] || { echo "venv.sh: python3 is not installed (needed for $what)" >&2; exit 1; }

stamp="$dir/.tally-stamp"
want="$(sha256sum "$requirements" | cut -d' ' -f1)-$("$python" --version 2>&1)"
if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" && -x "$dir/$executable" ]]; then
  echo "venv.sh: $what already installed in $dir" >&2
else
  echo "venv.sh: installing $what into $dir" >&2
  rm -rf "$dir"
  "$python" -m venv "$dir" >&2
  "$dir/bin/pip" install --quiet --disable-pip-version-check --no-input -r "$requirements" >&2
  echo "$want" > "$stamp"
fi
echo "$dir/$executable"
