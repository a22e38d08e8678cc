"""Classical reference data: sums, forces, determinism, the hand-runnable input."""

from __future__ import annotations

import filecmp
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from toolkit.data import read_frames
from toolkit.reference.classical import (
    ClassicalRun,
    evaluate_reference,
    generate_frames,
    input_text,
)


@pytest.mark.parametrize("fixture", ["arkr_lj_frames", "arkr_atm_frames"])
def test_local_energies_sum_to_total(fixture, request):
    frames = request.getfixturevalue(fixture)
    for atoms in frames:
        assert abs(atoms.arrays["local_energy"].sum() - atoms.info["energy"]) < 1e-8


def test_mixture_has_both_species_in_equal_parts(arkr_lj_frames):
    symbols = arkr_lj_frames[0].get_chemical_symbols()
    assert symbols.count("Ar") == symbols.count("Kr") == 54


def test_atm_is_a_genuine_many_body_term(arkr_atm_frames):
    """LJ+ATM frames relabelled with LJ alone change energy by the ATM part (not zero)."""
    lj_only = evaluate_reference(arkr_atm_frames, "lj")
    diff = [a.info["energy"] - b.info["energy"] for a, b in zip(arkr_atm_frames, lj_only,
                                                                 strict=True)]
    per_atom = np.abs(diff) / len(arkr_atm_frames[0])
    # triple-dipole term in dense rare-gas liquids: repulsive, ~1e-4..1e-3 eV/atom
    assert np.all(np.array(diff) > 0)
    assert np.all((per_atom > 2e-5) & (per_atom < 5e-3))


@pytest.mark.parametrize("reference", ["lj", "lj+atm"])
def test_forces_match_finite_differences(reference, arkr_lj_frames):
    atoms = arkr_lj_frames[0]
    labelled = evaluate_reference([atoms], reference)[0]
    h = 1e-4
    worst = 0.0
    for i in (0, 60, 107):
        for axis in range(3):
            plus, minus = atoms.copy(), atoms.copy()
            plus.positions[i, axis] += h
            minus.positions[i, axis] -= h
            ep, em = (f.info["energy"] for f in evaluate_reference([plus, minus], reference))
            numeric = -(ep - em) / (2 * h)
            worst = max(worst, abs(numeric - labelled.arrays["forces"][i, axis]))
    assert worst < 1e-6, f"max |F_fd - F| = {worst:.2e} eV/A"


def test_reference_relabelling_reproduces_generation(arkr_lj_frames):
    again = evaluate_reference(arkr_lj_frames, "lj")
    for a, b in zip(arkr_lj_frames, again, strict=True):
        assert abs(a.info["energy"] - b.info["energy"]) < 1e-9
        np.testing.assert_allclose(a.arrays["local_energy"], b.arrays["local_energy"],
                                   rtol=0, atol=1e-10)
        np.testing.assert_allclose(a.arrays["forces"], b.arrays["forces"], rtol=0, atol=1e-10)


def test_same_seed_same_file_byte_for_byte(tmp_path):
    def cli(out, seed):
        subprocess.run(
            [sys.executable, "-m", "toolkit.cli", "generate", "--system", "Kr", "--frames", "3",
             "--seed", str(seed), "--atoms", "32", "--every", "20", "--quiet", "--out", str(out)],
            check=True,
        )

    cli(tmp_path / "a.extxyz", 5)
    cli(tmp_path / "b.extxyz", 5)
    cli(tmp_path / "c.extxyz", 6)
    assert filecmp.cmp(tmp_path / "a.extxyz", tmp_path / "b.extxyz", shallow=False)
    assert not filecmp.cmp(tmp_path / "a.extxyz", tmp_path / "c.extxyz", shallow=False)
    frames = read_frames(tmp_path / "a.extxyz")
    assert len(frames) == 3 and len(frames[0]) == 32
    assert (tmp_path / "a.lmp").is_file()


def test_written_input_runs_by_hand_with_lmp(tmp_path):
    """The input a user gets is complete: `lmp -in` runs it and dumps frames."""
    run = ClassicalRun("ArKr", "lj+atm", n_frames=2, seed=3, natoms=32, every=10,
                       melt_steps=20, equilibration_steps=20)
    (tmp_path / "in.lmp").write_text(input_text(run, dump_file="frames.dump"))
    lmp = Path(sys.executable).parent / "lmp"
    result = subprocess.run([str(lmp), "-in", "in.lmp", "-log", "none"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    dump = (tmp_path / "frames.dump").read_text()
    assert dump.count("ITEM: TIMESTEP") == 3  # steps 0, 10, 20


def test_atom_count_must_fit_the_lattice():
    with pytest.raises(ValueError, match="4 n\\^3"):
        ClassicalRun("Ar", natoms=100)


def test_liquid_is_not_a_crystal(arkr_lj_frames):
    """Mean-squared displacement between first and last frame well above lattice vibration."""
    from toolkit.reference.classical import ClassicalRun  # noqa: F401

    frames = generate_frames(ClassicalRun("Ar", n_frames=2, seed=4, every=2500,
                                          melt_steps=500, equilibration_steps=500),
                             progress=False)
    a, b = frames
    d = b.positions - a.positions
    d -= np.round(d / a.cell.lengths()) * a.cell.lengths()
    assert np.mean(np.sum(d**2, axis=1)) > 2.0  # A^2 over 5 ps: liquid diffusion
