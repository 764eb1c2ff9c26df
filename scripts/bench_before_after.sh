#!/usr/bin/env bash
# Time the fused kernels and the models at another commit and at this checkout, alternately, on the
# same machine in one session (issue 14: the move of the kernels into attnzoo.fused must keep their speed).
#   [ROUNDS=2] bash scripts/bench_before_after.sh BEFORE_COMMIT [OUT]   (default OUT: runs/bench-before-after)
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$repo/scripts/setup.sh"
cd "$repo"
before="${1:?usage: bench_before_after.sh BEFORE_COMMIT [OUT]}"
out="${2:-runs/bench-before-after}"
worktree="$(mktemp -d)"
git worktree add -q --detach "$worktree" "$before"
trap 'git worktree remove --force "$worktree"' EXIT
for round in $(seq 1 "${ROUNDS:-2}"); do
  for side in before after; do
    src="$repo/src"; [ "$side" = before ] && src="$worktree/src"
    echo "[bench] round $round, $side ($src)"
    PYTHONPATH="$src" python -m attnzoo bench modules se cbam ha_soft --fused --threads 2 --no-backward --rounds 30 \
      --out "$out/$side-$round" --stem modules > /dev/null
    PYTHONPATH="$src" python -m attnzoo bench models plain se cbam --fused --threads 2 --rounds 10 \
      --out "$out/$side-$round" --stem models > /dev/null
  done
done
python - "$out" <<'PY'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
rounds = sorted({int(p.name.split("-")[1]) for p in out.glob("after-*")})
lines = ["| benchmark | row | " + " | ".join(f"{s} {r}" for r in rounds for s in ("before", "after")) + " |",
         "|---|---|" + "---|" * (2 * len(rounds))]
for kind in ("modules", "models"):
    runs = {(s, r): json.loads((out / f"{s}-{r}" / f"{kind}.json").read_text()) for r in rounds for s in ("before", "after")}
    names = [row["name"] for row in runs[("after", 1)]["rows"]]
    for name in names + ["control"]:
        cells = []
        for r in rounds:
            for s in ("before", "after"):
                res = runs[(s, r)]
                value = res["setup"]["control_ratio"] if name == "control" else next(x["forward_ratio"] for x in res["rows"] if x["name"] == name)
                cells.append(f"{value:.3f}")
        lines.append(f"| {kind} | {name} | " + " | ".join(cells) + " |")
table = "\n".join(lines) + "\n"
(out / "before-after.md").write_text(table)
print(table)
PY
