#!/usr/bin/env bash
# Create .venv (if missing) and install attnzoo into it with a CPU-only torch.
# Sourced by scripts/main.sh and scripts/test.sh; needs only python3 (3.10+) and pip.
#   TORCH_VERSION  torch pin (default 2.13.0): an unpinned torch would pull the CUDA build.
#   ATTNZOO_EXTRAS extras to install (default "test,train,viz").
#   VENV           where the virtual environment lives (default .venv in the repository).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VENV:-$repo/.venv}"
TORCH_VERSION="${TORCH_VERSION:-2.13.0}"
ATTNZOO_EXTRAS="${ATTNZOO_EXTRAS:-test,train,viz}"
PYTHON="${PYTHON:-python3}"

if [ ! -x "$VENV/bin/python" ]; then
  echo "[setup] creating virtual environment in $VENV"
  "$PYTHON" -m venv "$VENV"
fi
# Reinstall only when the pins or the package metadata changed.
stamp="$VENV/.attnzoo-installed"
want="torch==$TORCH_VERSION extras=$ATTNZOO_EXTRAS $(cksum < "$repo/pyproject.toml")"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "[setup] installing torch==$TORCH_VERSION and attnzoo[$ATTNZOO_EXTRAS]"
  "$VENV/bin/python" -m pip install --quiet --upgrade pip
  "$VENV/bin/python" -m pip install --quiet "torch==$TORCH_VERSION"
  # The constraint keeps every later resolution on the installed torch (no CUDA download).
  echo "torch==$TORCH_VERSION" > "$VENV/torch-constraint.txt"
  "$VENV/bin/python" -m pip install --quiet -c "$VENV/torch-constraint.txt" -e "$repo[$ATTNZOO_EXTRAS]"
  echo "$want" > "$stamp"
fi
export PATH="$VENV/bin:$PATH"
