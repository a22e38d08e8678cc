"""`aetk evaluate` under mpirun -np 2 (frames shared out, and domain decomposition) == serial."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from toolkit.data import write_frames
from toolkit.evaluation import read_per_atom_table
from toolkit.models.fitting import FitConfig, fit_potential
from toolkit.models.training import TrainingSettings

pytestmark = pytest.mark.mpi


def test_two_ranks_equal_serial(tmp_path, arkr_lj_frames):
    data = tmp_path / "arkr.extxyz"
    write_frames(data, arkr_lj_frames)
    potential, _ = fit_potential(FitConfig(data, (6, 4), "tanh", seed=2,
                                           training=TrainingSettings(max_iterations=20)),
                                 tmp_path / "pot", progress=False)
    bin_dir = Path(sys.executable).parent

    def evaluate(out, np_, mode):
        command = [str(bin_dir / "aetk"), "evaluate", "--potential", str(potential.directory),
                   "--data", str(data), "--out", str(out), "--mode", mode, "--quiet"]
        if np_ > 1:
            command = [str(bin_dir / "mpirun"), "-np", str(np_)] + command
        subprocess.run(command, check=True, capture_output=True, timeout=300)
        return read_per_atom_table(out.with_suffix(".atoms.csv")), json.loads(out.read_text())

    serial, serial_json = evaluate(tmp_path / "serial.json", 1, "frames")
    for mode in ("frames", "domain"):
        got, got_json = evaluate(tmp_path / f"mpi-{mode}.json", 2, mode)
        assert got_json["ranks"] == 2
        difference = np.abs(got["predicted_local_energy"].astype(float)
                            - serial["predicted_local_energy"].astype(float))
        assert difference.max() < 1e-10, mode
        assert np.array_equal(got["species"], serial["species"])
        assert abs(got_json["metrics"]["total"]["r2"]
                   - serial_json["metrics"]["total"]["r2"]) < 1e-9
