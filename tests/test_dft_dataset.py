"""The shipped DFT reference set (datasets/dft/) is what its README and fit files say.

No CP2K here: these read the committed files and check them against each other, so a
regenerated or hand-edited set that breaks a promise (frame count, sums, the fit, the
input structures) fails.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest

from toolkit.data import read_frames

DATASET = Path(__file__).resolve().parents[1] / "datasets" / "dft"
SYSTEMS = ("Ar32", "Kr32", "Ar16Kr16")


@pytest.fixture(scope="module", params=SYSTEMS)
def system(request):
    name = request.param
    return name, read_frames(DATASET / f"{name}.extxyz"), json.loads(
        (DATASET / f"{name}.fit.json").read_text())


def test_at_least_50_frames_of_32_atoms_made_from_the_shipped_structures(system):
    name, frames, info = system
    structures = read_frames(DATASET / "structures" / f"{name}.extxyz")
    assert len(frames) >= 50 and info["fit"]["n_frames"] == len(frames)
    for atoms in frames:
        assert len(atoms) == 32
        source = structures[atoms.info["dft_frame"]]
        assert source.get_chemical_symbols() == atoms.get_chemical_symbols()
        np.testing.assert_allclose(atoms.positions, source.positions, atol=1e-8)
        np.testing.assert_allclose(atoms.cell.array, source.cell.array, atol=1e-8)


def test_local_energies_sum_to_the_dft_total_and_follow_the_stored_fit(system):
    _, frames, info = system
    slope, intercept = info["fit"]["slope"], info["fit"]["intercept"]
    for atoms in frames:
        local = atoms.arrays["local_energy"]
        assert abs(local.sum() - atoms.info["energy"]) < 1e-8
        assert abs(atoms.arrays["basin_energy"].sum() - atoms.info["electrostatic_energy"]) < 0.01
        expected = ((1.0 + slope) * atoms.arrays["basin_energy"] + intercept
                    + atoms.info["fit_residual"] / len(atoms))
        np.testing.assert_allclose(local, expected, atol=1e-8)
        assert np.all(np.abs(atoms.arrays["basin_electrons"] - 8.0) < 0.02)
        assert np.all(np.isfinite(atoms.arrays["forces"]))


def test_stored_fit_is_the_least_squares_line_of_the_frames(system):
    _, frames, info = system
    natoms = len(frames[0])
    x = np.array([a.info["electrostatic_energy"] for a in frames]) / natoms
    y = np.array([a.info["energy"] for a in frames]) / natoms - x
    design = np.column_stack([x - x.mean(), np.ones_like(x)])
    (slope, level), *_ = np.linalg.lstsq(design, y, rcond=None)
    residual = y - design @ np.array([slope, level])
    assert slope == pytest.approx(info["fit"]["slope"], abs=1e-6)
    assert level - slope * x.mean() == pytest.approx(info["fit"]["intercept"], abs=1e-3)
    assert np.sqrt(np.mean(residual**2)) == pytest.approx(info["fit"]["rmse"], rel=1e-5)
    assert info["fit"]["rmse"] < 1e-3  # eV/atom; the README's table quotes 0.36-0.78 meV


def test_pure_aligned_mixture_moves_energy_between_species_only():
    shared = read_frames(DATASET / "Ar16Kr16.extxyz")
    aligned = read_frames(DATASET / "Ar16Kr16.pure_aligned.extxyz")
    pure = {s: np.concatenate([a.arrays["local_energy"]
                               for a in read_frames(DATASET / f"{s}32.extxyz")]).mean()
            for s in ("Ar", "Kr")}
    for a, b in zip(shared, aligned, strict=True):
        assert a.info["energy"] == pytest.approx(b.info["energy"], abs=1e-9)
        assert b.arrays["local_energy"].sum() == pytest.approx(b.info["energy"], abs=1e-8)
        symbols = np.array(a.get_chemical_symbols())
        for s in ("Ar", "Kr"):  # a constant per species and frame
            shift = b.arrays["local_energy"][symbols == s] - a.arrays["local_energy"][symbols == s]
            assert np.ptp(shift) < 1e-9
    local = np.concatenate([a.arrays["local_energy"] for a in aligned])
    symbols = np.concatenate([a.get_chemical_symbols() for a in aligned])
    for s in ("Ar", "Kr"):
        # equal up to the per-frame centring that keeps the totals (1.2 meV here)
        assert local[symbols == s].mean() == pytest.approx(pure[s], abs=2e-3)


def test_extending_the_structures_in_steps_equals_extending_once(tmp_path, monkeypatch):
    """More frames than shipped come from one seed-8 MD run, never from a restarted one."""
    import importlib.util
    import shutil

    spec = importlib.util.spec_from_file_location("make_dataset", DATASET / "make_dataset.py")
    make_dataset = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_dataset)
    shipped = DATASET / "structures" / "Ar32.extxyz"
    (tmp_path / "structures").mkdir()
    monkeypatch.setattr(make_dataset, "HERE", tmp_path)
    shutil.copy(shipped, tmp_path / "structures" / "Ar32.extxyz")
    make_dataset.structures("Ar32", "Ar", 52)
    stepwise = make_dataset.structures("Ar32", "Ar", 54)
    shutil.copy(shipped, tmp_path / "structures" / "Ar32.extxyz")
    at_once = make_dataset.structures("Ar32", "Ar", 54)
    assert len(stepwise) == len(at_once) == 54
    for a, b in zip(stepwise, at_once, strict=True):
        np.testing.assert_array_equal(a.positions, b.positions)
    new = [a.positions for a in at_once[50:]]
    assert all(np.abs(p - q).max() > 0.5 for p, q in itertools.combinations(new, 2))
