"""CP2K single points, resumable frame runs, the correlation fit and local energies.

The CP2K tests run the real program on 3 Ar atoms in a 6.5 A box without vdW, at 120 Ry
(~1.5 s per frame with its basins on one core) and at 200 Ry where forces are checked; they
are skipped only when cp2k.psmp is missing."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms

from toolkit.data import read_frames, validate_frames
from toolkit.reference.dft import (
    BOHR,
    CLAIM,
    DONE,
    FAILED,
    HARTREE,
    DftJob,
    DftSettings,
    Launcher,
    _write_structures,
    claim_frame,
    frame_dir,
    input_text,
    release_frame,
    run_dft,
    run_single_point,
)
from toolkit.reference.local_energy import (
    CorrelationFit,
    fit_correlation,
    local_energies,
    partition_command,
)

needs_cp2k = pytest.mark.skipif(
    shutil.which("cp2k.psmp") is None,
    reason="cp2k.psmp not on PATH (apt-get install cp2k, or make setup)",
)
# A coarse grid for the tests of bookkeeping (claims, resumes, records, partitions): at 120 Ry
# a 3-atom frame takes half the time of 200 Ry and its basins still hold 24 electrons to
# 2e-3. Forces need the finer grid: at 120 Ry the egg-box error breaks momentum conservation
# by 30 % of the largest force (measured), so the units-and-forces test uses FORCES.
FAST = DftSettings(cutoff=120.0, rel_cutoff=30.0, vdw=None)
FORCES = DftSettings(cutoff=200.0, rel_cutoff=40.0, vdw=None)
ONE_CORE = Launcher(np=1, omp_threads=1)
JOB = DftJob(FAST, ONE_CORE)


def tiny_argon(shift: float = 0.0) -> Atoms:
    """Three Ar atoms at liquid-like distances in a 6.5 A periodic box."""
    positions = np.array([(0.4, 0.5, 0.6), (3.9, 0.9, 0.3), (2.0, 3.6, 1.1)])
    positions[0, 0] += shift
    return Atoms("Ar3", positions=positions, cell=[6.5, 6.5, 6.5], pbc=True)


# -- no CP2K needed ------------------------------------------------------------------------
def test_input_text_carries_every_setting():
    text = input_text(tiny_argon(), DftSettings())
    assert "CUTOFF 600" in text and "REL_CUTOFF 60" in text
    assert "TYPE RVV10" in text and "PARAMETERS 6.3 0.0093" in text
    assert "POTENTIAL GTH-PBE-q8" in text and "BASIS_SET DZVP-MOLOPT-SR-GTH" in text
    assert "ABC 6.500000000000 6.500000000000 6.500000000000" in text
    assert text.count("\n      Ar ") == 3
    assert "{{" not in text
    assert "VDW_POTENTIAL" not in input_text(tiny_argon(), FAST)
    assert "CUTOFF 120" in input_text(tiny_argon(), FAST)
    assert "CUTOFF 200" in input_text(tiny_argon(), FORCES)
    skewed = tiny_argon()
    skewed.cell[1, 0] = 0.5
    with pytest.raises(ValueError, match="orthorhombic"):
        input_text(skewed, FAST)
    with pytest.raises(ValueError, match="vdw"):
        DftSettings(vdw="D3")


def test_launcher_uses_open_mpi_not_the_venv_mpich():
    assert Launcher(np=1, cp2k="/x/cp2k.psmp").command(None)[0] == "/x/cp2k.psmp"
    command = Launcher(np=2, cp2k="/x/cp2k.psmp", mpirun="/usr/bin/mpirun.openmpi").command(None)
    assert command[0] == "/usr/bin/mpirun.openmpi" and command[command.index("-np") + 1] == "2"
    env = Launcher(omp_threads=3, extra_env={"A": "1"}).environment()
    assert env["OMP_NUM_THREADS"] == "3" and env["A"] == "1"


def test_fit_recovers_a_line_and_local_energies_sum_to_totals():
    rng = np.random.default_rng(0)
    natoms = 4
    e_es = -800.0 * natoms + rng.normal(scale=0.5, size=10)
    total = e_es + (-0.05 * e_es / natoms + 2.0) * natoms
    fit = fit_correlation(total, e_es, natoms)
    assert fit.slope == pytest.approx(-0.05, abs=1e-9)
    assert fit.intercept == pytest.approx(2.0, abs=1e-6)
    assert fit.rmse < 1e-9 and fit.r2 == pytest.approx(1.0)
    basins = e_es[0] / natoms + np.array([0.3, -0.1, -0.4, 0.2])
    local = local_energies(basins, total[0] + 0.004, fit)
    assert local.sum() == pytest.approx(total[0] + 0.004, abs=1e-9)
    # differences between atoms are the basin differences scaled by (1 + slope)
    np.testing.assert_allclose(np.diff(local), 0.95 * np.diff(basins), atol=1e-12)
    noisy = fit_correlation(total + rng.normal(scale=0.004, size=10), e_es, natoms)
    assert 1e-4 < noisy.rmse < 4e-3
    with pytest.raises(ValueError, match="at least 3"):
        fit_correlation(total[:2], e_es[:2], natoms)
    with pytest.raises(ValueError, match="basins"):
        local_energies(basins[:3], total[0], fit)


def test_species_offsets_move_energy_between_species_not_the_total():
    fit = CorrelationFit(slope=-1.2, intercept=-700.0, rmse=0.0, r2=1.0, n_frames=3, natoms=4)
    basins = np.array([-762.0, -762.1, -635.4, -635.5])
    symbols = ["Ar", "Ar", "Kr", "Kr"]
    plain = local_energies(basins, -2140.0, fit)
    shifted = local_energies(basins, -2140.0, fit, symbols, {"Ar": -50.0, "Kr": 50.0})
    assert shifted.sum() == pytest.approx(-2140.0, abs=1e-9)
    np.testing.assert_allclose(shifted - plain, [-50.0, -50.0, 50.0, 50.0], atol=1e-12)
    with pytest.raises(ValueError, match="every species"):
        local_energies(basins, -2140.0, fit, symbols, {"Ar": 1.0})


def test_resume_refuses_other_settings(tmp_path):
    (tmp_path / "settings.json").write_text(json.dumps({**FAST.__dict__, "cutoff": 300.0}))
    with pytest.raises(ValueError, match="cutoff"):
        run_dft([], tmp_path, DftJob(FAST), progress=False)


# -- real CP2K -----------------------------------------------------------------------------
@pytest.mark.slow
@needs_cp2k
def test_single_point_components_units_and_forces(tmp_path):
    """Printed components add up to the total; forces (eV/A) match a central difference
    of the total energy (eV) to 2 %, which checks the Hartree/bohr conversion."""
    h = 0.01  # A
    result = run_single_point(tiny_argon(), tmp_path / "0", FORCES, ONE_CORE)
    comps = result["components_hartree"]
    parts = ("overlap", "self", "core_hamiltonian", "hartree", "xc")
    assert sum(comps[k] for k in parts) == pytest.approx(comps["total"], abs=1e-9)
    assert result["energy_hartree"] == pytest.approx(comps["total"], abs=1e-9)
    assert result["energy"] == pytest.approx(comps["total"] * HARTREE, rel=1e-12)
    assert result["n_electrons"] == 24
    assert result["kinds"]["Ar"] == {"count": 3, "core_alpha": 3.125, "zeff": 8.0}
    forces = np.array(result["forces"])
    assert forces.shape == (3, 3)
    # momentum conservation, up to the egg-box error of a coarse 200 Ry grid
    assert np.abs(forces.sum(axis=0)).max() < 0.03 * np.abs(forces).max()
    plus = run_single_point(tiny_argon(+h), tmp_path / "p", FORCES, ONE_CORE)["energy"]
    minus = run_single_point(tiny_argon(-h), tmp_path / "m", FORCES, ONE_CORE)["energy"]
    finite_difference = -(plus - minus) / (2 * h)
    assert abs(forces[0, 0]) > 0.02  # a force worth checking
    assert finite_difference == pytest.approx(forces[0, 0], rel=0.02, abs=2e-3)
    # the same number in Hartree/bohr would be off by HARTREE / BOHR ~ 51
    assert abs(finite_difference - forces[0, 0] * BOHR / HARTREE) > 0.5 * abs(forces[0, 0])


@pytest.fixture(scope="module")
def dft_run(tmp_path_factory):
    """Three tiny frames through run_dft (CP2K + Bader), once for the tests below (three:
    the fewest a partition fit takes)."""
    if shutil.which("cp2k.psmp") is None:
        pytest.skip("cp2k.psmp not on PATH (apt-get install cp2k, or make setup)")
    out = tmp_path_factory.mktemp("dft") / "Ar3"
    frames = [tiny_argon(s) for s in (0.0, 0.08, -0.06)]
    summary = run_dft(frames, out, JOB, progress=False)
    return out, frames, summary


@pytest.mark.slow
def test_run_dft_writes_frames_and_resumes(dft_run):
    out, frames, summary = dft_run
    assert summary.computed == [0, 1, 2] and not summary.failed
    for index in range(3):
        workdir = frame_dir(out, index)
        assert (workdir / DONE).is_file()
        basins = json.loads((workdir / "basins.json").read_text())
        assert sum(basins["basin_electrons"]) == pytest.approx(24.0, abs=2e-3)
        assert not list(workdir.glob("*.cube"))  # reduced to basins.json, then removed
    stamp = (frame_dir(out, 2) / "cp2k.out").stat().st_mtime_ns
    again = run_dft(frames, out, JOB, progress=False)
    assert again.skipped == [0, 1, 2] and again.computed == []
    assert (frame_dir(out, 2) / "cp2k.out").stat().st_mtime_ns == stamp
    moved = [frames[0], frames[2], frames[1]]
    with pytest.raises(ValueError, match="different structure"):
        run_dft(moved, out, JOB, progress=False)


@pytest.mark.slow
@needs_cp2k
def test_failing_frame_is_retried_once_and_reported(tmp_path):
    broken = DftSettings(cutoff=120.0, rel_cutoff=30.0, vdw=None, basis_set="NO-SUCH-BASIS")
    summary = run_dft([tiny_argon()], tmp_path, DftJob(broken, ONE_CORE), progress=False)
    assert list(summary.failed) == [0] and summary.computed == []
    assert "2 attempts" in summary.failed[0]
    assert (frame_dir(tmp_path, 0) / FAILED).is_file()
    assert not (frame_dir(tmp_path, 0) / DONE).exists()


@pytest.mark.slow
def test_partition_gives_local_energies_that_sum_to_dft_totals(dft_run, tmp_path):
    out, frames, _ = dft_run
    target = tmp_path / "Ar3.extxyz"
    fit = partition_command(out, target)
    assert isinstance(fit, CorrelationFit) and fit.n_frames == 3 and fit.natoms == 3
    labelled = read_frames(target)
    validate_frames(labelled, target, require=("energy", "forces", "local_energy"))
    info = json.loads(target.with_suffix(".fit.json").read_text())
    assert info["fit"]["slope"] == pytest.approx(fit.slope)
    assert target.with_suffix(".correlation.png").stat().st_size > 1000
    assert target.with_suffix(".correlation.pdf").is_file()
    for atoms in labelled:
        index = atoms.info["dft_frame"]
        result = json.loads((frame_dir(out, index) / "result.json").read_text())
        assert atoms.info["energy"] == pytest.approx(result["energy"], abs=1e-9)
        np.testing.assert_allclose(atoms.arrays["forces"], result["forces"], atol=1e-9)
        local = atoms.arrays["local_energy"]
        assert local.sum() == pytest.approx(atoms.info["energy"], abs=1e-8)
        basin = atoms.arrays["basin_energy"]
        assert basin.sum() == pytest.approx(atoms.info["electrostatic_energy"], abs=1e-8)
        expected = ((1 + fit.slope) * basin + fit.intercept
                    + atoms.info["fit_residual"] / len(atoms))
        np.testing.assert_allclose(local, expected, atol=1e-9)
        np.testing.assert_allclose(atoms.arrays["basin_electrons"], 8.0, atol=0.05)


@pytest.mark.slow
@needs_cp2k
def test_cli_entry_points(tmp_path):
    """dft_command reads an extxyz and runs it; partition_command needs 3+ frames."""
    from toolkit.data import write_frames
    from toolkit.reference.dft import dft_command

    data = tmp_path / "frames.extxyz"
    write_frames(data, [tiny_argon()])
    job = DftJob(FAST)
    summary = dft_command(data, tmp_path / "dft", job, progress=False)
    assert summary.computed == [0]
    assert "CUTOFF 120" in (frame_dir(tmp_path / "dft", 0) / "cp2k.inp").read_text()
    assert dft_command(data, tmp_path / "dft", job, progress=False).skipped == [0]
    with pytest.raises(ValueError, match="at least 3 frames"):
        partition_command(tmp_path / "dft", tmp_path / "out.extxyz")


def test_frame_claims_are_exclusive_and_dead_claims_are_taken_over(tmp_path):
    workdir = tmp_path / "frame_00000"
    assert claim_frame(workdir)
    assert not claim_frame(workdir)  # held by this (live) process
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        (workdir / CLAIM).write_text(f"{socket.gethostname()} {sleeper.pid}\n")
        assert not claim_frame(workdir)  # a live worker keeps its frame
    finally:
        sleeper.kill()
        sleeper.wait()
    assert claim_frame(workdir)  # its process is gone: the claim is stale
    host, pid, start = (workdir / CLAIM).read_text().split()
    assert (host, pid) == (socket.gethostname(), str(os.getpid())) and start.isdigit()
    (workdir / CLAIM).write_text("some-other-host 1 5\n")
    assert not claim_frame(workdir)  # another host's claim cannot be checked, so it stands
    release_frame(workdir)
    assert (workdir / CLAIM).exists()  # releasing leaves another worker's claim alone
    # a dead worker's pid reused by a live process (here: this one) with another start time
    (workdir / CLAIM).write_text(f"{host} {pid} {int(start) + 1}\n")
    assert claim_frame(workdir)
    release_frame(workdir)
    assert not (workdir / CLAIM).exists()  # our own claim is released
    (workdir / CLAIM).write_text("")  # left by a worker killed before claims were atomic
    assert claim_frame(workdir)


def test_structures_record_never_shrinks_and_refuses_other_input(tmp_path):
    frames = [tiny_argon(s) for s in (0.0, 0.1, 0.2)]
    _write_structures(tmp_path, frames)
    _write_structures(tmp_path, frames[:2])  # a shorter run next to a longer one
    assert len(read_frames(tmp_path / "frames.extxyz")) == 3
    _write_structures(tmp_path, frames + [tiny_argon(0.3)])  # a longer run extends it
    assert len(read_frames(tmp_path / "frames.extxyz")) == 4
    with pytest.raises(ValueError, match="use a new --out"):
        _write_structures(tmp_path, [tiny_argon(0.05)])


@pytest.mark.slow
@needs_cp2k
def test_workers_sharing_a_directory_skip_claimed_frames(tmp_path):
    frames = [tiny_argon(s) for s in (0.0, 0.1)]
    claim = frame_dir(tmp_path, 0) / CLAIM
    claim.parent.mkdir(parents=True)
    claim.write_text("some-other-host 1\n")  # another worker is computing frame 0
    summary = run_dft(frames, tmp_path, JOB, progress=False)
    assert summary.busy == [0] and summary.computed == [1]
    assert "1 being computed by other workers" in str(summary)
    assert not (frame_dir(tmp_path, 1) / CLAIM).exists()  # released when done
    claim.unlink()  # that worker finished or was cleaned up
    again = run_dft(frames[:1], tmp_path, JOB, progress=False)
    assert again.computed == [0] and not again.busy
    # a shorter input does not shrink the record of structures that frame 1 needs
    assert len(read_frames(tmp_path / "frames.extxyz")) == 2


def _synthetic_records(composition: dict[str, int], n_frames: int, slopes, intercepts, seed):
    """Records whose totals follow a known per-species map exactly (plus tiny noise)."""
    from toolkit.reference.local_energy import DftFrameRecord

    rng = np.random.default_rng(seed)
    symbols = [s for s, n in composition.items() for _ in range(n)]
    records = []
    base = {"Ar": -762.0, "Kr": -635.0}
    for k in range(n_frames):
        basins = np.array([base[s] for s in symbols]) + rng.normal(scale=0.02, size=len(symbols))
        total = sum((1 + slopes[s]) * basins[i] + intercepts[s] for i, s in enumerate(symbols))
        atoms = Atoms(symbols, positions=rng.uniform(0, 10, (len(symbols), 3)),
                      cell=[10, 10, 10], pbc=True)
        records.append(DftFrameRecord(k, atoms, float(total), np.zeros((len(symbols), 3)),
                                      float(basins.sum()), basins, np.full(len(symbols), 8.0),
                                      np.full(len(symbols), 8.0), 0.0, {}))
    return records


def test_joint_map_recovers_per_species_slopes_and_intercepts():
    from toolkit.reference.dft.cp2k import DftError
    from toolkit.reference.local_energy import fit_joint

    slopes, intercepts = {"Ar": -1.18, "Kr": -1.27}, {"Ar": -711.4, "Kr": -671.3}
    systems = {"Ar4": {"Ar": 4}, "Kr4": {"Kr": 4}, "Ar2Kr2": {"Ar": 2, "Kr": 2},
               "Ar3Kr1": {"Ar": 3, "Kr": 1}}
    records = {name: _synthetic_records(c, 12, slopes, intercepts, seed=k)
               for k, (name, c) in enumerate(systems.items())}
    joint = fit_joint(records)
    for e in ("Ar", "Kr"):
        assert joint.slopes[e] == pytest.approx(slopes[e], abs=1e-8)
        assert joint.intercepts[e] == pytest.approx(intercepts[e], abs=1e-5)
    assert joint.rmse < 1e-9
    # per-species standard errors, frames independent and correlated: both tiny here
    for e in ("Ar", "Kr"):
        assert 0 < joint.slope_stderr_newey_west[e] < 1e-6
        assert 0 < joint.intercept_stderr_newey_west[e] < 1e-3
    record = records["Ar2Kr2"][0]
    symbols = record.atoms.get_chemical_symbols()
    local = joint.local_energies(record.basin_energies, symbols, record.energy + 0.004)
    assert local.sum() == pytest.approx(record.energy + 0.004, abs=1e-9)
    # one mixture alone cannot split its intercept between Ar and Kr
    with pytest.raises(DftError, match="do not determine"):
        fit_joint({"Ar2Kr2": records["Ar2Kr2"]})


def test_total_against_e_es_has_the_same_residuals_and_an_honest_r2():
    from toolkit.reference.local_energy import total_against_electrostatic

    rng = np.random.default_rng(3)
    natoms = 32
    # the shipped Ar32 set's sizes: E_es/N spread ~10 meV, fit RMSE ~0.8 meV/atom
    e_es = -762.0 * natoms + rng.normal(scale=0.010 * natoms, size=40)
    total = e_es + (-1.18 * e_es / natoms - 711.0) * natoms + rng.normal(scale=0.0008 * natoms,
                                                                        size=40)
    paper = fit_correlation(total, e_es, natoms)
    honest = total_against_electrostatic(total, e_es, natoms)
    assert honest["rmse_eV_per_atom"] == pytest.approx(paper.rmse, rel=1e-9)
    assert honest["slope"] == pytest.approx(1.0 + paper.slope, abs=1e-9)
    # E_es on both axes inflates R2: the shared variable's spread lines the points up
    assert paper.r2 > 0.99 and honest["r2"] < 0.9


# -- the campaign: records, resumption on any machine, a killed worker ------------------------
def _campaign(root: Path, frames: int = 2):
    from toolkit.reference.dft.campaign import Campaign

    campaign = Campaign(root / "set", root / "work", systems=("Ar3",), target=frames,
                        frames_per_trajectory=frames, settings=FAST)
    (name,) = [t.name for t in campaign.trajectories("Ar3")]
    return campaign, name


@pytest.mark.slow
@needs_cp2k
def test_campaign_records_frames_and_a_fresh_machine_never_recomputes_them(tmp_path):
    from toolkit.reference.dft.campaign import compute, status

    campaign, name = _campaign(tmp_path)
    inputs = {"Ar3": {name: [tiny_argon(0.0), tiny_argon(0.11)]}}
    counts = compute(campaign, ONE_CORE, budget_min=10, log=lambda _: None, inputs=inputs)
    assert counts == {"Ar3": 2} and status(campaign)["Ar3"]["trajectories"][name] == "2/2"
    records = read_frames(campaign.records_path("Ar3"))
    assert [(a.info["trajectory"], a.info["trajectory_frame"]) for a in records] == [
        (name, 0), (name, 1)]
    assert np.abs(records[0].arrays["basin_electrons"].sum() - 24.0) < 2e-3
    # a fresh checkout: committed records, no work directories -> nothing is recomputed
    shutil.rmtree(campaign.work)
    again = compute(campaign, ONE_CORE, budget_min=10, log=lambda _: None, inputs=inputs)
    assert again == {"Ar3": 2} and not campaign.work.exists()
    assert read_frames(campaign.records_path("Ar3"))[1].info["energy"] == \
        records[1].info["energy"]


@pytest.mark.slow
@needs_cp2k
def test_worker_killed_mid_frame_loses_nothing_and_resumes(tmp_path):
    """kill -9 a worker (and its CP2K) after one frame is recorded; the rerun finishes the
    set, reuses the finished frame bit for bit, and takes the dead worker's claim over."""
    import os
    import signal
    import subprocess
    import sys
    import textwrap
    import time

    from toolkit.reference.dft.campaign import compute

    campaign, name = _campaign(tmp_path, frames=2)
    shifts = (0.0, 0.09)
    script = textwrap.dedent(f"""
        import numpy as np
        from pathlib import Path
        from ase import Atoms
        from toolkit.reference.dft.campaign import Campaign, compute
        from toolkit.reference.dft.cp2k import DftSettings, Launcher
        def tiny(shift):
            positions = np.array([(0.4, 0.5, 0.6), (3.9, 0.9, 0.3), (2.0, 3.6, 1.1)])
            positions[0, 0] += shift
            return Atoms("Ar3", positions=positions, cell=[6.5] * 3, pbc=True)
        campaign = Campaign(Path({str(campaign.root)!r}), Path({str(campaign.work)!r}),
                            systems=("Ar3",), target=2, frames_per_trajectory=2,
                            settings=DftSettings(cutoff=120.0, rel_cutoff=30.0, vdw=None))
        compute(campaign, Launcher(), 10, inputs={{"Ar3": {{{name!r}: [tiny(s) for s in
                                                 {shifts!r}]}}}})
    """)
    worker = subprocess.Popen([sys.executable, "-c", script], start_new_session=True,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    records = campaign.records_path("Ar3")
    deadline = time.time() + 240
    while time.time() < deadline and worker.poll() is None:
        if records.is_file() and len(read_frames(records)) >= 1:
            # the second frame's CP2K is (being) started: kill the worker in the middle
            time.sleep(0.2)
            break
        time.sleep(0.2)
    assert worker.poll() is None, "the worker finished before it could be killed"
    os.killpg(worker.pid, signal.SIGKILL)
    worker.wait()
    before = read_frames(records)
    assert len(before) == 1  # killed while the second frame was being computed
    counts = compute(campaign, ONE_CORE, budget_min=10, log=lambda _: None,
                     inputs={"Ar3": {name: [tiny_argon(s) for s in shifts]}})
    assert counts == {"Ar3": 2}
    after = read_frames(records)
    assert after[0].info["energy"] == before[0].info["energy"]
    np.testing.assert_array_equal(after[0].arrays["basin_energy"],
                                  before[0].arrays["basin_energy"])
    assert not list(campaign.work.glob("*/*/frame_*/CLAIM"))  # the dead claim was taken over


@pytest.mark.slow
@needs_cp2k
def test_isolated_atoms_are_one_basin_of_eight_electrons(tmp_path):
    from toolkit.reference.dft.campaign import Campaign, isolated_atoms

    campaign = Campaign(tmp_path / "set", tmp_path / "work", natoms=4, settings=FAST)
    records = isolated_atoms(campaign, ONE_CORE, box=6.5, log=lambda _: None)
    assert [r.labels["element"] for r in records] == ["Ar", "Kr"]
    for record in records:
        assert record.basin_electrons[0] == pytest.approx(8.0, abs=2e-3)
        assert record.basin_energies[0] == pytest.approx(record.electrostatic_energy, abs=1e-6)
    assert len(read_frames(tmp_path / "set" / "records" / "isolated.extxyz")) == 2


def _ar1(rng, n, rho):
    """n steps of a unit-variance AR(1) series with lag-1 correlation rho."""
    out = np.empty(n)
    out[0] = rng.normal()
    for k in range(1, n):
        out[k] = rho * out[k - 1] + np.sqrt(1 - rho**2) * rng.normal()
    return out


def test_newey_west_stderr_matches_the_spread_of_correlated_fits():
    """Frames along a trajectory with correlated E_es and residuals: the classical standard
    error of the slope is too small, the Newey-West one matches the slope's actual spread
    over many independent data sets; on independent frames the two agree."""
    from toolkit.reference.local_energy import correlation_stderr

    natoms, trajectories, length = 32, 8, 40
    groups = np.repeat(np.arange(trajectories), length)
    order = np.tile(np.arange(length), trajectories)
    for rho, lag, classical_low in ((0.0, 3, False), (0.7, 8, True)):
        rng = np.random.default_rng(11)
        slopes, classical, robust = [], [], []
        for _ in range(300):
            x = np.concatenate([_ar1(rng, length, rho) for _ in range(trajectories)])
            noise = np.concatenate([_ar1(rng, length, rho) for _ in range(trajectories)])
            e_es = natoms * (-762.0 + 0.010 * x)
            total = e_es + natoms * (-1.18 * e_es / natoms - 711.0 + 0.0008 * noise)
            slopes.append(fit_correlation(total, e_es, natoms).slope)
            err = correlation_stderr(total, e_es, natoms, groups, order, lag=lag)
            classical.append(err["slope_classical"])
            robust.append(err["slope_newey_west"])
        spread = np.std(slopes)
        assert np.mean(robust) == pytest.approx(spread, rel=0.2), (rho, np.mean(robust), spread)
        if classical_low:  # the correlated case: independent-frame errors understate it
            assert np.mean(classical) < 0.75 * spread
        else:
            assert np.mean(classical) == pytest.approx(spread, rel=0.1)


def test_newey_west_covariance_never_mixes_trajectories():
    from toolkit.reference.dft.cp2k import DftError
    from toolkit.reference.local_energy import newey_west_covariance

    rng = np.random.default_rng(5)
    design = np.column_stack([rng.normal(size=60), np.ones(60)])
    residual = rng.normal(size=60)
    groups, order = np.repeat([0, 1, 2], 20), np.tile(np.arange(20), 3)
    full = newey_west_covariance(design, residual, groups, order, lag=4)
    # rows in any order give the same result: positions come from ``order``
    shuffle = rng.permutation(60)
    assert np.allclose(newey_west_covariance(design[shuffle], residual[shuffle],
                                             groups[shuffle], order[shuffle], lag=4), full)
    # every row its own trajectory: no lag terms, White's covariance
    alone = newey_west_covariance(design, residual, np.arange(60), order, lag=4)
    assert np.allclose(alone, newey_west_covariance(design, residual, groups, order, lag=0))
    assert not np.allclose(alone, full)  # the lag terms within a trajectory count
    # the brute-force double sum, with frames missing from a trajectory: the weight follows
    # the positions' difference, not the rows'
    gappy = np.array([0, 1, 2, 9, 10, 14, 15, 16, 17, 30] * 6)
    gappy_groups = np.repeat(np.arange(6), 10)
    n, p = design.shape
    meat = np.zeros((p, p))
    for a in range(n):
        for b in range(n):
            steps = abs(gappy[a] - gappy[b])
            if gappy_groups[a] == gappy_groups[b] and steps <= 4:
                meat += (1 - steps / 5) * np.outer(design[a] * residual[a],
                                                   design[b] * residual[b])
    bread = np.linalg.inv(design.T @ design)
    np.testing.assert_allclose(
        newey_west_covariance(design, residual, gappy_groups, gappy, lag=4),
        bread @ meat @ bread * n / (n - p), rtol=1e-10)
    with pytest.raises(DftError, match="Newey-West"):
        newey_west_covariance(design, residual[:-1], groups, order)


def test_correlation_stderr_classical_is_the_textbook_formula():
    from toolkit.reference.local_energy import correlation_stderr

    rng = np.random.default_rng(2)
    natoms = 32
    e_es = natoms * (-762.0 + 0.01 * rng.normal(size=50))
    total = e_es + natoms * (-1.18 * e_es / natoms - 711.0 + 0.0008 * rng.normal(size=50))
    err = correlation_stderr(total, e_es, natoms, np.zeros(50), np.arange(50))
    x, fit = e_es / natoms, fit_correlation(total, e_es, natoms)
    s2 = fit.rmse**2 * 50 / 48
    sxx = np.sum((x - x.mean()) ** 2)
    assert err["slope_classical"] == pytest.approx(np.sqrt(s2 / sxx), rel=1e-9)
    assert err["intercept_classical"] == pytest.approx(
        np.sqrt(s2 * (1 / 50 + x.mean() ** 2 / sxx)), rel=1e-6)
    assert err["newey_west_lag"] == 3
