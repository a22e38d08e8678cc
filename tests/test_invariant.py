"""Invariant points: equivalent atoms (every per-atom reference energy = E/N to 1e-10 eV),
LAMMPS and PyTorch agree on a potential's errors there, monitoring along training, sweep
columns, anchors, and bad input in one line."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from toolkit.data import read_frames, write_frames
from toolkit.descriptor_spec import DescriptorSpec
from toolkit.descriptors import DescriptorSession, compute_descriptors
from toolkit.models.networks import Architecture, SpeciesNetworks
from toolkit.models.potential import read_potential
from toolkit.models.training import TrainingSettings, train_ensemble
from toolkit.reference.lammps_reference import any_reference, label_frames
from toolkit.studies.invariant import (
    EQUIVALENCE_TOLERANCE,
    INVARIANT_COLUMNS,
    InvariantError,
    InvariantMonitor,
    assemble_points,
    evaluate_potential,
    invariant_points,
    invariant_structure,
    rank_correlation,
    run_invariant,
)

SI = DescriptorSpec(elements=("Si",))


@pytest.mark.parametrize("reference, elements, spec, grid", [
    ("lj", ["Ar", "Kr"], DescriptorSpec(), {"Ar": [3.3, 3.7, 4.1], "Kr": [3.6, 4.0, 4.4]}),
    ("lj+atm", ["Ar"], DescriptorSpec(), {"Ar": [3.3, 3.9]}),
    ("lammps:si-sw", ["Si"], SI, {"Si": [2.2, 2.35, 2.6]}),
    ("lammps:si-tersoff", ["Si"], SI, {"Si": [2.25, 2.45]}),
])
def test_every_atom_of_an_invariant_structure_carries_e_over_n(reference, elements, spec,
                                                               grid):
    grids = {e: np.array(v) for e, v in grid.items()}
    points = invariant_points(elements, spec, any_reference(reference), grids)
    structures = {r["structure"] for r in points.rows}
    assert {"fcc", "hcp", "bcc", "sc", "diamond", "isolated"} <= structures
    for atoms, row in zip(points.frames, points.rows, strict=True):
        local = atoms.arrays["local_energy"]
        symbols = np.array(atoms.get_chemical_symbols())
        if row["kind"] == "single":
            assert np.abs(local - atoms.info["energy"] / len(atoms)).max() \
                <= EQUIVALENCE_TOLERANCE
        else:  # CsCl: each sublattice equal, only the sum e_A + e_B = 2E/N is fixed
            for s in set(symbols):
                assert np.ptp(local[symbols == s]) <= EQUIVALENCE_TOLERANCE
            sums = sum(local[symbols == s].mean() for s in set(symbols))
            assert abs(sums - row["reference"]) < 1e-10
        if row["structure"] == "isolated":
            assert row["reference"] == 0.0 and len(atoms) == 1
        assert min(np.diag(atoms.cell)) >= 2 * spec.cutoff
    if len(elements) > 1:
        assert "pair" in {r["kind"] for r in points.rows}


def test_a_structure_with_inequivalent_atoms_is_refused():
    """Negative control: one displaced atom breaks the equivalence, and it is caught."""
    atoms = invariant_structure("hcp", ["Ar"], DescriptorSpec().cutoff, nn_distance=3.7)
    atoms.positions[3] += [0.05, 0.0, 0.0]
    labelled = label_frames([atoms], any_reference("lj"))
    assert np.ptp(labelled[0].arrays["local_energy"]) > 1e-6
    descriptors = compute_descriptors(labelled, DescriptorSpec(), cache=False, progress=False)
    with pytest.raises(InvariantError, match="not equivalent"):
        assemble_points(labelled, descriptors, DescriptorSpec())


def test_lattice_constants_that_overlap_atoms_are_refused():
    with pytest.raises(InvariantError, match="diamond Si at lattice constant 3.0000 A puts "
                       "nearest neighbours 1.299 A apart") as info:
        invariant_structure("diamond", ["Si"], SI.cutoff, lattice_constant=3.0)
    assert "\n" not in str(info.value) and "at least 3.4641 A" in str(info.value)
    with pytest.raises(InvariantError, match="unknown structure 'bct'"):
        invariant_structure("bct", ["Si"], SI.cutoff, lattice_constant=5.0)
    with pytest.raises(InvariantError, match="cscl needs two different elements"):
        invariant_structure("cscl", ["Ar"], 5.0, nn_distance=3.7)


def test_descriptors_of_frames_with_different_boxes_equal_those_computed_alone():
    """compute sna/atom is recreated when the box changes (LAMMPS gave stale neighbours)."""
    spec = DescriptorSpec()
    frames = [invariant_structure(s, ["Ar"], spec.cutoff, nn_distance=d)
              for s, d in (("diamond", 3.0), ("diamond", 3.4), ("bcc", 3.8), ("sc", 4.2),
                           ("fcc", 3.1))]
    together = compute_descriptors(frames, spec, cache=False, progress=False)
    for k, atoms in enumerate(frames):
        with DescriptorSession(spec) as session:
            alone = session.compute(atoms)
        np.testing.assert_array_equal(together.of_frame(k), alone)


@pytest.fixture(scope="module")
def ar_data(tmp_path_factory):
    from toolkit.reference.classical import ClassicalRun, generate_frames

    path = tmp_path_factory.mktemp("ar") / "ar.extxyz"
    run = ClassicalRun("Ar", "lj", n_frames=30, seed=3, melt_steps=500,
                       equilibration_steps=1000)
    write_frames(path, generate_frames(run, progress=False))
    return path


@pytest.fixture(scope="module")
def ar_potential(ar_data, tmp_path_factory):
    from toolkit.models.fitting import FitConfig, fit_potential

    out = tmp_path_factory.mktemp("pot") / "ar-w4"
    fit_potential(FitConfig(ar_data, hidden=(4,), seed=0,
                            training=TrainingSettings(max_iterations=60, patience=20)),
                  out, progress=False)
    return out


def test_invariant_job_lammps_equals_pytorch_and_reports_distances(ar_data, ar_potential,
                                                                   tmp_path):
    summary = run_invariant(tmp_path / "inv", potential=ar_potential, data=ar_data, points=3,
                            progress=False, write_frames=tmp_path / "points.extxyz")
    rows = summary["rows"]
    assert len(rows) == 5 * 3 + 1 and summary["reference"] == "lj"
    potential = read_potential(ar_potential)
    frames = read_frames(tmp_path / "points.extxyz")
    spec = potential.spec
    descriptors = compute_descriptors(frames, spec, cache=False, progress=False)
    points = assemble_points(frames, descriptors, spec)
    lammps = evaluate_potential(potential, points)
    torch = points.predicted(potential.model)
    np.testing.assert_allclose(lammps, torch, atol=1e-10)
    np.testing.assert_allclose([r["error"] for r in rows], lammps - points.reference,
                               atol=1e-12)
    # the grid spans the data's neighbour distances; the isolated atom lies outside them
    data_nn = [r["nn_distance"] for r in rows if r["structure"] == "fcc"]
    assert 3.0 < data_nn[0] < data_nn[-1] < 4.5
    isolated = [r for r in rows if r["structure"] == "isolated"][0]
    assert isolated["components_outside"] > 0 and not isolated["inside"]
    assert all(math.isfinite(r["nn_ratio"]) for r in rows)
    assert (tmp_path / "inv" / "invariant.png").is_file()
    stored = json.loads((tmp_path / "inv" / "invariant.json").read_text())
    assert set(INVARIANT_COLUMNS) <= set(stored["scores"])


def test_monitor_records_the_current_members_along_training(ar_data):
    from toolkit.models.fitting import load_dataset

    dataset = load_dataset(ar_data, DescriptorSpec(), progress=False)
    grids = {"Ar": np.array([3.5, 3.8])}
    points = invariant_points(["Ar"], DescriptorSpec(), any_reference("lj"), grids,
                              ["fcc", "isolated"])
    test = dataset.descriptors.select_frames(list(dataset.split.test))
    local = np.concatenate([dataset.frames[i].arrays["local_energy"]
                            for i in dataset.split.test])
    monitor = InvariantMonitor(points, every=5, test=(test, local,
                                                      dataset.energies[dataset.split.test]))
    architecture = Architecture((3,), "tanh")
    ensemble = train_ensemble(architecture, dataset.descriptors, dataset.energies,
                              dataset.split.train, dataset.split.validation, seeds=[0, 1],
                              settings=TrainingSettings(max_iterations=20, patience=100),
                              progress=False, monitor=monitor)
    iterations = sorted({r["iteration"] for r in monitor.records})
    assert iterations[:3] == [0, 5, 10] and {r["member"] for r in monitor.records} == {0, 1}
    # iteration 0 is the initial network: recompute it independently
    theta = ensemble.networks.initial_theta([0, 1])
    for m in (0, 1):
        initial = SpeciesNetworks(ensemble.spec, architecture, theta[m],
                                  ensemble.normalisation, ensemble.trained_elements)
        record = [r for r in monitor.records if r["iteration"] == 0 and r["member"] == m][0]
        np.testing.assert_allclose(record["errors"], points.errors(initial), atol=1e-12)
    final = [r for r in monitor.records if r["iteration"] == iterations[-1]]
    assert all(np.isfinite(r["local_r2"]) for r in final)


def test_sweep_invariant_columns(ar_data, tmp_path):
    from toolkit.studies.sweep import load_member, read_config, read_results, run_sweep

    config = tmp_path / "sweep.toml"
    config.write_text(f"""
[sweep]
name = "inv"
systems = ["Ar"]
activations = ["tanh"]
depths = [1]
widths = [2]
seeds = [0, 1]
[data]
files = {{ Ar = "{ar_data}" }}
[training]
max_iterations = 30
patience = 10
[invariant]
reference = "lj"
structures = ["fcc", "bcc", "isolated"]
points = 2
""")
    parsed = read_config(config)
    out = tmp_path / "run"
    run_sweep(parsed, out, progress=False)
    rows = read_results(out)
    assert len(rows) == 2 and all(np.isfinite(r["invariant_rmse"]) for r in rows)
    # the column is the member's own error at the points
    from toolkit.models.fitting import load_dataset

    points = parsed.invariant.points_for(load_dataset(ar_data, parsed.spec, progress=False),
                                         parsed.spec, "lj")
    member = load_member(out, "Ar", "tanh", 1, 2, 1)
    errors = points.errors(member)
    assert rows[1]["invariant_rmse"] == pytest.approx(float(np.sqrt(np.mean(errors**2))),
                                                      abs=1e-12)
    assert rows[1]["invariant_isolated_error"] == pytest.approx(errors[-1], abs=1e-12)
    config.write_text(config.read_text().replace('points = 2', 'points = 2\ncolour = 1'))
    with pytest.raises(Exception, match="unknown keys \\['colour'\\]"):
        read_config(config)


def test_anchors_are_trained_on_and_recorded(ar_data, tmp_path):
    from toolkit.models.fitting import FitConfig, fit_potential

    summary = run_invariant(tmp_path / "inv", data=ar_data, reference="lj",
                            structures=["isolated"], write_frames=tmp_path / "a.extxyz",
                            progress=False)
    assert summary["anchors_written"] == 1
    settings = TrainingSettings(max_iterations=200, patience=200)
    config = FitConfig(ar_data, hidden=(4,), training=settings, anchors=tmp_path / "a.extxyz",
                       anchor_weight=10.0)
    anchored, _ = fit_potential(config, tmp_path / "anchored", progress=False)
    assert anchored.meta["anchors"]["n_frames"] == 1
    # scores stay on the data's own held-out frames: anchors only join the training split
    from toolkit.data import split_frames

    assert anchored.meta["data"]["split"] == split_frames(30, 0).as_dict()
    frames = read_frames(tmp_path / "a.extxyz")
    values = compute_descriptors(frames, anchored.spec, cache=False, progress=False)
    isolated = anchored.model.atomic_energies(values.values, values.species_index)[0]
    assert abs(isolated) < 2e-3  # the reference is exactly 0 for LJ


def test_rank_correlation():
    rows = [{"system": "Ar", "invariant_rmse": x, "local_r2_aligned": 1 - x}
            for x in (0.1, 0.3, 0.2, 0.5)]
    rows.append({"system": "Ar", "invariant_rmse": float("nan"), "local_r2_aligned": 0.5})
    result = rank_correlation(rows)
    assert result["Ar"]["spearman"] == pytest.approx(-1.0) and result["Ar"]["n"] == 4


def test_dft_points_are_read_back_not_recomputed(tmp_path):
    """The CP2K route: one single point per structure, resumable. With every result already
    recorded, no CP2K runs (the launcher points at a program that does not exist) and every
    atom carries E/N."""
    from toolkit.reference.dft.cp2k import Launcher
    from toolkit.studies.invariant import dft_label

    spec = DescriptorSpec()
    frames = [invariant_structure("fcc", ["Ar"], spec.cutoff, nn_distance=3.7),
              invariant_structure("isolated", ["Ar"], spec.cutoff)]
    for k, (atoms, energy) in enumerate(zip(frames, (-3480.25, -21.5), strict=True)):
        record = tmp_path / f"{k:03d}-{atoms.info['structure']}-Ar" / "result.json"
        record.parent.mkdir()
        record.write_text(json.dumps({"energy": energy}))
    labelled = dft_label(frames, tmp_path, launcher=Launcher(cp2k="/nonexistent/cp2k"))
    n = len(frames[0])
    assert labelled[0].arrays["local_energy"] == pytest.approx([-3480.25 / n] * n, abs=1e-12)
    assert labelled[1].info["energy"] == -21.5 and labelled[1].info["reference"] == "dft"
    (tmp_path / "001-isolated-Ar" / "result.json").unlink()
    with pytest.raises(Exception, match="nonexistent|No such file"):
        dft_label(frames, tmp_path, launcher=Launcher(cp2k="/nonexistent/cp2k"))
