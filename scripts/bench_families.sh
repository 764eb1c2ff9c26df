#!/usr/bin/env bash
# The cost of attention in the other backbone families (MobileNetV3, EfficientNet-B0, ConvNeXt-T) on
# this machine: `attnzoo bench models` per family at 224², batch 8, forward and training step, each
# variant as a ratio to the published network (native SE) of the same run. Writes docs/bench/families/
# (JSON, markdown, PNG, COMMIT); the README includes the markdown tables.
#   bash scripts/bench_families.sh [ROUNDS]     (default 10 interleaved rounds; ~10 min on 2 cores)
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$repo/scripts/setup.sh"
cd "$repo"
out=docs/bench/families
rounds="${1:-10}"
mkdir -p "$out"
for model in mobilenet_v3_large mobilenet_v3_small efficientnet_b0; do
  attnzoo bench models plain se cbam eca coord --model "$model" --batch 8 --threads 2 --rounds "$rounds" --train --out "$out" --stem "$model"
done
attnzoo bench models plain se cbam eca coord --model convnext_tiny --batch 8 --threads 2 --rounds "$rounds" --train --out "$out" --stem convnext_tiny
echo "commit $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src || echo '+uncommitted')" > "$out/COMMIT"
