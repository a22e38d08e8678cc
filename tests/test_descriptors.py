"""SNAP descriptors: invariances, cache, and the ML-IAP descriptor file equals compute sna/atom."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from scipy.spatial.transform import Rotation

from toolkit.descriptors import (
    DescriptorSession,
    DescriptorSpec,
    SpecError,
    compute_descriptors,
    read_spec,
)
from toolkit.lammps import Lammps, LammpsError


@pytest.fixture(scope="module")
def spec():
    return DescriptorSpec()


def test_default_spec_counts_and_cutoff(spec):
    assert spec.n_descriptors == 30
    assert spec.cutoff == pytest.approx(1.45 * 3.6274)  # Kr-Kr, the longest pair
    assert spec.weights[0] == 1.0 and spec.weights[1] > 1.2


def test_shapes_and_alignment(arkr_lj_frames, spec):
    d = compute_descriptors(arkr_lj_frames, spec, cache=False, progress=False)
    n = sum(len(a) for a in arkr_lj_frames)
    assert d.values.shape == (n, 30)
    symbols = np.concatenate([a.get_chemical_symbols() for a in arkr_lj_frames])
    assert np.array_equal(np.array(spec.elements)[d.species_index], symbols)
    with DescriptorSession(spec) as session:
        np.testing.assert_array_equal(session.compute(arkr_lj_frames[2]), d.of_frame(2))


def test_species_weights_make_ar_and_kr_neighbours_differ(arkr_lj_frames, spec):
    atoms = arkr_lj_frames[0]
    swapped = atoms.copy()
    swapped.set_chemical_symbols(["Kr" if s == "Ar" else "Ar" for s in atoms.symbols])
    with DescriptorSession(spec) as session:
        a, b = session.compute(atoms), session.compute(swapped)
    assert np.max(np.abs(a - b)) > 1.0


def test_permutation_invariance(arkr_lj_frames, spec):
    atoms = arkr_lj_frames[1]
    order = np.random.default_rng(0).permutation(len(atoms))
    with DescriptorSession(spec) as session:
        a = session.compute(atoms)
        b = session.compute(atoms[order])
    np.testing.assert_allclose(b, a[order], rtol=0, atol=1e-9)


def _cluster(seed: int) -> Atoms:
    """A compact 13-atom cluster in a box wider than twice the cutoff plus its size."""
    rng = np.random.default_rng(seed)
    points = []
    while len(points) < 13:
        p = rng.uniform(-4.5, 4.5, 3)
        if all(np.linalg.norm(p - q) > 3.2 for q in points):
            points.append(p)
    symbols = ["Ar", "Kr"] * 6 + ["Ar"]
    return Atoms(symbols, positions=np.array(points) + 20.0, cell=[40.0] * 3, pbc=True)


def test_rotation_invariance(spec):
    atoms = _cluster(1)
    rotated = atoms.copy()
    centre = atoms.positions.mean(axis=0)
    rotation = Rotation.from_euler("zyx", [37.0, 71.0, -123.0], degrees=True)
    rotated.positions = rotation.apply(atoms.positions - centre) + centre
    with DescriptorSession(spec) as session:
        a, b = session.compute(atoms), session.compute(rotated)
    np.testing.assert_allclose(b, a, rtol=1e-9, atol=1e-9)
    assert np.abs(a).max() > 1.0  # a nontrivial environment, so the check can fail


def test_cache_hit_is_identical_and_keyed_on_spec(arkr_lj_frames, spec):
    """A second call reads the cache file: observed by planting a marker in that file, which
    the second call must return (LAMMPS would recompute the true values). Another spec or
    other frames miss the cache."""
    from toolkit.descriptors import cache_dir, descriptor_cache_key

    frames = arkr_lj_frames[:2]
    first = compute_descriptors(frames, spec, progress=False)
    path = cache_dir() / f"{descriptor_cache_key(frames, spec)}.npz"
    stored = dict(np.load(path))
    np.testing.assert_array_equal(stored["values"], first.values)
    stored["values"] = stored["values"] + 1000.0  # the marker
    np.savez(path, **stored)
    try:
        hit = compute_descriptors(frames, spec, progress=False)
    finally:
        path.unlink()  # never leave the marker for later tests that share the cache
    np.testing.assert_array_equal(hit.values, first.values + 1000.0)
    fresh = compute_descriptors(frames, spec, cache=False, progress=False)
    np.testing.assert_array_equal(fresh.values, first.values)  # cache=False: recomputed
    other = compute_descriptors(frames, DescriptorSpec(rfac0=0.9), progress=False)
    assert np.max(np.abs(other.values - first.values)) > 1e-3  # another key: a miss
    assert np.max(np.abs(other.values - hit.values)) > 100.0
    moved = compute_descriptors(arkr_lj_frames[2:4], spec, progress=False)
    assert np.max(np.abs(moved.values - first.values)) < 100.0  # other frames: a miss


def test_mliap_descriptor_file_equals_compute_sna(tmp_path, arkr_lj_frames, spec):
    """A linear mliap model E_i = b0 + beta . B_i reproduces the sna/atom descriptors."""
    atoms = arkr_lj_frames[3]
    with DescriptorSession(spec) as session:
        b = session.compute(atoms)
    rng = np.random.default_rng(1)
    beta = rng.normal(size=(2, spec.n_descriptors + 1)) * 1e-3
    model = tmp_path / "linear.mliap.model"
    model.write_text(
        f"2 {spec.n_descriptors + 1}\n" + "\n".join(repr(float(x)) for x in beta.reshape(-1)) + "\n"
    )
    (tmp_path / "d.mliap").write_text(spec.mliap_descriptor_text())
    with Lammps() as lmp:
        lmp.setup_box(spec.elements)
        lmp.commands([
            f"pair_style mliap model linear {model} descriptor sna {tmp_path / 'd.mliap'}",
            "pair_coeff * * Ar Kr",
            "compute pe all pe/atom",
        ])
        lmp.load_atoms(atoms, spec.type_of)
        lmp.command("run 0 post no")
        energies = lmp.gather("c_pe", 1)[:, 0]
    species = np.array([spec.type_of(s) - 1 for s in atoms.get_chemical_symbols()])
    expected = beta[species, 0] + np.einsum("ij,ij->i", b, beta[species, 1:])
    np.testing.assert_allclose(energies, expected, rtol=0, atol=1e-12)


def test_spec_toml_round_trip_and_unknown_keys(tmp_path, spec):
    path = tmp_path / "spec.toml"
    path.write_text(spec.to_toml())
    assert read_spec(path) == spec
    path.write_text("[descriptor]\ntwojmax = 4\nrcut = 5.0\n")
    with pytest.raises(SpecError, match="unknown keys \\['rcut'\\]"):
        read_spec(path)


def test_unknown_element_in_frames_is_refused(arkr_lj_frames):
    spec = DescriptorSpec(elements=("Ar",), radii=(0.5,), weights=(1.0,))
    with pytest.raises(Exception, match="unknown element"):
        compute_descriptors(arkr_lj_frames[:1], spec, cache=False, progress=False)


def test_lammps_errors_name_the_command():
    with Lammps() as lmp, pytest.raises(LammpsError, match="`pair_style nonsense`"):
        lmp.command("pair_style nonsense")
