#!/usr/bin/env bash
# The paper's grid in one time-limited GPU session (docs/paper_regime.md, "The GPU procedure").
#
#   BUDGET=480 scripts/gpu_session.sh PACK
#
# First times one training step on the GPU and on the CPU (scripts/gpu_step_bench.py ->
# PACK/gpu_step.json). Then runs scripts/gpu_sweep.sh on slices of the grid in order of
# priority, under one deadline BUDGET seconds from the start (default 480), from
# bundles/paper (`make bundles`). Every cell of the grid has run, on a GPU or on the CPU
# (results/paper_regime/), so each slice is skipped in a few seconds while its committed
# cells are there; run from scratch, they are the grid's priorities, in the order they ran:
#   1. tanh, 1 layer, widths 100-500 (Ar, Kr, ArKr)          -> runs/paper-gpu
#   2. the data-size sweep's width-500 cells at 1,400 frames -> runs/data_size-gpu
#   3. the paper's likely protocol (Adam, mini-batches, no early stopping;
#   sweeps/paper_adam32.toml), widths 100-500 -> runs/paper-adam32-gpu (JOBS_SMALL processes,
#   default 6: small batches leave the GPU idle); 4. tanh, 2 layers, widths 100-500;
#   5. tanh, 1 layer, widths 1-64 (Ar and Kr all; ArKr 12, 24, 48: its others are
#   results/identifiability/sweep_mixture.csv)
#   6. the two-layer cells of widths 12-64 that the CPU did not run (tanh 24, 48, 64; linear
#   12, 24, 48: results/paper_regime/paper_cpu has widths 1-32, tanh 12 and linear 64) and
#   linear, 2 layers, widths 100-300                       -> runs/paper-gpu
#   Linear one-layer cells and the two-layer linear cells of widths 400 and 500 are committed
#   in paper_gpu and paper_cpu (the latter trained with --linear-sums), so no slice redoes
#   them.
# A slice that the deadline cuts keeps its finished cells (run the script again to go on;
# finished cells are skipped). A sweep folder that is not under runs/ yet starts from its
# committed copy under results/paper_regime/ (paper_gpu, data_size_gpu, paper_adam32_gpu),
# so a later session trains only the cells no session has finished. Then it packs the sweep
# folders into PACK as tar files: part0.tar holds the results, tables and logs (whatever
# their size; a few MiB), then checkpoints, smallest first, fill tar files of at most 15 MiB
# (a checkpoint over 15 MiB gets one of its own) while they fit in PACK_FILES files
# (default 4), and PACK/manifest.txt lists what was left out.
set -uo pipefail
cd "$(dirname "$0")/.."
PACK=${1:?usage: scripts/gpu_session.sh PACK (folder for the packed results)}
BUDGET=${BUDGET:-480}
PY=${PYTHON:-python3}
END=$(( $(date +%s) + BUDGET ))
mkdir -p "$PACK"
export PYTHONUNBUFFERED=1

{
    echo "commit: $(git rev-parse HEAD 2>/dev/null || echo "${COMMIT:-unknown}")"
    nvidia-smi -L 2>/dev/null || true
    date -u +"started: %Y-%m-%dT%H:%M:%SZ"
} | tee "$PACK/session.txt"

slice() {  # CONFIG OUT [sweep options]: one slice, with what is left of the budget
    local left=$(( END - $(date +%s) ))
    if [ "$left" -lt 30 ]; then
        echo "not started (budget spent): $*" | tee -a "$PACK/session.txt"
        return
    fi
    echo "slice ($left s left): $*" | tee -a "$PACK/session.txt"
    # training ends 20 s before the budget: time for the results table and the packing
    DEADLINE=$(( END - 20 )) scripts/gpu_sweep.sh "$1" bundles/paper "$2" "${@:3}" 2>&1 \
        | tee -a "$PACK/session.txt"
    if [ "${PIPESTATUS[0]}" -eq 3 ]; then  # cuda differs from cpu: train nothing at all
        echo "stopped: the cuda-vs-cpu test failed" | tee -a "$PACK/session.txt"
        exit 3
    fi
    export SKIP_CUDA_TEST=1  # the cuda-vs-cpu test once per session
}

# one training step on the GPU next to the CPU's (16 threads there), the same workload
# (SKIP_STEP_BENCH set: skip it, e.g. when it ran earlier)
[ -n "${SKIP_STEP_BENCH:-}" ] || timeout --kill-after=10 120 "$PY" scripts/gpu_step_bench.py \
    --bundle bundles/paper/Ar.npz --out "$PACK/gpu_step.json" 2>&1 | tee -a "$PACK/session.txt"

# go on from the committed results of earlier sessions (their cells are skipped)
for run in paper-gpu data_size-gpu paper-adam32-gpu; do
    committed=results/paper_regime/${run//-/_}
    if [ ! -d "runs/$run" ] && [ -d "$committed" ]; then
        mkdir -p runs && cp -r "$committed" "runs/$run" && chmod -R u+w "runs/$run"
        echo "runs/$run: from $committed ($(ls "runs/$run/cells" | wc -l) cell files)" \
            | tee -a "$PACK/session.txt"
    fi
done

WIDE=width=100,150,200,300,400,500
# finished by earlier sessions (skipped in seconds while their committed cells are there)
slice sweeps/paper.toml runs/paper-gpu --only activation=tanh --only depth=1 --only "$WIDE"
slice sweeps/data_size.toml runs/data_size-gpu --only width=500 --only n_train=1400
JOBS=${JOBS_SMALL:-6} slice sweeps/paper_adam32.toml runs/paper-adam32-gpu --only "$WIDE"
slice sweeps/paper.toml runs/paper-gpu --only activation=tanh --only depth=2 --only "$WIDE"
NARROW=width=1,2,4,8,12,16,24,32,48,64
slice sweeps/paper.toml runs/paper-gpu --only system=Ar,Kr --only activation=tanh --only depth=1 --only "$NARROW"
slice sweeps/paper.toml runs/paper-gpu --only system=ArKr --only activation=tanh --only depth=1 --only width=12,24,48
slice sweeps/paper.toml runs/paper-gpu --only activation=tanh --only depth=2 --only width=24,48,64
slice sweeps/paper.toml runs/paper-gpu --only activation=linear --only depth=2 --only width=12,24,48
slice sweeps/paper.toml runs/paper-gpu --only activation=linear --only depth=2 --only width=100,150,200,300
date -u +"ended: %Y-%m-%dT%H:%M:%SZ" | tee -a "$PACK/session.txt"

"$PY" - "$PACK" runs/paper-gpu runs/data_size-gpu runs/paper-adam32-gpu <<'EOF'
"""Pack sweep folders into tar files of at most 15 MiB: tables first, then checkpoints."""
import sys
import tarfile
from pathlib import Path

pack, folders = Path(sys.argv[1]), [Path(f) for f in sys.argv[2:] if Path(f).is_dir()]
limit, most = 15 * 2**20, int(__import__("os").environ.get("PACK_FILES", "4"))
files = [p for f in folders for p in sorted(f.rglob("*")) if p.is_file()]
files += [p for f in folders for p in sorted(f.parent.glob(f.name + ".job*.log"))]
files = [p for p in files if not p.name.startswith(".") and p.suffix != ".tmp"]  # partial
small = [p for p in files if p.suffix != ".pt" and not p.parent.name == "data"]
checkpoints = sorted((p for p in files if p.suffix == ".pt"), key=lambda p: p.stat().st_size)
groups, left_out = [small], []
for p in checkpoints:
    if sum(q.stat().st_size for q in groups[-1]) + p.stat().st_size > limit:
        if len(groups) == most:
            left_out.append(p)
            continue
        groups.append([])
    groups[-1].append(p)
for i, group in enumerate(groups):
    with tarfile.open(pack / f"part{i}.tar", "w") as tar:
        for p in group:
            tar.add(p)
lines = [f"part{i}.tar: {len(g)} files" for i, g in enumerate(groups)]
lines += [f"left out (size): {p} ({p.stat().st_size} bytes)" for p in left_out]
(pack / "manifest.txt").write_text("\n".join(lines) + "\n")
print("\n".join(lines[:len(groups)]), f"\n{len(left_out)} checkpoints left out")
EOF
