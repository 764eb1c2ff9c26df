#!/usr/bin/env bash
# Set up (scripts/setup.sh) and run attnzoo's main job. Extra arguments go to the command.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$repo/scripts/setup.sh"
cd "$repo"
exec attnzoo list "$@"
