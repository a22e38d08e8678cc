#!/usr/bin/env bash
# Everything downstream of datasets/dft/records/ after the campaign has grown it
# (docs/dft.md; the order used for the shipped results):
#
#   scripts/dft_refresh.sh            # NP=2 ranks for the sweeps (default)
#
#   1. make_dataset.py --partition-only: per-system fits, joint map, isolated.json,
#      cost.json, figures, from every record there is
#   2. make_dataset.py --write-tables: datasets/dft/README.md's tables
#   3. the learning sweep (sweeps/dft_regime.toml) and its transfer, then its
#      last-parameters twin (sweeps/dft_regime_last.toml), into runs/dft-regime-F and
#      runs/dft-regime-last-F, F = the number of partitioned frames (a folder that exists
#      is resumed: finished cells are kept, an interrupted call can be rerun)
#   4. copies their small tables into results/dft_regime/ and results/dft_regime_last/,
#      renders results/dft_regime/tables.md and the docs/figures/dft_regime_*.png figures
#   5. with AR108=W/dft (the `aetk dft` folder of datasets/dft/paper_size/summarise.py, its
#      /usr/bin/time output in W/time.txt): datasets/dft/paper_size/Ar108.json, new maps
#
# CONFIG and LAST_CONFIG replace the two sweep configs (it was tried on a copy of the
# repository with two-width, two-seed sweeps; no test runs it). The campaign may go on: the
# partition and the README tables are made under the records' lock, so they see the same
# records.
#
# Then the prose: tests/test_docs.py and tests/test_dft_dataset.py name every table and
# number of the docs that no longer matches; docs/dft.md says what each one means.
set -euo pipefail
resolve() { [ -z "$1" ] || realpath -m "$1"; }  # paths given from anywhere, before the cd
CONFIG=$(resolve "${CONFIG:-}"); LAST_CONFIG=$(resolve "${LAST_CONFIG:-}")
AR108=$(resolve "${AR108:-}")
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
AETK=${AETK:-.venv/bin/aetk}
NP=${NP:-2}
MPIRUN=${MPIRUN:-.venv/bin/mpirun}  # the mpich of the venv (the system's may be another MPI)
run() { echo "+ $*" >&2; "$@"; }

if [ -n "$AR108" ] && [ ! -f "$(dirname "$AR108")/time.txt" ]; then
    echo "AR108=$AR108: no $(dirname "$AR108")/time.txt (the /usr/bin/time -v output of its" \
         "aetk dft run; datasets/dft/paper_size/summarise.py)" >&2
    exit 1
fi
# NP ranks of MPIRUN must be one MPI world for mpi4py, or every rank trains every cell
if ! "$MPIRUN" -np "$NP" "$PY" -c 'import sys; from mpi4py import MPI
sys.exit(MPI.COMM_WORLD.Get_size() != int(sys.argv[1]))' "$NP"; then
    echo "MPIRUN=$MPIRUN does not start one $NP-rank world for mpi4py; use the venv's" \
         "mpirun (.venv/bin/mpirun)" >&2
    exit 1
fi

mkdir -p datasets/dft/records  # the campaign's lock (toolkit/reference/dft/campaign.py)
run flock datasets/dft/records/.lock -c "'$PY' datasets/dft/make_dataset.py --partition-only \
    && '$PY' datasets/dft/make_dataset.py --write-tables"
FRAMES=$("$PY" - <<'EOF'
from pathlib import Path
from toolkit.data import read_frames
root = Path("datasets/dft")
print(sum(len(read_frames(root / f"{s}.extxyz"))
          for s in ("Ar32", "Kr32", "Ar16Kr16", "Ar24Kr8", "Ar8Kr24")))
EOF
)
echo "partitioned frames: $FRAMES" >&2
SWEEP=runs/dft-regime-$FRAMES
LAST=runs/dft-regime-last-$FRAMES
run "$MPIRUN" -np "$NP" "$AETK" sweep --config "${CONFIG:-sweeps/dft_regime.toml}" --out "$SWEEP" --quiet
run "$MPIRUN" -np "$NP" "$AETK" transfer --results "$SWEEP" --quiet
run "$MPIRUN" -np "$NP" "$AETK" sweep --config "${LAST_CONFIG:-sweeps/dft_regime_last.toml}" \
    --out "$LAST" --quiet

copy() {  # SWEEP RESULTS [transfer.csv] [cells]: the small tables only (no checkpoints)
    local from=$1 to=$2
    mkdir -p "$to"
    for f in config.json results.csv runs.jsonl data_sha256.json "${@:3}"; do
        if [ "$f" = cells ]; then
            rm -rf "$to/cells" && mkdir -p "$to/cells" && cp "$from"/cells/*.csv "$to/cells/"
        else
            cp "$from/$f" "$to/$f"
        fi
    done
}
copy "$SWEEP" results/dft_regime transfer.csv cells
copy "$LAST" results/dft_regime_last
run "$PY" scripts/dft_regime_tables.py results/dft_regime

FIGURES=$(mktemp -d)
trap 'rm -rf "$FIGURES"' EXIT
run "$AETK" report --results "$SWEEP" --out "$FIGURES"
for pair in fig8_local_r2:local_r2_aligned fig7_total_r2:total_r2 \
            gauge_local_r2_tanh:gauge_local_r2_tanh \
            fig10_transfer_local_r2:transfer_local_r2 \
            fig4_transfer_local_r2_gauge_tanh:transfer_local_r2_gauge_tanh; do
    cp "$FIGURES/${pair%%:*}.png" "docs/figures/dft_regime_${pair##*:}.png"
done

if [ -n "${AR108:-}" ]; then
    run "$PY" datasets/dft/paper_size/summarise.py "$AR108" "$(dirname "$AR108")/time.txt"
fi
echo "done: $FRAMES frames; now update the prose the tests name (make test)" >&2
