"""Transfer: assembled per-element networks, refusals, MPI batch and large-box evaluation."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms

from toolkit.data import write_frames
from toolkit.descriptors import DescriptorSpec
from toolkit.evaluation import predict, read_per_atom_table
from toolkit.models.fitting import FitConfig, fit_potential
from toolkit.models.potential import PotentialError
from toolkit.models.training import TrainingSettings
from toolkit.reference.classical import ClassicalRun, generate_frames
from toolkit.studies.sweep import read_config, run_sweep
from toolkit.studies.transfer import assemble, run_transfer

BIN = Path(sys.executable).parent
QUICK = TrainingSettings(max_iterations=20, patience=20)


def _frames(system, n=12, seed=3):
    return generate_frames(ClassicalRun(system, n_frames=n, seed=seed, melt_steps=300,
                                        equilibration_steps=300), progress=False)


@pytest.fixture(scope="module")
def pure(tmp_path_factory):
    """Pure Ar and pure Kr potentials (tanh 5), their frames, and a directory."""
    root = tmp_path_factory.mktemp("transfer")
    out = {"root": root}
    for system in ("Ar", "Kr"):
        frames = _frames(system)
        write_frames(root / f"{system}.extxyz", frames)
        out[system] = frames
        out[f"{system}_pot"], _ = fit_potential(FitConfig(root / f"{system}.extxyz", (5,), "tanh",
                                                          seed=1, training=QUICK),
                                                root / f"{system}-pot", progress=False)
    return out


def _separated(ar: Atoms, kr: Atoms, gap: float = 8.0) -> Atoms:
    """Ar liquid slab and Kr liquid slab in one box, more than a cutoff apart."""
    lx_ar, lx_kr = ar.cell[0, 0], kr.cell[0, 0]
    shifted = kr.positions + [lx_ar + gap, 0.0, 0.0]
    box = [lx_ar + lx_kr + 2 * gap, max(ar.cell[1, 1], kr.cell[1, 1]),
           max(ar.cell[2, 2], kr.cell[2, 2])]
    return Atoms(ar.get_chemical_symbols() + kr.get_chemical_symbols(),
                 positions=np.vstack([ar.positions, shifted]), cell=box, pbc=True)


def test_assembled_atoms_see_their_own_species_network(pure, tmp_path):
    combined = assemble({"Ar": pure["Ar_pot"].directory, "Kr": pure["Kr_pot"].directory},
                        tmp_path / "arkr")
    ar, kr = pure["Ar"][0], pure["Kr"][0]
    frame = _separated(ar, kr)
    n_ar = len(ar)
    ar_only, kr_only = frame[:n_ar], frame[n_ar:]
    assert 2 * DescriptorSpec().cutoff < 8.0 + 8.0  # the gap exceeds every cutoff
    got = predict(combined, [frame], progress=False).local_energy
    want_ar = predict(pure["Ar_pot"], [ar_only], progress=False).local_energy
    want_kr = predict(pure["Kr_pot"], [kr_only], progress=False).local_energy
    assert np.max(np.abs(got[:n_ar] - want_ar)) < 1e-10
    assert np.max(np.abs(got[n_ar:] - want_kr)) < 1e-10
    assert np.std(got) > 1e-4  # nontrivial energies, so the check can fail


def test_mismatched_inputs_are_refused(pure, tmp_path):
    with pytest.raises(PotentialError, match="no trained Kr network"):
        assemble({"Ar": pure["Ar_pot"].directory, "Kr": pure["Ar_pot"].directory},
                 tmp_path / "bad1")
    other, _ = fit_potential(FitConfig(pure["root"] / "Kr.extxyz", (7,), "tanh", training=QUICK),
                             tmp_path / "kr-wide", progress=False)
    with pytest.raises(PotentialError, match="differ in architecture"):
        assemble({"Ar": pure["Ar_pot"].directory, "Kr": other.directory}, tmp_path / "bad2")
    spec8 = DescriptorSpec(twojmax=4)
    other_spec, _ = fit_potential(FitConfig(pure["root"] / "Kr.extxyz", (5,), "tanh", spec=spec8,
                                            training=QUICK), tmp_path / "kr-spec", progress=False)
    with pytest.raises(PotentialError, match="different descriptor specs"):
        assemble({"Ar": pure["Ar_pot"].directory, "Kr": other_spec.directory},
                 tmp_path / "bad3")
    assert not (tmp_path / "bad1").exists()
    result = subprocess.run([str(BIN / "aetk"), "assemble", "--element",
                             f"Ar={pure['Ar_pot'].directory}", "--element",
                             f"Kr={pure['Ar_pot'].directory}", "--out", str(tmp_path / "x")],
                            capture_output=True, text=True)
    assert result.returncode == 2 and "Traceback" not in result.stderr


@pytest.mark.mpi
def test_large_box_domain_decomposition_equals_serial(pure, tmp_path):
    """Three frames repeated 3 x 3 x 3 (2,916 atoms each), serial vs 2 ranks."""
    data = tmp_path / "three.extxyz"
    write_frames(data, pure["Ar"][:3])
    potential = pure["Ar_pot"].directory

    def evaluate(out, ranks):
        command = [str(BIN / "aetk"), "evaluate", "--potential", str(potential), "--data",
                   str(data), "--replicate", "3", "--mode", "domain", "--out", str(out),
                   "--quiet"]
        if ranks > 1:
            command = [str(BIN / "mpirun"), "-np", str(ranks)] + command
        subprocess.run(command, check=True, capture_output=True, timeout=300)
        return read_per_atom_table(out.with_suffix(".atoms.csv"))

    serial = evaluate(tmp_path / "serial.json", 1)
    parallel = evaluate(tmp_path / "mpi.json", 2)
    assert len(serial["frame"]) == 3 * 108 * 27
    diff = np.abs(serial["predicted_local_energy"].astype(float)
                  - parallel["predicted_local_energy"].astype(float))
    assert diff.max() < 1e-10
    # replicas of one atom see the same environment: same energy
    first = serial["predicted_local_energy"][:108 * 27].astype(float).reshape(27, 108)
    assert np.max(np.abs(first - first[0])) < 1e-10


@pytest.mark.mpi
def test_transfer_study_serial_equals_two_ranks(pure, tmp_path):
    root = pure["root"]
    write_frames(root / "ArKr.extxyz", _frames("ArKr"))
    config = tmp_path / "t.toml"
    config.write_text(f"""
[sweep]
systems = ["Ar", "Kr", "ArKr"]
activations = ["tanh"]
depths = [1]
widths = [1, 4]
seeds = [0, 1]
[training]
max_iterations = 15
patience = 15
[data.files]
Ar = "{root / 'Ar.extxyz'}"
Kr = "{root / 'Kr.extxyz'}"
ArKr = "{root / 'ArKr.extxyz'}"
""")
    sweep = tmp_path / "sweep"
    run_sweep(read_config(config), sweep, progress=False)
    serial = run_transfer(sweep, progress=False)  # default: SWEEP/transfer.csv, for report
    subprocess.run([str(BIN / "mpirun"), "-np", "2", str(BIN / "aetk"), "transfer",
                    "--results", str(sweep), "--config", str(config), "--out",
                    str(tmp_path / "mpi.csv"), "--quiet"], check=True, capture_output=True,
                   timeout=300)
    a = list(csv.DictReader(open(serial)))
    b = list(csv.DictReader(open(tmp_path / "mpi.csv")))
    assert len(a) == 2 * 2 * 3  # widths x seeds x (pure->mix, mix->Ar, mix->Kr)
    for row_a, row_b in zip(a, b, strict=True):
        for key in row_a:
            if key in ("system", "direction", "activation") or row_a[key] in ("", "nan"):
                assert row_a[key] == row_b[key], key  # empty: no such atoms (lpr_Kr, pure Ar)
            else:
                assert abs(float(row_a[key]) - float(row_b[key])) < 1e-10, key
    gauge = [float(r["local_r2_gauge"]) for r in a]
    lpr = [float(r["lpr_Ar"]) for r in a if r["system"] != "Kr"]
    assert all(np.isfinite(g) and g <= 1.0 for g in gauge) and all(v > 0 for v in lpr)
    from toolkit.cli import main  # in process: the CLI itself is tested elsewhere

    assert main(["report", "--results", str(sweep), "--out", str(tmp_path / "fig")]) == 0
    assert (tmp_path / "fig" / "fig10_transfer_local_r2.pdf").is_file()
    # frames rewritten since the sweep (a repartitioned data set): its test frames are no
    # longer the sweep's, so transfer refuses in one line instead of scoring other frames
    original = (root / "ArKr.extxyz").read_text()
    try:
        write_frames(root / "ArKr.extxyz", _frames("ArKr", seed=4))
        from toolkit.studies.sweep import SweepConfigError

        with pytest.raises(SweepConfigError, match="differ from what the sweep was trained on"):
            run_transfer(sweep, tmp_path / "other.csv", progress=False)
    finally:
        (root / "ArKr.extxyz").write_text(original)
