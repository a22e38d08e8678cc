"""Reference points off the atoms (toolkit/points): spec, placement, LAMMPS descriptors, pair
energies, energy-density helpers, and a linear bond model fitted on totals of a pair potential.
Real LAMMPS throughout; no mocks."""

from __future__ import annotations

import itertools
import json
from dataclasses import replace

import numpy as np
import pytest
from ase import Atoms

from toolkit.descriptor_spec import DescriptorSpec, PointType, SpecError
from toolkit.points.descriptors import PointSession, compute_point_descriptors
from toolkit.points.placement import (
    bond_centres,
    bond_types,
    grid_positions,
    grid_type,
    place_points,
)

BASE = DescriptorSpec()


def _spec(**kw) -> DescriptorSpec:
    return replace(BASE, points=bond_types(BASE, **kw) + (grid_type(BASE, 2.5),))


# -- the spec extension -----------------------------------------------------------------------
def test_atom_spec_is_unchanged_by_the_point_extension():
    data = BASE.to_dict()
    assert "points" not in data  # so hashes, caches and stored potentials are unchanged
    assert BASE.species == BASE.elements and BASE.n_species == 2
    assert BASE.lammps_cutoff == BASE.cutoff


def test_point_spec_round_trips_and_refuses_bad_types(tmp_path):
    import tomllib

    spec = _spec()
    assert spec.species == ("Ar", "Kr", "Ar-Ar", "Ar-Kr", "Kr-Kr", "grid")
    assert DescriptorSpec.from_dict(spec.to_dict()) == spec
    assert DescriptorSpec.from_dict(tomllib.loads(spec.to_toml())["descriptor"]) == spec
    assert spec.key != BASE.key and spec.atoms_only == BASE
    # weights: elements, then 0 for every point type
    assert spec.compute_command().endswith("1.0 1.4389 0.0 0.0 0.0 0.0 rmin0 0.0 switchflag 1 "
                                           "bzeroflag 1")
    with pytest.raises(SpecError, match="no LAMMPS pair style"):
        spec.mliap_descriptor_text()
    with pytest.raises(SpecError, match="outside the spec"):
        replace(BASE, points=(PointType("Ar-Xe", "bond", 0.2, ("Ar", "Xe"), 5.0),))
    with pytest.raises(SpecError, match="unique"):
        replace(BASE, points=(PointType("Ar", "grid", 1.0, spacing=2.0),))
    with pytest.raises(SpecError, match="grid type needs spacing"):
        PointType("g", "grid", 1.0, pair=("Ar", "Ar"), spacing=2.0)


# -- placement under periodic boundaries ---------------------------------------------------------
def _brute_force_bonds(atoms: Atoms, pair, cutoff: float) -> dict:
    """All (i, j) -> (length, midpoint) over the 27 nearest images, no minimum-image trick."""
    lengths = np.diag(atoms.cell.array)
    out = {}
    for i, j in itertools.combinations(range(len(atoms)), 2):
        if sorted((atoms[i].symbol, atoms[j].symbol)) != sorted(pair):
            continue
        for shift in itertools.product((-1, 0, 1), repeat=3):
            image = atoms.positions[j] + np.array(shift) * lengths
            d = np.linalg.norm(image - atoms.positions[i])
            if d < cutoff:
                out[(i, j)] = (d, np.mod(0.5 * (atoms.positions[i] + image), lengths))
    return out


def test_bond_centres_use_the_minimum_image_across_box_edges():
    atoms = Atoms("Ar4Kr",
                  positions=[[0.2, 5.0, 5.0], [9.7, 5.0, 5.0],     # across x: length 0.5
                             [0.3, 0.3, 0.3], [9.6, 9.6, 9.5],     # across the corner
                             [9.0, 5.0, 5.0]],                      # Kr near atom 1
                  cell=[10.0, 10.0, 10.0], pbc=True)
    point = PointType("Ar-Ar", "bond", 0.2, ("Ar", "Ar"), 4.0)
    centres, pairs, lengths = bond_centres(atoms, point)
    expected = _brute_force_bonds(atoms, ("Ar", "Ar"), 4.0)
    assert sorted(map(tuple, pairs)) == sorted(expected)
    for (i, j), centre, length in zip(map(tuple, pairs), centres, lengths, strict=True):
        assert length == pytest.approx(expected[(i, j)][0], abs=1e-12)
        delta = centre - expected[(i, j)][1]
        delta -= np.rint(delta / 10.0) * 10.0
        assert np.abs(delta).max() < 1e-12
        assert np.all((centre >= 0) & (centre < 10.0))
    by_pair = dict(zip(map(tuple, pairs), centres, strict=True))
    assert np.allclose(by_pair[(0, 1)], [9.95, 5.0, 5.0], atol=1e-12)  # midpoint across x
    assert np.allclose(by_pair[(2, 3)], [9.95, 9.95, 9.9], atol=1e-12)  # across the corner
    mixed = PointType("Ar-Kr", "bond", 0.2, ("Ar", "Kr"), 1.0)
    _, mixed_pairs, mixed_lengths = bond_centres(atoms, mixed)
    assert [tuple(p) for p in mixed_pairs] == [(1, 4)]
    assert mixed_lengths[0] == pytest.approx(0.7, abs=1e-12)
    with pytest.raises(SpecError, match="minimum image"):
        bond_centres(atoms, replace(point, bond_cutoff=5.0))


def test_grid_points_are_periodic_and_in_lammps_order():
    lengths = np.array([10.0, 12.0, 9.0])
    points = grid_positions(lengths, 3.0)
    shape = (3, 4, 3)
    assert len(points) == np.prod(shape)
    assert np.all((points >= 0) & (points < lengths))
    # x fastest, at (i / n) L
    assert np.allclose(points[1], [10.0 / 3, 0, 0]) and np.allclose(points[3], [0, 3.0, 0])
    assert np.allclose(points[12], [0, 0, 3.0])


def test_point_descriptors_follow_the_atoms_through_the_box_edge(arkr_lj_frames):
    """Translating every atom (wrapping those that cross an edge) must move bond points with
    their bonds and shift grid descriptors by whole grid steps: minimum image and wrapping
    right, checked through LAMMPS."""
    atoms = arkr_lj_frames[0]
    lengths = np.diag(atoms.cell.array)
    n = 6
    spacing = lengths[0] / n
    spec = replace(BASE, points=bond_types(BASE) + (grid_type(BASE, spacing),))
    shape = tuple(round(float(x) / spacing) for x in lengths)
    moved = atoms.copy()
    # one grid step along x plus half the box in y and z: many bonds cross the edges
    moved.positions += np.array([lengths[0] / shape[0], lengths[1] / 2, lengths[2] / 2])
    moved.wrap()
    with PointSession(spec) as session:
        a_atoms, a_points, a_set = session.compute(atoms)
        b_atoms, b_points, b_set = session.compute(moved)
    assert np.abs(a_atoms - b_atoms).max() < 1e-10
    bonds = a_set.atoms[:, 0] >= 0
    crossing = np.linalg.norm(atoms.positions[a_set.atoms[bonds, 0]]
                              - atoms.positions[a_set.atoms[bonds, 1]], axis=1) > 6.0
    assert crossing.sum() > 20  # the original frame has bonds across the box edge
    key_a = {tuple(p): row for p, row in zip(a_set.atoms[bonds], a_points[bonds], strict=True)}
    key_b = {tuple(p): row for p, row in zip(b_set.atoms[b_set.atoms[:, 0] >= 0],
                                             b_points[b_set.atoms[:, 0] >= 0], strict=True)}
    assert key_a.keys() == key_b.keys()
    assert max(np.abs(key_a[k] - key_b[k]).max() for k in key_a) < 1e-10
    grid_a = a_points[~bonds].reshape(shape[2], shape[1], shape[0], -1)
    grid_b = b_points[b_set.atoms[:, 0] < 0].reshape(shape[2], shape[1], shape[0], -1)
    # grid point (ix, iy, iz) of the moved frame sees what (ix-1, iy-n/2, iz-n/2) saw
    assert shape == (n, n, n)  # a cubic box: half the box is a whole number of grid steps
    expected = np.roll(grid_a, shift=(n // 2, n // 2, 1), axis=(0, 1, 2))
    assert np.abs(grid_b - expected).max() < 1e-9
    # negative control: without the shift the grids disagree
    assert np.abs(grid_b - grid_a).max() > 1e-2


def test_pseudo_atoms_leave_real_descriptors_unchanged(arkr_lj_frames):
    from toolkit.descriptors import compute_descriptors

    frames = arkr_lj_frames[:2]
    spec = _spec()
    points = compute_point_descriptors(frames, spec, cache=False, progress=False)
    alone = compute_descriptors(frames, BASE, cache=False, progress=False)
    atoms_rows = points.rows(points=False).descriptors.values
    assert atoms_rows.shape == alone.values.shape
    assert np.abs(atoms_rows - alone.values).max() <= 1e-12
    n_points = int(points.is_point.sum())
    assert n_points > 2 * 500  # bonds and a 5x5x5 grid per frame were really there
    # points see the atoms: their descriptors vary (a point that saw nothing would be all 0
    # with bzeroflag) ...
    assert np.abs(points.descriptors.values[points.is_point]).max() > 0.1
    # ... negative control: give the points a weight, and the atoms' descriptors change
    with PointSession(spec) as session:
        session.lmp.command("uncompute sna")
        weighted = spec.compute_command("sna").replace("0.0 0.0 0.0 0.0 rmin0",
                                                       "0.5 0.5 0.5 0.5 rmin0")
        session.lmp.command(weighted)
        seen, _, _ = session.compute(frames[0])
    assert np.abs(seen - alone.values[alone.frame_index == 0]).max() > 1e-3


def test_grid_pseudo_atoms_equal_lammps_sna_grid():
    """Two independent LAMMPS routes: pseudo-atoms of a grid type with the Ar radius, and
    ``compute sna/grid`` (whose grid points take the neighbour's own radius), on pure Ar."""
    from toolkit.lammps import Lammps, self_comm
    from toolkit.reference.classical import ClassicalRun, generate_frames

    atoms = generate_frames(ClassicalRun("Ar", "lj", n_frames=1, seed=3, melt_steps=200,
                                         equilibration_steps=200), progress=False)[0]
    spec = replace(BASE, elements=("Ar",), radii=BASE.radii[:1], weights=(1.0,))
    spec = replace(spec, points=(grid_type(spec, np.diag(atoms.cell.array)[0] / 5,
                                           radius=spec.radii[0]),))
    with PointSession(spec) as session:
        _, grid_rows, _ = session.compute(atoms)
    n = 5
    with Lammps(comm=self_comm()) as lmp:
        lmp.setup_box(("Ar",))
        lmp.commands([f"pair_style zero {spec.cutoff!r}", "pair_coeff * *"])
        lmp.load_atoms(atoms, lambda s: 1)
        lmp.command(f"compute g all sna/grid grid {n} {n} {n} {spec.rcutfac!r} "
                    f"{spec.rfac0!r} {spec.twojmax} {spec.radii[0]!r} 1.0 rmin0 0.0 "
                    "switchflag 1 bzeroflag 1")
        lmp.command("run 0 post no")
        from lammps import LMP_STYLE_GLOBAL, LMP_TYPE_ARRAY

        table = np.array(lmp.raw.numpy.extract_compute("g", LMP_STYLE_GLOBAL, LMP_TYPE_ARRAY))
    # columns: x y z, then the bispectrum; rows in x-fastest order
    lengths = np.diag(atoms.cell.array)
    assert np.allclose(table[:, :3], grid_positions(lengths, lengths[0] / n), atol=1e-10)
    assert np.abs(table[:, 3:] - grid_rows).max() < 1e-10
    assert np.abs(grid_rows).max() > 1.0  # and they saw atoms


# -- exact pair energies ------------------------------------------------------------------------
def test_lj_pair_energies_match_lammps_pair_local(arkr_lj_frames):
    from toolkit.points.pair_energy import bond_pair_energies, lammps_pair_energies

    atoms = arkr_lj_frames[1]
    spec = replace(BASE, points=bond_types(BASE, cutoff_factor=1.6 + 1e-6))
    points = place_points(atoms, spec)
    ours = bond_pair_energies(atoms, points.atoms, points.length)
    distances, energies, total = lammps_pair_energies(atoms)
    assert len(distances) == len(points.length) > 600
    order_l, order_o = np.argsort(distances), np.argsort(points.length)
    assert np.abs(distances[order_l] - points.length[order_o]).max() < 1e-12
    assert np.abs(energies[order_l] - ours[order_o]).max() < 1e-9  # pair_coeff has 10 digits
    assert ours.sum() == pytest.approx(total, abs=1e-8)
    assert total == pytest.approx(atoms.info["energy"], abs=1e-8)
    wrong = bond_pair_energies(atoms, points.atoms, points.length, cutoff_sigma=1.5)
    assert np.abs(energies[order_l] - wrong[order_o]).max() > 1e-4


def test_half_bond_sums_add_up_to_the_model_total(arkr_lj_frames):
    from toolkit.models.networks import Architecture
    from toolkit.models.training import TrainingSettings, train_ensemble
    from toolkit.points.models import atomic_energies_from_bonds, frame_totals, row_energies

    frames = arkr_lj_frames
    spec = replace(BASE, points=bond_types(BASE, cutoff_factor=1.6))
    data = compute_point_descriptors(frames, spec, progress=False)  # atoms + bonds
    energies = np.array([a.info["energy"] for a in frames])
    ensemble = train_ensemble(Architecture((3,), "tanh"), data.descriptors, energies,
                              [0, 1, 2, 3], [4], seeds=[0, 1],
                              settings=TrainingSettings(max_iterations=5), progress=False)
    rows = row_energies(ensemble, data)
    counts = np.array([len(a) for a in frames])
    local = atomic_energies_from_bonds(rows, data, counts)
    atom_frame = np.repeat(np.arange(len(frames)), counts)
    for m in range(2):
        assert np.abs(np.bincount(atom_frame, local[m]) - frame_totals(rows, data)[m]).max() \
            < 1e-9
    # an atom gets its own term plus half of each of its bonds
    first_bond = np.flatnonzero(data.is_point)[0]
    i, j = data.bond_atoms[first_bond]
    own = rows[0][(~data.is_point) & (data.frame_index == 0)]
    bonds_of_i = data.is_point & (data.frame_index == 0) & np.any(data.bond_atoms == i, axis=1)
    assert local[0][i] == pytest.approx(own[i] + 0.5 * rows[0][bonds_of_i].sum(), abs=1e-12)
    # a point model is not an ML-IAP potential: refused with a clear line
    from toolkit.models.potential import write_potential

    with pytest.raises(SpecError, match="no LAMMPS pair style"):
        write_potential(tmp := __import__("pathlib").Path("/nonexistent-aetk/never"),
                        ensemble.member(0), {})
    assert not tmp.exists()


# -- a linear bond model on a pure pair potential ------------------------------------------------
@pytest.mark.slow
def test_linear_bond_model_fitted_on_totals_recovers_the_pair_curve():
    """Pure Ar LJ (32 atoms, 150 frames): a linear bond model trained on totals only must
    give each bond the exact pair energy up to the representation's limit.

    The limit: the best any per-bond linear function of these descriptors can do, the direct
    least-squares fit of the pair energies of the training bonds, in sample. Measured here:
    0.019 meV RMSE (pair energies here: -4.1 to 64.7 meV). It is not zero as a bond-centre
    descriptor also sees neighbours of long bonds (the direct fit's test RMSE, 0.056 meV, is
    dominated by one extrapolated long bond, 3.8 meV off). The totals-trained model reaches
    0.030 meV on the test bonds (R2 0.99991), and its E(r), averaged in 0.1 A bins, matches
    the exact phi(r) within 0.023 meV."""
    from toolkit.data import split_frames
    from toolkit.models.networks import Architecture
    from toolkit.models.training import TrainingSettings, train_ensemble
    from toolkit.points.models import row_energies
    from toolkit.points.pair_energy import bond_pair_energies, lj_pair_energy
    from toolkit.reference.classical import ClassicalRun, generate_frames
    from toolkit.studies.reference_points import linear_bond_fits

    frames = generate_frames(ClassicalRun("Ar", "lj", n_frames=150, seed=5, natoms=32,
                                          every=50, melt_steps=1000, equilibration_steps=2000),
                             progress=False)
    spec = replace(BASE, elements=("Ar",), radii=BASE.radii[:1], weights=(1.0,))
    spec = replace(spec, points=bond_types(spec, reach=1.05, cutoff_factor=1.6))
    data = compute_point_descriptors(frames, spec, with_atoms=False, progress=False)
    pair = np.concatenate([bond_pair_energies(a, data.bond_atoms[data.frame_index == f],
                                              data.bond_length[data.frame_index == f])
                           for f, a in enumerate(frames)])
    energies = np.array([a.info["energy"] for a in frames])
    assert np.abs(np.bincount(data.frame_index, pair) - energies).max() < 1e-8  # exact split
    split = split_frames(len(frames), 0)
    test = np.isin(data.frame_index, split.test)
    train = np.isin(data.frame_index, split.train)
    direct = linear_bond_fits(data, pair, energies, split.train)["direct"]
    limit = np.sqrt(np.mean((direct[train] - pair[train]) ** 2))
    ensemble = train_ensemble(Architecture((), "linear"), data.descriptors, energies,
                              split.train, split.validation, seeds=[0],
                              settings=TrainingSettings(max_iterations=2000, patience=200),
                              progress=False)
    learned = row_energies(ensemble, data)[0]
    error = np.sqrt(np.mean((learned[test] - pair[test]) ** 2))
    r2 = 1 - np.sum((learned[test] - pair[test]) ** 2) / np.sum((pair[test]
                                                                  - pair[test].mean()) ** 2)
    print(f"pair energies {pair.min() * 1e3:.2f} .. {pair.max() * 1e3:.2f} meV")
    print(f"linear bond model: limit {limit * 1e3:.4f} meV, learned {error * 1e3:.4f} meV, "
          f"R2 {r2:.6f}")
    assert limit < 5e-5  # eV: the representation's limit (0.019 meV measured)
    assert error < 2.5 * limit and r2 > 0.9995
    # the recovered pair curve, bin by bin
    r = data.bond_length[test]
    bins = np.arange(3.0, 5.5, 0.1)
    which = np.digitize(r, bins)
    worst = max(abs(np.mean(learned[test][which == b]) - np.mean(lj_pair_energy(r[which == b],
                                                                                "Ar", "Ar")))
                for b in np.unique(which) if np.sum(which == b) >= 20)
    print(f"worst bin {worst * 1e3:.4f} meV")
    assert worst < 1e-4
    # negative control: the same energies given to the wrong bonds (shuffled within frames)
    shuffled = learned[test].copy()
    np.random.default_rng(0).shuffle(shuffled)
    assert 1 - np.sum((shuffled - pair[test]) ** 2) / np.sum((pair[test]
                                                              - pair[test].mean()) ** 2) < 0.0


# -- energy-density helpers (no CP2K: analytic fields) -------------------------------------------
def test_cic_coarse_graining_conserves_and_locates():
    from toolkit.points.energy_density import cic_weights, coarse_grain

    w = cic_weights(50, 0.2, 0.0, 4, 10.0)
    assert np.allclose(w.sum(axis=0), 1.0, atol=1e-14)
    field = np.random.default_rng(1).random((20, 24, 16))
    spacing = np.array([0.5, 0.5, 0.5])
    coarse = coarse_grain(field, spacing, np.zeros(3), (4, 6, 4))
    assert coarse.sum() == pytest.approx(field.sum() * 0.125, rel=1e-12)
    point = np.zeros((20, 24, 16))
    point[5, 8, 12] = 1.0  # exactly on coarse point (1, 2, 3) (steps of 5, 4, 4 voxels)
    coarse = coarse_grain(point, spacing, np.zeros(3), (4, 6, 4))
    assert np.flatnonzero(coarse).tolist() == [3 * 24 + 2 * 4 + 1]  # x fastest


def test_fft_shift_moves_a_plane_wave_grid_gaussian_exactly():
    from toolkit.points.energy_density import shifted

    n, h = 48, 0.25
    x = np.arange(n) * h

    def gaussian(centre):
        d = [(x - c + n * h / 2) % (n * h) - n * h / 2 for c in centre]
        return np.exp(-1.5 * (d[0][:, None, None] ** 2 + d[1][None, :, None] ** 2
                              + d[2][None, None, :] ** 2))

    start = np.array([6.0, 6.0, 6.0])
    move = np.array([0.37, -1.11, 2.05])  # not a whole number of voxels
    assert np.abs(shifted(gaussian(start), np.full(3, h), move)
                  - gaussian(start + move)).max() < 1e-8
    assert np.abs(gaussian(start) - gaussian(start + move)).max() > 0.5  # it did move


# -- the LJ study: config, resume, table ----------------------------------------------------------
@pytest.mark.slow
def test_lj_study_resumes_and_writes_one_row_per_member(tmp_path, arkr_lj_frames):
    from toolkit.cli import main
    from toolkit.data import write_frames
    from toolkit.studies.reference_points import (
        PointsConfigError,
        lj_data_path,
        read_lj_config,
        read_table,
        run_lj_study,
    )

    config_path = tmp_path / "study.toml"
    config_path.write_text(
        '[points]\nmodels = ["atoms", "bonds"]\nwidths = [2]\nseeds = [0, 1]\nframes = 6\n'
        'bond_cutoff_factor = 1.6\n[training]\nmax_iterations = 5\n')
    config = read_lj_config(config_path)
    out = tmp_path / "study"
    write_frames(lj_data_path(config, out), arkr_lj_frames)  # instead of 6 frames of MD
    run_lj_study(config, out, progress=False, stop_after=1)
    assert len(read_table(out / "results.csv")) == 2  # one cell, two seeds
    assert main(["points", "lj", "--config", str(config_path), "--out", str(out),
                 "--quiet"]) == 0
    rows = read_table(out / "results.csv")
    cells = {(r["model"], r["activation"], r["width"]) for r in rows}
    assert cells == {("atoms", "linear", 0), ("bonds", "linear", 0), ("atoms", "tanh", 2),
                     ("bonds", "tanh", 2)}
    assert len(rows) == 8
    for row in rows:
        assert np.isnan(row["bond_r2"]) == (row["model"] == "atoms")
        # one test frame: total R2 is undefined (NaN), the per-atom RMSE is not
        assert np.isfinite(row["local_r2_aligned"]) and np.isfinite(row["total_per_atom_rmse"])
        # gauge projection removes the aligned score's constants and more: never lower
        assert row["local_r2_aligned"] - 1e-9 <= row["local_r2_gauge"] <= 1.0
    # a study written before a training setting existed resumes (defaults filled in); a
    # changed setting is refused
    stored = json.loads((out / "config.json").read_text())
    del stored["training"]["weight_decay"]
    (out / "config.json").write_text(json.dumps(stored))
    run_lj_study(config, out, progress=False)
    stored["training"]["max_iterations"] = 6
    (out / "config.json").write_text(json.dumps(stored))
    with pytest.raises(PointsConfigError, match="another config"):
        run_lj_study(config, out, progress=False)
    config_path.write_text('[points]\nwidth = [2]\n')
    with pytest.raises(PointsConfigError, match="points.width"):
        read_lj_config(config_path)


def test_lj_rescore_rescores_saved_cells_without_training(tmp_path, arkr_lj_frames):
    """`aetk points lj --rescore`: score columns recomputed from the saved ensembles (so a
    stale or missing score is filled in), training columns kept, unfinished cells untouched."""
    import csv

    from toolkit.cli import main
    from toolkit.data import write_frames
    from toolkit.studies.reference_points import (
        PointsConfigError,
        lj_data_path,
        read_lj_config,
        read_table,
        rescore_lj_study,
        run_lj_study,
    )

    config_path = tmp_path / "study.toml"
    config_path.write_text('[points]\nmodels = ["atoms", "bonds"]\nwidths = []\nseeds = [0, 1]\n'
                           'frames = 6\nbond_cutoff_factor = 1.6\n[training]\n'
                           'max_iterations = 3\n')
    config = read_lj_config(config_path)
    out = tmp_path / "study"
    write_frames(lj_data_path(config, out), arkr_lj_frames)
    run_lj_study(config, out, progress=False, stop_after=1)  # atoms_linear_w0 only
    cell = out / "cells" / "atoms_linear_w0.csv"
    before = read_table(cell)
    # a stale cell: scored before the gauge column existed, with a wrong total score
    with open(cell) as handle:
        stale = list(csv.DictReader(handle))
    for row in stale:
        row.update(local_r2_gauge="nan", total_r2="-7.0", cell_seconds="123.5")
    with open(cell, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(stale[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(stale)
    assert main(["points", "lj", "--rescore", "--out", str(out), "--quiet"]) == 0
    after = read_table(out / "results.csv")
    assert len(after) == 2 and {r["model"] for r in after} == {"atoms"}  # nothing trained
    assert not (out / "cells" / "bonds_linear_w0.pt").exists()
    for old, new in zip(before, after, strict=True):
        assert new["total_r2"] == pytest.approx(old["total_r2"], abs=1e-12) or (
            np.isnan(new["total_r2"]) and np.isnan(old["total_r2"]))  # one test frame: NaN
        assert new["local_r2_aligned"] == pytest.approx(old["local_r2_aligned"], abs=1e-12)
        assert new["local_r2_gauge"] == pytest.approx(old["local_r2_gauge"], abs=1e-12)
        assert np.isfinite(new["local_r2_gauge"])
        assert new["cell_seconds"] == 123.5  # training columns are kept, not recomputed
    (out / "cells" / "atoms_linear_w0.pt").unlink()
    with pytest.raises(PointsConfigError, match="cannot be rescored"):
        rescore_lj_study(out, progress=False)
