"""The repulsive wall: placed below the data, exactly zero on it, repulsive below it."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from ase import Atoms

from toolkit.data import write_frames
from toolkit.descriptors import DescriptorSpec
from toolkit.evaluation import PotentialSession
from toolkit.models.fitting import FitConfig, fit_potential
from toolkit.models.networks import (
    Architecture,
    EnsembleNetworks,
    Normalisation,
    SpeciesNetworks,
)
from toolkit.models.potential import read_potential, write_potential
from toolkit.models.training import TrainingSettings
from toolkit.models.wall import RepulsiveWall, WallError, closest_pairs, merge, wall_for
from toolkit.studies.transfer import assemble

QUICK = TrainingSettings(max_iterations=20, patience=20)


def _brute_force_closest(frames, elements):
    closest = {}
    for atoms in frames:
        length = np.diag(atoms.cell.array)
        symbols = atoms.get_chemical_symbols()
        for i, j in itertools.combinations(range(len(atoms)), 2):
            d = atoms.positions[j] - atoms.positions[i]
            d -= np.rint(d / length) * length
            a, b = sorted((symbols[i], symbols[j]), key=elements.index)
            key = f"{a}-{b}"
            closest[key] = min(closest.get(key, np.inf), float(np.linalg.norm(d)))
    return closest


def _atoms_inside_walls(atoms, wall, elements=("Ar", "Kr")):
    """Atoms in a pair closer than that element pair's wall ``outer``."""
    from ase.neighborlist import neighbor_list

    highest = max(outer for _, outer in wall.cutoffs.values())
    i, j, d = neighbor_list("ijd", atoms, highest)
    symbols = atoms.get_chemical_symbols()
    inside = set()
    for a, b, r in zip(i, j, d, strict=True):
        if r < wall.cutoff(symbols[a], symbols[b], elements)[1]:
            inside |= {int(a), int(b)}
    return inside


def test_closest_pairs_match_brute_force_minimum_image(arkr_lj_frames):
    frames = arkr_lj_frames[:3]
    got = closest_pairs(frames, ["Ar", "Kr"])
    expected = _brute_force_closest(frames, ["Ar", "Kr"])
    assert set(got) == {"Ar-Ar", "Ar-Kr", "Kr-Kr"}
    for key in expected:
        assert got[key] == pytest.approx(expected[key], abs=1e-12)
    wall = wall_for(frames, ["Ar", "Kr"], margin=0.2, width=0.5)
    for key, d in expected.items():  # every element pair: its own closest pair - margin
        inner, outer = wall.cutoffs[key]
        assert outer == pytest.approx(d - 0.2, abs=1e-4)
        assert inner == pytest.approx(outer - 0.5, abs=1e-4)
    # the same frames without their Ar atoms: only Kr-Kr is seen, at the same distance,
    # and the other pairs borrow its wall
    krypton = [a[[s == "Kr" for s in a.get_chemical_symbols()]] for a in frames]
    pure = wall_for(krypton, ["Ar", "Kr"], margin=0.2, width=0.5)
    assert set(pure.closest) == {"Kr-Kr"}
    assert pure.closest["Kr-Kr"] == pytest.approx(expected["Kr-Kr"], abs=1e-12)
    assert pure.cutoffs["Ar-Ar"] == pure.cutoffs["Ar-Kr"] == pure.cutoffs["Kr-Kr"] \
        == wall.cutoffs["Kr-Kr"] != wall.cutoffs["Ar-Ar"]


def test_pairs_missing_from_the_data_get_the_lowest_wall(arkr_lj_frames):
    argon = [a[[s == "Ar" for s in a.get_chemical_symbols()]] for a in arkr_lj_frames[:3]]
    wall = wall_for(argon, ["Ar", "Kr"])
    assert set(wall.closest) == {"Ar-Ar"}
    assert wall.cutoffs["Ar-Kr"] == wall.cutoffs["Kr-Kr"] == wall.cutoffs["Ar-Ar"]
    assert wall.pair_style(["Ar", "Kr"]).count("zbl") == 3
    assert wall.pair_coeffs(["Ar", "Kr"]) == ["pair_coeff 1 1 zbl 1 18.0 18.0",
                                              "pair_coeff 1 2 zbl 2 18.0 36.0",
                                              "pair_coeff 2 2 zbl 3 36.0 36.0"]
    legacy = {"style": "zbl", "inner": 2.5, "outer": 3.0, "closest_pairs_in_data": {}}
    old = RepulsiveWall.from_dict(legacy, ["Ar", "Kr"])  # a potential with one global wall
    assert set(old.cutoffs.values()) == {(2.5, 3.0)} and len(old.cutoffs) == 3


def test_overlapping_data_leaves_no_room_for_a_wall():
    atoms = Atoms("Ar2", positions=[[0, 0, 0], [0.9, 0, 0]], cell=[8, 8, 8], pbc=True)
    with pytest.raises(WallError, match="overlapping"):
        wall_for([atoms], ["Ar", "Kr"])
    with pytest.raises(WallError, match="inner < outer"):
        RepulsiveWall({"Ar-Ar": (3.0, 2.5)}, {})


def test_overlap_of_one_pair_names_that_pair_when_others_borrow_its_wall():
    """Pure Kr data with two Kr atoms 0.9 A apart: Ar-Ar and Ar-Kr are absent, take the
    lowest (Kr-Kr) wall, and the error names Kr-Kr (it used to be KeyError 'Ar-Ar')."""
    atoms = Atoms("Kr2", positions=[[0, 0, 0], [0.9, 0, 0]], cell=[8, 8, 8], pbc=True)
    with pytest.raises(WallError, match="closest Kr-Kr pair 0.900 A \\(the Ar-Ar wall is "
                       "taken from it: no Ar-Ar pair in the data\\)"):
        wall_for([atoms], ["Ar", "Kr"])
    roomy = Atoms("Kr2", positions=[[0, 0, 0], [3.5, 0, 0]], cell=[8, 8, 8], pbc=True)
    assert wall_for([roomy], ["Ar", "Kr"]).cutoffs["Ar-Ar"] == (2.8, 3.3)  # borrowed, fine


def test_fit_refuses_data_without_room_for_a_wall_before_training(tmp_path, monkeypatch):
    import toolkit.models.fitting

    rng = np.random.default_rng(0)
    frames = []
    for _ in range(10):  # a dilute gas: no two atoms within the wall's 5 A search
        atoms = Atoms("Ar2", positions=[[0, 0, 0], [6.5 + rng.uniform(0, 0.5), 0, 0]],
                      cell=[14, 14, 14], pbc=True)
        atoms.info["energy"] = float(rng.normal())
        frames.append(atoms)
    write_frames(tmp_path / "gas.extxyz", frames)

    def no_training(*args, **kwargs):
        raise AssertionError("trained before the wall was placed")

    monkeypatch.setattr(toolkit.models.fitting, "train_ensemble", no_training)
    with pytest.raises(WallError, match="no two atoms closer"):
        fit_potential(FitConfig(tmp_path / "gas.extxyz", (2,), "tanh", training=QUICK),
                      tmp_path / "pot", progress=False)
    assert not (tmp_path / "pot").exists()


def test_merged_wall_starts_below_every_source():
    a = RepulsiveWall({"Ar-Ar": (2.5, 3.0), "Kr-Kr": (2.5, 3.0)}, {"Ar-Ar": 3.2})
    b = RepulsiveWall({"Ar-Ar": (2.7, 3.2), "Kr-Kr": (2.7, 3.2)}, {"Kr-Kr": 3.4})
    m = merge([a, b])
    # each pair from the source whose data held it: pure Ar says nothing about Kr-Kr
    assert m.cutoffs == {"Ar-Ar": (2.5, 3.0), "Kr-Kr": (2.7, 3.2)}
    assert m.closest == {"Ar-Ar": 3.2, "Kr-Kr": 3.4}
    assert merge([None, None]) is None
    with pytest.raises(WallError, match="some sources have a repulsive wall"):
        merge([a, None])  # nothing is known about the wall-less source's data


@pytest.fixture(scope="module")
def walled(tmp_path_factory, arkr_lj_frames):
    """One trained mixture network, written with and without the wall."""
    root = tmp_path_factory.mktemp("wall")
    data = root / "arkr.extxyz"
    write_frames(data, arkr_lj_frames)
    with_wall, _ = fit_potential(FitConfig(data, (4,), "tanh", seed=2, training=QUICK),
                                 root / "wall", progress=False)
    bare, _ = fit_potential(FitConfig(data, (4,), "tanh", seed=2, training=QUICK, wall=False),
                            root / "bare", progress=False)
    return with_wall, bare


def test_wall_is_recorded_and_read_back(walled, arkr_lj_frames):
    with_wall, bare = walled
    assert bare.wall is None and bare.meta["repulsive_wall"] is None
    assert with_wall.wall == wall_for(arkr_lj_frames, ["Ar", "Kr"])
    text = (with_wall.directory / "pair.lmp").read_text()
    assert "hybrid/overlay mliap" in text and "pair_coeff 1 2 zbl 2 18.0 36.0" in text
    assert torch.equal(with_wall.theta, bare.theta)


def test_wall_changes_nothing_on_the_data(walled, arkr_lj_frames):
    with_wall, bare = walled
    with PotentialSession(with_wall) as a, PotentialSession(bare) as b:
        for atoms in arkr_lj_frames[:5]:
            ea, la, fa = a.evaluate(atoms)
            eb, lb, fb = b.evaluate(atoms)
            assert ea == eb
            assert np.array_equal(la, lb) and np.array_equal(fa, fb)


def test_wall_repels_a_pair_pushed_below_it(walled, arkr_lj_frames):
    with_wall, bare = walled
    atoms = arkr_lj_frames[0].copy()
    kr = [i for i, s in enumerate(atoms.get_chemical_symbols()) if s == "Kr"]
    i, j = kr[0], kr[1]
    r = with_wall.wall.cutoffs["Kr-Kr"][0] - 0.1
    rng = np.random.default_rng(0)
    for _ in range(200):  # a direction that brings j near i and near no other atom
        direction = rng.normal(size=3)
        direction /= np.linalg.norm(direction)
        atoms.positions[j] = atoms.positions[i] + r * direction
        inside = _atoms_inside_walls(atoms, with_wall.wall)
        if inside == {i, j}:
            break
    else:
        pytest.fail("no clean placement found")
    others = [k for k in range(len(atoms)) if k not in (i, j)]
    with PotentialSession(with_wall) as a, PotentialSession(bare) as b:
        ea, la, fa = a.evaluate(atoms)
        eb, lb, fb = b.evaluate(atoms)
        assert np.array_equal(la[others], lb[others])  # the wall touches only the close pair
        wall_energy = ea - eb
        assert wall_energy > 0.5  # eV: ZBL for Kr-Kr at ~2.5 A, a real wall
        assert la[i] - lb[i] == pytest.approx(wall_energy / 2, rel=1e-6)  # pe/atom: half each
        push = (fa[j] - fb[j]) @ direction
        assert push > 1.0  # eV/A, pushing j away from i
        # forces of the overlay are minus the gradient of its energy
        h = 1e-5
        shifted = [atoms.copy(), atoms.copy()]
        shifted[0].positions[j] += h * direction
        shifted[1].positions[j] -= h * direction
        de = (a.evaluate(shifted[0])[0] - a.evaluate(shifted[1])[0]) / (2 * h)
        assert -de == pytest.approx(fa[j] @ direction, rel=1e-5, abs=1e-6)


def test_each_element_pair_has_its_own_wall_in_lammps(walled):
    """A Kr-Kr pair between the Ar-Ar and the Kr-Kr wall feels a wall; Ar-Ar there does not."""
    with_wall, bare = walled
    cut = with_wall.wall.cutoffs
    assert cut["Kr-Kr"][1] > cut["Ar-Ar"][1] + 0.05  # Kr's data never came as close
    d = 0.5 * (cut["Ar-Ar"][1] + cut["Kr-Kr"][1])
    energies = {}
    for pair in ("ArAr", "KrKr"):
        dimer = Atoms(pair, positions=[[0, 0, 0], [d, 0, 0]], cell=[12, 12, 12], pbc=True)
        with PotentialSession(with_wall) as a, PotentialSession(bare) as b:
            energies[pair] = a.evaluate(dimer)[0] - b.evaluate(dimer)[0]
    assert energies["ArAr"] == 0.0  # beyond Ar-Ar's outer: the wall is exactly zero
    assert energies["KrKr"] > 1e-4  # inside Kr-Kr's switching region: repulsive


def test_assembled_potential_keeps_each_sources_pair_walls(tmp_path):
    spec = DescriptorSpec()
    arch = Architecture((3,), "tanh")
    nets = EnsembleNetworks(arch, 2, spec.n_descriptors)
    norm = Normalisation(np.zeros((2, 30)), np.ones((2, 30)), 1.0, np.zeros(2))
    theta = torch.linspace(-0.1, 0.1, nets.n_params, dtype=torch.float64)
    walls = {"Ar": RepulsiveWall({"Ar-Ar": (2.4, 2.9), "Ar-Kr": (2.4, 2.9),
                                  "Kr-Kr": (2.4, 2.9)}, {"Ar-Ar": 3.1}),
             "Kr": RepulsiveWall({"Ar-Ar": (2.6, 3.1), "Ar-Kr": (2.6, 3.1),
                                  "Kr-Kr": (2.6, 3.1)}, {"Kr-Kr": 3.3})}
    for element, wall in walls.items():
        write_potential(tmp_path / element, SpeciesNetworks(spec, arch, theta, norm, [element]), {},
                        wall=wall)
    combined = assemble({"Ar": tmp_path / "Ar", "Kr": tmp_path / "Kr"}, tmp_path / "both")
    # Ar-Kr was in neither source's data: the lowest wall
    assert combined.wall == RepulsiveWall({"Ar-Ar": (2.4, 2.9), "Ar-Kr": (2.4, 2.9),
                                           "Kr-Kr": (2.6, 3.1)}, {"Ar-Ar": 3.1, "Kr-Kr": 3.3})
    assert read_potential(tmp_path / "both").wall == combined.wall
    write_potential(tmp_path / "bare", SpeciesNetworks(spec, arch, theta, norm, ["Kr"]), {},
                    wall=None)
    with pytest.raises(WallError, match="bare: no repulsive wall"):
        assemble({"Ar": tmp_path / "Ar", "Kr": tmp_path / "bare"}, tmp_path / "mixed")
    assert not (tmp_path / "mixed").exists()
    assert assemble({"Ar": tmp_path / "Ar", "Kr": tmp_path / "bare"}, tmp_path / "mixed",
                    wall=False).wall is None


def test_teacher_labels_are_the_bare_network_even_inside_the_wall(walled, arkr_lj_frames):
    from toolkit.evaluation import predict
    from toolkit.studies.teacher import label_with_teacher

    with_wall, bare = walled
    atoms = arkr_lj_frames[1].copy()
    i, j = 0, 1
    d = atoms.positions[j] - atoms.positions[i]
    lowest_inner = min(inner for inner, _ in with_wall.wall.cutoffs.values())
    atoms.positions[j] = atoms.positions[i] + (lowest_inner - 0.2) * d / np.linalg.norm(d)
    labelled = label_with_teacher([atoms], with_wall, share=1.0)[0]
    expected = predict(bare, [atoms], progress=False)
    assert np.array_equal(labelled.arrays["local_energy"], expected.local_energy)
    walled_energy = predict(with_wall, [atoms], progress=False).energy[0]
    assert walled_energy - labelled.info["energy"] > 0.5  # the wall would have added this
