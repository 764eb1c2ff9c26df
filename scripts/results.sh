#!/usr/bin/env bash
# Regenerate every committed training result (docs/results/) with the code at HEAD.
# Run folders (checkpoints, per-run summaries and metrics) go to runs/results/ (cleared first unless
# REUSE=1; `attnzoo compare --from runs/results/NAME/runs` re-aggregates them); the report, results.json
# (per-seed top-1 and flags included), plots, commit and wall-clock time are copied to docs/results/NAME/.
#   bash scripts/results.sh [main fresh combined ablations long fashion fashion-fresh fashion-combined warmup long-diagnostics recipe plateau ecam sge all ...]   (default: all, in that order)
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$repo/scripts/setup.sh"
cd "$repo"

# Train from scratch: finished runs left by another commit would otherwise be re-aggregated and
# published under this commit. REUSE=1 keeps them (to re-aggregate the same code's runs).
fresh_start() { [ "${REUSE:-0}" = 1 ] || rm -rf "$1"; }
# The commit whose code produced a set (marked when src/ had uncommitted changes).
commit_stamp() { echo "commit $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src || echo '+uncommitted')"; }

run() {  # NAME, then attnzoo compare arguments
  local name="$1"; shift
  local out="runs/results/$name" dest="docs/results/$name"
  local start=$SECONDS
  fresh_start "$out"
  attnzoo compare --out "$out" --no-progress "$@" > "runs/results/$name.log"
  echo "$name: $((SECONDS - start)) s" | tee -a runs/results/timings.txt
  rm -rf "$dest" && mkdir -p "$dest"
  cp "$out"/report.md "$out"/results.json "$out"/*.png "$dest"/
  commit_stamp > "$dest/COMMIT"
  echo "attnzoo compare${*:+ $*} (set-up already done): $((SECONDS - start)) s wall clock on $(nproc) cores" > "$dest/timing.txt"
}

mkdir -p runs/results
for what in "${@:-main fresh combined ablations long fashion fashion-fresh fashion-combined warmup long-diagnostics recipe plateau ecam sge all}"; do
  for w in $what; do
    case "$w" in
      main) run compare-cpu ;;                                         # the README's main table
      fresh) run compare-cpu-fresh --first-seed 100 --data-seed 1 ;;   # the verdict on seeds and data never tuned on
      combined) run compare-cpu-combined --from runs/results/compare-cpu/runs runs/results/compare-cpu-fresh/runs ;;  # 6 paired seeds
      ablations) run ablations --preset ablations ;;
      all)  # every registered attention and fusion module the sets above do not train, default options, default regime,
            # one seed: does any collapse? In two reports (second wave, then first), so that each stands alone.
        run all-modules-2 --variants a2net bat ccnet ceca danet danet_channel danet_position ecam ela ema gca lcbam psa scoord \
          shuffle strip --seeds 1 --no-localisation
        run all-modules-1 --variants bam coord eca ese gc ge nonlocal self_attn sge simam triplet add --seeds 1 --no-localisation ;;
      ecam)  # ECAM's default (bias-free) against timm's form (bias=true): 3 seeds on data seed 0, 3 never tuned on (data seed 1)
        run ecam --variants ecam ecam:bias=true --seeds 3 --no-latency --no-localisation
        run ecam-fresh --variants ecam ecam:bias=true --seeds 3 --first-seed 100 --data-seed 1 --no-latency --no-localisation ;;
      sge)  # SGE's default (at least 4 channels per group) against the former rule (one per group in ResNet-8): as ecam
        run sge --variants sge sge:min_group_channels=1 --seeds 3 --no-latency --no-localisation
        run sge-fresh --variants sge sge:min_group_channels=1 --seeds 3 --first-seed 100 --data-seed 1 --no-latency --no-localisation ;;
      long) run long --preset long ;;
      fashion) run fashion --preset fashion ;;   # Fashion-MNIST at the CPU budget (README: Fashion-MNIST)
      fashion-fresh) run fashion-fresh --preset fashion --first-seed 100 --seeds 3 --data-seed 1 ;;  # seeds and a subset never tuned on
      fashion-combined) run fashion-combined --from runs/results/fashion/runs runs/results/fashion-fresh/runs ;;
      warmup)  # the warm-up behind the recipe: plain ResNet-20 (the long regime's) at 0.5 and 1 epoch, on the
               # long set's seeds and data and on seeds and data never tuned on (docs/results/warmup/)
        fresh_start runs/results/warmup
        for w in 0.5 1; do for data in 0 1; do
          attnzoo compare --variants plain --model cifar_resnet20 --epochs 10 --seeds 5 --first-seed $((100 * data)) --data-seed $data \
            --warmup-epochs $w --no-latency --no-localisation --no-progress --out "runs/results/warmup/w$w-data$data" > /dev/null
        done; done
        python scripts/recipe_figure.py runs/results/warmup docs/results/warmup --rows warmup_epochs --cols data_seed
        commit_stamp > docs/results/warmup/COMMIT ;;
      long-diagnostics)  # plain ResNet-20 at chance on seed 4 with the former half-epoch warm-up: zero-init and a lower lr
        run long-zeroinit --variants plain --model cifar_resnet20 --epochs 10 --seeds 5 --warmup-epochs 0.5 --model-opt zero_init_residual=true --no-latency --no-localisation
        run long-seed4-lr0.025 --variants plain --model cifar_resnet20 --epochs 10 --first-seed 4 --seeds 1 --warmup-epochs 0.5 --lr 0.025 --no-latency --no-localisation ;;
      recipe)  # the lr × epochs grid behind the recipe (README: The recipe, and why), on seeds the default never uses
        fresh_start runs/results/recipe
        for lr in 0.025 0.05 0.1; do for ep in 4 8; do
          attnzoo compare --variants plain --first-seed 11 --seeds 3 --lr $lr --epochs $ep --no-latency --no-localisation \
            --no-progress --out "runs/results/recipe/lr$lr-ep$ep" > /dev/null
        done; done
        python scripts/recipe_figure.py runs/results/recipe docs/results/recipe
        commit_stamp > docs/results/recipe/COMMIT ;;
      plateau)  # how long plain runs sit on the loss plateau at ln 10, and where they end, under the recipe and three
                # alternatives: 24 seeds each (12 on data seed 2, 12 on data seed 3), none used anywhere else (docs/results/plateau/)
        fresh_start runs/results/plateau
        for candidate in "0.05 1" "0.1 1" "0.025 1" "0.05 2"; do
          set -- $candidate
          for data in 2 3; do
            attnzoo compare --variants plain --first-seed $((100 * data)) --seeds 12 --data-seed $data --lr "$1" --warmup-epochs "$2" \
              --no-latency --no-localisation --no-progress --out "runs/results/plateau/lr$1-warmup$2-data$data" > /dev/null
          done
        done
        python scripts/plateau_figure.py runs/results/plateau docs/results/plateau
        commit_stamp > docs/results/plateau/COMMIT ;;
      *) echo "unknown result set $w" >&2; exit 2 ;;
    esac
  done
done
