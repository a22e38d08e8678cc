"""Gauge directions of atomic energies and local prediction rigidity.

Synthetic partitions moved by a known cross-pair transfer psi keep every total (and so
every force) exactly; the decomposition must find psi, score the moved partition as equal
up to gauge, and not mistake a symmetric (non-gauge) radial change for a transfer.
"""

from __future__ import annotations

import numpy as np
import pytest

from toolkit.descriptors import DescriptorSpec
from toolkit.species import lorentz_berthelot
from toolkit.studies.identifiability import (
    GaugeError,
    GaugeProjector,
    gauge_decomposition,
    move_along_transfer,
    pair_list,
    transfer_columns,
)
from toolkit.studies.rigidity import rigidity

SPEC = DescriptorSpec()


@pytest.fixture(scope="module")
def mixture(arkr_lj_frames):
    reference = np.concatenate([a.arrays["local_energy"] for a in arkr_lj_frames])
    return arkr_lj_frames, reference, GaugeProjector(arkr_lj_frames, SPEC)


def frame_sums(frames, values):
    counts = np.cumsum([0] + [len(a) for a in frames])
    return np.array([values[a:b].sum() for a, b in zip(counts[:-1], counts[1:], strict=True)])


def test_pairs_match_ase_neighbour_list(arkr_lj_frames):
    from ase.neighborlist import neighbor_list

    pairs = pair_list(arkr_lj_frames[:2], SPEC.cutoff)
    first = pairs.frame == 0
    i, j, d = neighbor_list("ijd", arkr_lj_frames[0], SPEC.cutoff)
    keep = i < j
    assert sorted(zip(pairs.i[first], pairs.j[first], strict=True)) == sorted(
        zip(i[keep], j[keep], strict=True))
    np.testing.assert_allclose(np.sort(pairs.r[first]), np.sort(d[keep]), atol=1e-12)
    # the second frame's atoms are numbered after the first frame's
    assert pairs.i[~first].min() >= len(arkr_lj_frames[0])


def test_transfer_keeps_totals_and_forces_and_is_recovered_exactly(mixture):
    frames, reference, projector = mixture
    basis = projector.basis
    coefficients = np.linspace(0.004, -0.002, basis.size)  # eV, a psi the basis spans
    psi = lambda r: basis.psi(("Ar", "Kr"), coefficients, r)  # noqa: E731
    moved = move_along_transfer(frames, reference, SPEC, psi)
    np.testing.assert_allclose(frame_sums(frames, moved), frame_sums(frames, reference),
                               rtol=0, atol=1e-10)
    assert np.abs(moved - reference).max() > 1e-3  # the partition did change
    # forces are derivatives of totals: displace an atom, the transfer still sums to zero
    displaced = frames[0].copy()
    for step in (1e-3, -1e-3, 0.2):
        displaced.positions[5] += step
        zero = move_along_transfer([displaced], np.zeros(len(displaced)), SPEC, psi)
        assert abs(zero.sum()) < 1e-12 and np.abs(zero).max() > 1e-4
    report = projector.decompose(reference, moved)
    assert report.r2_gauge == pytest.approx(1.0, abs=1e-10)
    assert report.r2_aligned < 0.99  # the plain scores do see the move
    np.testing.assert_allclose(report.psi["Ar-Kr"]["psi_eV"], coefficients, atol=1e-10)
    assert report.share_rest < 1e-20
    assert report.share_constants + report.share_transfer == pytest.approx(1.0, abs=1e-12)


def test_fraction_of_the_lj_cross_pair_energy_is_a_transfer(mixture):
    """psi = 0.3 u_ArKr(r): outside the basis, so recovered to the basis' resolution."""
    frames, reference, projector = mixture
    epsilon, sigma = lorentz_berthelot("Ar", "Kr")
    moved = move_along_transfer(
        frames, reference, SPEC, lambda r: 0.3 * 4 * epsilon * ((sigma / r)**12 - (sigma / r)**6))
    np.testing.assert_allclose(frame_sums(frames, moved), frame_sums(frames, reference),
                               rtol=0, atol=1e-10)
    report = projector.decompose(reference, moved)
    assert report.r2_aligned < 0.9
    assert report.r2_gauge > 0.99
    table = report.psi["Ar-Kr"]
    r = np.array(table["r_A"])
    well = (r > sigma) & (r < 1.3 * sigma)  # where pairs are plentiful
    expected = 0.3 * 4 * epsilon * ((sigma / r[well])**12 - (sigma / r[well])**6)
    np.testing.assert_allclose(np.array(table["psi_eV"])[well], expected, atol=1.5e-3)


def test_symmetric_control_is_not_attributed_to_the_gauge(mixture):
    frames, reference, projector = mixture
    coefficients = np.linspace(0.004, -0.002, projector.basis.size)
    columns = transfer_columns(projector.basis, projector.pairs, projector.symbols,
                               symmetric=True)
    changed = reference + columns @ coefficients  # totals change: not a gauge
    assert np.abs(frame_sums(frames, changed) - frame_sums(frames, reference)).max() > 0.05
    report = projector.decompose(reference, changed)
    assert report.share_transfer < 0.05
    assert report.share_symmetric_control > 0.2
    assert report.r2_gauge < 0.95  # a physics error stays an error
    # and a transfer is not attributed to the control in the same way
    moved = move_along_transfer(frames, reference, SPEC,
                                lambda r: projector.basis.psi(("Ar", "Kr"), coefficients, r))
    assert projector.decompose(reference, moved).share_symmetric_control < 0.05


def test_scores_agree_with_the_metrics_module(mixture):
    from toolkit.metrics import align_per_species, r2, r2_within_species

    frames, reference, projector = mixture
    noisy = reference + np.random.default_rng(0).normal(scale=2e-3, size=len(reference))
    report = projector.decompose(reference, noisy)
    aligned = align_per_species(reference, noisy, projector.species)
    assert report.r2 == pytest.approx(r2(reference, noisy), abs=1e-12)
    assert report.r2_aligned == pytest.approx(
        r2_within_species(reference, aligned, projector.species), abs=1e-12)
    # random noise is mostly not a gauge move
    assert report.share_rest > 0.8
    perfect = projector.decompose(reference, reference + 0.1)
    assert perfect.r2_gauge == pytest.approx(1.0, abs=1e-12)
    constant = projector.decompose(reference, np.full_like(reference, reference.mean()))
    assert constant.r2_gauge == pytest.approx(0.0, abs=1e-12)


def test_single_species_has_no_transfer_and_says_so(arkr_lj_frames):
    pure = [a.copy() for a in arkr_lj_frames[:2]]
    for atoms in pure:
        atoms.set_chemical_symbols(["Ar"] * len(atoms))
    reference = np.concatenate([a.arrays["local_energy"] for a in pure])
    report = gauge_decomposition(pure, reference, reference + 1e-3 * np.arange(len(reference))
                                 / len(reference), SPEC)
    assert report.psi == {} and report.share_transfer == 0.0
    with pytest.raises(GaugeError, match="one species only"):
        gauge_decomposition(pure, reference, reference, SPEC, transfer=True)


def test_rigidity_equals_brute_force_null_space_on_a_linear_model(mixture):
    """Features = radial neighbour counts by neighbour species: a linear model whose
    parameters include exact transfer directions (Ar's Kr-count weight against Kr's Ar-count
    weight), so H has a null space; LPR must follow it as the regulariser goes to zero."""
    frames, _, projector = mixture
    basis = projector.basis
    pairs, symbols = projector.pairs, projector.symbols
    k = basis.size
    features = np.zeros((pairs.n_atoms, 4 * k))  # [Ar: (Ar nbrs, Kr nbrs) | Kr: (...)]
    mask = pairs.r < basis.cutoffs[("Ar", "Kr")]
    for i, j, r in zip(pairs.i[mask], pairs.j[mask], pairs.r[mask], strict=True):
        phi = basis.hats(("Ar", "Kr"), np.array([r]))[0]
        for atom, other in ((i, j), (j, i)):
            block = 0 if symbols[atom] == "Ar" else 2 * k
            column = block + (0 if symbols[other] == "Ar" else k)
            features[atom, column:column + k] += phi
    frame = projector.frame
    counts = np.bincount(frame).astype(float)
    sums = np.zeros((counts.size, 4 * k))
    np.add.at(sums, frame, features)
    hessian = (sums / np.sqrt(counts)[:, None]).T @ (sums / np.sqrt(counts)[:, None])
    values, vectors = np.linalg.eigh(hessian)
    null = values < 1e-10 * values.max()
    assert null.sum() >= k  # the transfer directions (and maybe more)
    transfer = np.zeros(4 * k)
    transfer[k:2 * k], transfer[2 * k:3 * k] = 1.0, -1.0  # Ar's Kr weight vs Kr's Ar weight
    assert np.linalg.norm(hessian @ transfer) < 1e-9 * np.linalg.norm(hessian)
    query = features[: 2 * len(frames[0])]
    for relative in (1e-3, 1e-6, 1e-9):
        shift = relative * np.trace(hessian) / hessian.shape[0]
        brute = 1.0 / ((query @ vectors) ** 2 / (values + shift)).sum(axis=1)
        got = rigidity(features, frame, query, regulariser=relative)
        np.testing.assert_allclose(got, brute, rtol=1e-5)  # condition number up to 1e9
    # in the limit, LPR / s^2 -> 1 / |null-space part of f|^2
    relative = 1e-12
    shift = relative * np.trace(hessian) / hessian.shape[0]
    got = rigidity(features, frame, query, regulariser=relative)
    null_part = ((query @ vectors[:, null]) ** 2).sum(axis=1)
    has_null = null_part > 1e-6
    assert has_null.sum() > len(query) // 2
    np.testing.assert_allclose(got[has_null] / shift, 1.0 / null_part[has_null], rtol=1e-3)
    # negative control: Ar atoms' first few Ar-neighbour counts alone (fewer parameters than
    # frames) have no null direction, so their LPR stays finite as the regulariser vanishes
    ar = symbols == "Ar"
    few = slice(k // 2 - 1, k // 2 + 2)
    assert few.stop - few.start < len(frames)
    firm = rigidity(features[ar, few], frame[ar], features[ar, few][:20], regulariser=1e-12)
    assert np.all(firm > 1e3 * got[has_null].max())


# -- aetk gauge ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def fitted(tmp_path_factory, arkr_lj_frames):
    from toolkit.data import write_frames
    from toolkit.models.fitting import FitConfig, fit_potential
    from toolkit.models.training import TrainingSettings

    root = tmp_path_factory.mktemp("gauge")
    data = root / "arkr.extxyz"
    write_frames(data, arkr_lj_frames)
    config = FitConfig(data, (4,), "tanh", seed=0, wall=False,
                       training=TrainingSettings(max_iterations=30, patience=30))
    potential, _ = fit_potential(config, root / "pot", progress=False)
    return root, data, potential


def test_gauge_command_reports_lammps_scores_and_rigidity(fitted, tmp_path):
    import json

    from toolkit.cli import main
    from toolkit.data import read_frames
    from toolkit.evaluation import predict

    root, data, potential = fitted
    assert main(["gauge", "--potential", str(potential.directory), "--data", str(data),
                 "--out", str(tmp_path / "g"), "--quiet"]) == 0
    report = json.loads((tmp_path / "g" / "report.json").read_text())
    frames = read_frames(data)
    reference = np.concatenate([a.arrays["local_energy"] for a in frames])
    predicted = predict(potential, frames, progress=False).local_energy
    direct = gauge_decomposition(frames, reference, predicted, SPEC)
    assert report["r2_gauge"] == pytest.approx(direct.r2_gauge, abs=1e-12)
    assert report["share_constants"] + report["share_transfer"] + report["share_rest"] == \
        pytest.approx(1.0, abs=1e-12)
    assert set(report["rigidity"]["mean_lpr"]) == {"Ar", "Kr"}
    assert all(v > 0 for v in report["rigidity"]["mean_lpr"].values())
    lines = (tmp_path / "g" / "atoms.csv").read_text().splitlines()
    assert len(lines) == 1 + len(reference)
    psi = (tmp_path / "g" / "psi.csv").read_text().splitlines()
    assert psi[0] == "pair,r_A,psi_meV,pairs" and len(psi) == 1 + 12
    assert (tmp_path / "g" / "psi.png").stat().st_size > 1000


def test_gauge_command_refuses_bad_input_in_one_line_and_writes_nothing(fitted, tmp_path,
                                                                        capsys):
    from toolkit.cli import main
    from toolkit.data import read_frames, write_frames

    root, data, potential = fitted
    frames = read_frames(data)
    unlabelled = [a.copy() for a in frames]
    for atoms in unlabelled:
        del atoms.arrays["local_energy"]
    write_frames(tmp_path / "nolocal.extxyz", unlabelled)
    pure = [a.copy() for a in frames]
    for atoms in pure:
        atoms.set_chemical_symbols(["Kr"] * len(atoms))
    write_frames(tmp_path / "pure.extxyz", pure)
    (tmp_path / "other.toml").write_text("[descriptor]\ntwojmax = 4\n")
    cases = [
        (["--data", str(tmp_path / "nolocal.extxyz")], "local_energy"),
        (["--data", str(tmp_path / "pure.extxyz"), "--transfer", "yes"], "one species only"),
        (["--data", str(data), "--spec", str(tmp_path / "other.toml")], "twojmax"),
    ]
    for k, (arguments, message) in enumerate(cases):
        out = tmp_path / f"out{k}"
        code = main(["gauge", "--potential", str(potential.directory), "--out", str(out),
                     "--quiet", *arguments])
        err = capsys.readouterr().err.strip()
        assert code == 2 and message in err and len(err.splitlines()) == 1, err
        assert not out.exists()
        assert not list(tmp_path.glob(f".out{k}.tmp-*"))


def test_two_teachers_differing_by_a_transfer_score_a_student_equally_up_to_gauge(mixture):
    """Same totals and forces, partitions differing by psi: the gauge-projected score of any
    student is the same against both, while the aligned score is not."""
    frames, teacher_a, projector = mixture
    coefficients = np.linspace(-0.003, 0.003, projector.basis.size)
    teacher_b = move_along_transfer(
        frames, teacher_a, SPEC, lambda r: projector.basis.psi(("Ar", "Kr"), coefficients, r))
    student = teacher_a + np.random.default_rng(1).normal(scale=1.5e-3, size=len(teacher_a))
    against_a = projector.decompose(teacher_a, student)
    against_b = projector.decompose(teacher_b, student)
    assert against_a.r2_gauge == pytest.approx(against_b.r2_gauge, abs=1e-10)
    assert against_a.rmse_gauge == pytest.approx(against_b.rmse_gauge, abs=1e-12)
    assert abs(against_a.r2_aligned - against_b.r2_aligned) > 0.05


def test_pair_partition_fit_finds_the_equal_split_of_lj_and_a_moved_one(mixture):
    from toolkit.studies.identifiability import pair_partition_fit

    frames, reference, projector = mixture
    fit = pair_partition_fit(frames, reference, SPEC)
    assert fit["r2_within_species"] > 0.99  # LJ pe/atom is pairwise: half of each pair
    psi = np.array(fit["psi_eV"]["Ar-Kr"]["value"])
    assert np.abs(psi).max() < 2e-4  # equal split: psi = 0 (well below the 5-12 meV pairs)
    coefficients = np.full(projector.basis.size, 2e-3)
    moved = move_along_transfer(frames, reference, SPEC,
                                lambda r: projector.basis.psi(("Ar", "Kr"), coefficients, r))
    shifted = np.array(pair_partition_fit(frames, moved, SPEC)["psi_eV"]["Ar-Kr"]["value"])
    np.testing.assert_allclose(shifted - psi, coefficients, atol=2e-4)
