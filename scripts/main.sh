#!/usr/bin/env bash
# Set up (scripts/setup.sh) and run the main job: `attnzoo compare` on the embedded digits
# (plain vs the seed attention modules, 3 seeds each; results in runs/compare). Extra arguments go to it.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$repo/scripts/setup.sh"
cd "$repo"
exec attnzoo compare "$@"
