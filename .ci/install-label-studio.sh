#!/usr/bin/env bash
# Install the Label Studio server into its own virtualenv and print the path of its binary.
#
# The server pins its own label-studio-sdk and Django, so it must not share the project's
# environment. Usage: .ci/install-label-studio.sh [DIR]   (default: .ls-venv)
# Then: LABEL_STUDIO_BIN="$(.ci/install-label-studio.sh)" pytest -m labelstudio
set -euo pipefail

VERSION=1.23.2
DIR="${1:-.ls-venv}"
PYTHON="${PYTHON:-python3}"

if [ ! -x "$DIR/bin/python" ]; then
    "$PYTHON" -m venv "$DIR" >&2
fi
"$DIR/bin/python" -m pip install --quiet --upgrade pip >&2
"$DIR/bin/python" -m pip install --quiet "label-studio==$VERSION" >&2

BIN="$(cd "$DIR/bin" && pwd)/label-studio"
[ -x "$BIN" ] || { echo "install-label-studio: $BIN missing after the install" >&2; exit 1; }
# Not `label-studio --version`: it initialises a database in ~/.local/share and starts a server.
"$DIR/bin/python" -c 'import importlib.metadata as m; print("label-studio", m.version("label-studio"))' >&2
echo "$BIN"
