#!/usr/bin/env bash
# Regenerate every committed training result (docs/results/) with the code at HEAD.
# Run folders (checkpoints, per-run summaries and metrics) go to runs/results/ (cleared first unless
# REUSE=1; `attnzoo compare --from runs/results/NAME/runs` re-aggregates them); the report, results.json
# (per-seed top-1 and flags included), plots, commit and wall-clock time are copied to docs/results/NAME/.
#   bash scripts/results.sh [main fresh combined ablations long long-diagnostics recipe all ...]   (default: all, in that order)
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$repo/scripts/setup.sh"
cd "$repo"

run() {  # NAME, then attnzoo compare arguments
  local name="$1"; shift
  local out="runs/results/$name" dest="docs/results/$name"
  local start=$SECONDS
  # Train from scratch: finished runs left by another commit would otherwise be re-aggregated and
  # published under this commit. REUSE=1 keeps them (to re-aggregate the same code's runs).
  [ "${REUSE:-0}" = 1 ] || rm -rf "$out"
  attnzoo compare --out "$out" --no-progress "$@" > "runs/results/$name.log"
  echo "$name: $((SECONDS - start)) s" | tee -a runs/results/timings.txt
  rm -rf "$dest" && mkdir -p "$dest"
  cp "$out"/report.md "$out"/results.json "$out"/*.png "$dest"/
  echo "commit $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src || echo '+uncommitted')" > "$dest/COMMIT"
  echo "attnzoo compare${*:+ $*} (set-up already done): $((SECONDS - start)) s wall clock on $(nproc) cores" > "$dest/timing.txt"
}

mkdir -p runs/results
for what in "${@:-main fresh combined ablations long long-diagnostics recipe all}"; do
  for w in $what; do
    case "$w" in
      main) run compare-cpu ;;                                         # the README's main table
      fresh) run compare-cpu-fresh --first-seed 100 --data-seed 1 ;;   # the verdict on seeds and data never tuned on
      combined) run compare-cpu-combined --from runs/results/compare-cpu/runs runs/results/compare-cpu-fresh/runs ;;  # 6 paired seeds
      ablations) run ablations --preset ablations ;;
      all) run all-modules --variants bam coord eca ese gc ge nonlocal sge simam triplet self_attn add mscam --seeds 2 ;;  # (not yet run)
      long) run long --preset long ;;
      long-diagnostics)  # plain ResNet-20 stuck at chance on seed 4 of `long`: what zero-init / a lower lr / a longer warm-up do
        run long-zeroinit --variants plain --model cifar_resnet20 --epochs 10 --seeds 5 --model-opt zero_init_residual=true --no-latency --no-localisation
        run long-seed4-lr0.025 --variants plain --model cifar_resnet20 --epochs 10 --first-seed 4 --seeds 1 --lr 0.025 --no-latency --no-localisation
        run long-seed4-warm2 --variants plain --model cifar_resnet20 --epochs 10 --first-seed 4 --seeds 1 --warmup-epochs 2 --no-latency --no-localisation ;;
      recipe)  # the lr × epochs grid behind the recipe (docs/recipe.md), on seeds the default never uses
        for lr in 0.025 0.05 0.1; do for ep in 4 8; do
          attnzoo compare --variants plain --first-seed 11 --seeds 3 --lr $lr --epochs $ep --no-latency --no-localisation \
            --no-progress --out "runs/results/recipe/lr$lr-ep$ep" > /dev/null
        done; done
        mkdir -p docs/results/recipe && python scripts/recipe_figure.py runs/results/recipe docs/results/recipe
        echo "commit $(git rev-parse --short HEAD)" > docs/results/recipe/COMMIT ;;
      *) echo "unknown result set $w" >&2; exit 2 ;;
    esac
  done
done
