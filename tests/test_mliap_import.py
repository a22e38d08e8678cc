"""Importing mliap nn models written elsewhere: the imported potential is the same function.

Per-atom energies from LAMMPS with the ORIGINAL files (as shipped with LAMMPS, or written by
hand here in the format LAMMPS reads) must equal those of the imported potential directory,
evaluated through LAMMPS and in PyTorch, to 1e-10 eV; a perturbed model must not.
"""

from __future__ import annotations

import numpy as np
import pytest
from ase.build import bulk

from toolkit.descriptor_spec import SpecError, parse_mliap_descriptor
from toolkit.descriptors import compute_descriptors
from toolkit.evaluation import predict
from toolkit.lammps import Lammps, self_comm
from toolkit.models.mliap_import import MliapImportError, import_mliap_nn, read_mliap_nn
from toolkit.models.potential import read_potential
from toolkit.reference.lammps_reference import lammps_potentials_dir

POTENTIALS = lammps_potentials_dir()
SHIPPED = [  # (model, descriptor, crystal, lattice constant A, cells)
    ("Cu.nn.mliap.model", "Cu.snap.mliap.descriptor", "fcc", 3.615, 3),  # tanh 2x2, bzero 0
    ("Ta06A.nn.mliap.model", "Ta06A.mliap.descriptor", "bcc", 3.304, 3),  # linear
]


def _frames(symbol: str, crystal: str, a: float, cells: int, n: int = 2, seed: int = 0,
            swap: str | None = None):
    rng = np.random.default_rng(seed)
    frames = []
    for _ in range(n):
        atoms = bulk(symbol, crystal, a=a, cubic=True).repeat(cells)
        atoms.positions += rng.normal(0.0, 0.12, atoms.positions.shape)
        if swap:
            symbols = np.array(atoms.get_chemical_symbols(), dtype=object)
            symbols[rng.choice(len(atoms), len(atoms) // 3, replace=False)] = swap
            atoms.set_chemical_symbols(list(symbols))
        atoms.wrap()
        frames.append(atoms)
    return frames


def _lammps_original(model, descriptor, elements, frames) -> list[np.ndarray]:
    """Per-atom energies from LAMMPS reading the original files directly."""
    out = []
    with Lammps(comm=self_comm()) as lmp:
        lmp.setup_box(elements)
        lmp.commands([f"pair_style mliap model nn {model} descriptor sna {descriptor}",
                      "pair_coeff * * " + " ".join(elements), "neighbor 1.0 bin",
                      "compute peatom all pe/atom"])
        for atoms in frames:
            lmp.load_atoms(atoms, lambda s: elements.index(s) + 1)
            lmp.command("run 0 post no")
            out.append(lmp.gather("c_peatom", 1)[:, 0])
    return out


def _check_identical(model, descriptor, frames, tmp_path) -> float:
    potential = read_potential(import_mliap_nn(model, descriptor, tmp_path / "imported"))
    elements = list(potential.elements)
    original = np.concatenate(_lammps_original(model, descriptor, elements, frames))
    through_lammps = predict(potential, frames, progress=False).local_energy
    descriptors = compute_descriptors(frames, potential.spec, cache=False, progress=False)
    in_torch = potential.model.atomic_energies(descriptors.values, descriptors.species_index)
    assert np.ptp(original) > 1e-3  # a real test: the atoms differ
    np.testing.assert_allclose(through_lammps, original, rtol=0, atol=1e-10)
    np.testing.assert_allclose(in_torch, original, rtol=0, atol=1e-10)
    return float(np.abs(original).max())


@pytest.mark.parametrize("model, descriptor, crystal, a, cells", SHIPPED)
def test_shipped_nn_models_import_identically(model, descriptor, crystal, a, cells, tmp_path):
    symbol = model.split(".")[0].replace("06A", "")
    frames = _frames(symbol, crystal, a, cells)
    _check_identical(POTENTIALS / model, POTENTIALS / descriptor, frames, tmp_path)


def _handwritten(tmp_path, activation="sigmoid", seed=3):
    """Two elements, two hidden layers, numbers split over lines as LAMMPS allows."""
    rng = np.random.default_rng(seed)
    ndesc, hidden = 14, (5, 3)  # twojmax 4: 14 bispectrum components
    sizes = [ndesc, *hidden, 1]
    nparams = sum(o * (i + 1) for i, o in zip(sizes[:-1], sizes[1:], strict=True))
    lines = ["# written by hand in the format of src/ML-IAP/mliap_model_nn.cpp",
             f"2 {nparams}",
             f"NET {ndesc} 3 {activation} 5 {activation} 3 linear 1"]
    for _ in range(2):
        mean = rng.normal(0.0, 3.0, ndesc)
        std = rng.uniform(0.5, 20.0, ndesc)
        lines += [" ".join(repr(float(v)) for v in mean[:6]),
                  " ".join(repr(float(v)) for v in mean[6:])]
        lines += ["   " + " ".join(repr(float(v)) for v in std) + "   # scale1"]
        lines += [repr(float(v)) for v in rng.normal(0.0, 0.4, nparams)]  # one per line
    model = tmp_path / "handwritten.mliap.model"
    model.write_text("\n".join(lines) + "\n")
    descriptor = tmp_path / "handwritten.mliap.descriptor"
    descriptor.write_text("# SNAP, two elements\nrcutfac 0.8\ntwojmax 4\n\nnelems 2\n"
                          "elems Si Ge\nradelems 2.5 2.7\nwelems 1.0 0.8\nrfac0 0.95\n"
                          "rmin0 0.1\nswitchflag 1\nbzeroflag 1\nchemflag 0\n")
    return model, descriptor


@pytest.mark.parametrize("activation", ["sigmoid", "relu"])
def test_handwritten_two_element_model_imports_identically(activation, tmp_path):
    model, descriptor = _handwritten(tmp_path, activation)
    frames = _frames("Si", "diamond", 5.6, 2, swap="Ge")
    _check_identical(model, descriptor, frames, tmp_path)


def test_a_perturbed_model_is_caught(tmp_path):
    """Negative control: one parameter changed by 1e-6 moves per-atom energies beyond 1e-10."""
    model, descriptor = _handwritten(tmp_path)
    frames = _frames("Si", "diamond", 5.6, 2, swap="Ge", n=1)
    original = np.concatenate(_lammps_original(model, descriptor, ["Si", "Ge"], frames))
    lines = model.read_text().splitlines()
    # the Ge output layer is [bias, 3 weights] at the end: its bias is the 4th line from last
    lines[-4] = repr(float(lines[-4]) + 1e-6)
    model.write_text("\n".join(lines) + "\n")
    potential = read_potential(import_mliap_nn(model, descriptor, tmp_path / "p"))
    changed = predict(potential, frames, progress=False).local_energy
    ge = np.array(frames[0].get_chemical_symbols()) == "Ge"
    np.testing.assert_allclose(changed[ge] - original[ge], 1e-6, atol=1e-12)
    np.testing.assert_allclose(changed[~ge], original[~ge], atol=1e-10)


@pytest.mark.parametrize("edit, message", [
    (lambda t: t.replace("linear 1", "tanh 1"), "output layer is 'tanh 1'"),
    (lambda t: t.replace("sigmoid 5 sigmoid 3", "sigmoid 5 tanh 3"), "share one activation"),
    (lambda t: t.replace("sigmoid 5 sigmoid 3", "softplus 5 softplus 3"), "treat it as linear"),
    (lambda t: "\n".join(t.splitlines()[:-3]), "ends inside the network parameters"),
    (lambda t: t.replace("NET 14", "NET 30"), "twojmax 4 gives 14"),
])
def test_bad_model_files_are_refused_in_one_line(edit, message, tmp_path):
    model, descriptor = _handwritten(tmp_path)
    model.write_text(edit(model.read_text()))
    with pytest.raises(MliapImportError, match=message) as info:
        read_mliap_nn(model, descriptor)
    assert "\n" not in str(info.value) and str(model) in str(info.value)


def test_a_line_straddling_two_blocks_is_refused(tmp_path):
    model, descriptor = _handwritten(tmp_path)
    lines = model.read_text().splitlines()
    # join the second half of scale0 with the first line of scale1
    lines[4] = lines[4] + " " + lines[5].split("#")[0]
    del lines[5]
    model.write_text("\n".join(lines) + "\n")
    with pytest.raises(MliapImportError, match="runs past the end of the descriptor shifts"):
        read_mliap_nn(model, descriptor)


@pytest.mark.parametrize("line, message", [
    ("chemflag 1", "chemflag 1 is not supported"),
    ("bnormflag 1", "bnormflag 1 is not supported"),
    ("wselfallflag 1", "wselfallflag 1 is not supported"),
    ("quadraticflag 1", "quadraticflag is not supported"),
    ("nmax 3", "SO3 descriptor"),
    ("rcut 4.0", "unknown keyword 'rcut'"),
])
def test_unsupported_descriptor_keywords_are_refused(line, message):
    text = ("rcutfac 4.0\ntwojmax 6\nnelems 1\nelems Cu\nradelems 0.5\nwelems 1.0\n"
            + line + "\n")
    with pytest.raises(SpecError, match=message):
        parse_mliap_descriptor(text, "d.mliap")


def test_the_so3_example_shipped_with_lammps_is_refused():
    with pytest.raises(SpecError, match="'nmax' belongs to the SO3 descriptor"):
        read_mliap_nn(POTENTIALS / "Si.nn.mliap.model", POTENTIALS / "Si.nn.mliap.descriptor")


def test_descriptor_file_parses_every_keyword():
    text = ("# comment\nrcutfac 4.67637  # trailing\ntwojmax 8\nnelems 2\nelems Ta W\n"
            "radelems 0.5 0.6\nwelems 1 0.9\nrfac0 0.98\nrmin0 0.2\nswitchflag 0\n"
            "bzeroflag 0\nbnormflag 0\nwselfallflag 0\n")
    spec = parse_mliap_descriptor(text)
    assert (spec.rcutfac, spec.twojmax, spec.elements, spec.radii, spec.weights, spec.rfac0,
            spec.rmin0, spec.switchflag, spec.bzeroflag) == (
        4.67637, 8, ("Ta", "W"), (0.5, 0.6), (1.0, 0.9), 0.98, 0.2, 0, 0)
    # and it round-trips through the toolkit's own writer
    assert parse_mliap_descriptor(spec.mliap_descriptor_text()) == spec


def test_imported_model_runs_md_from_a_crystal(tmp_path):
    """aetk md with an element that has no classical reference: start lattice given, the
    melt phase (here none) would use the model itself."""
    from toolkit.md import MDRun, run_md
    from toolkit.md.inputs import MDSettingsError

    potential = import_mliap_nn(POTENTIALS / "Cu.nn.mliap.model",
                                POTENTIALS / "Cu.snap.mliap.descriptor", tmp_path / "cu")
    run = MDRun(str(potential), "Cu", 108, 300.0, "nvt", 40, 1, lattice_constant=3.615,
                melt_steps=0, equilibration_steps=20, timestep=0.001, thermo_every=10,
                dump_every=20)
    result = run_md(run, tmp_path / "md", progress=False)
    assert result.status == "completed"
    assert "lattice         fcc 3.6150000000" in (tmp_path / "md" / "md.lmp").read_text()
    assert 2.0 < result.summary["closest_pair_min"] < 2.556  # below fcc's 2.556 A, thermal
    with pytest.raises(MDSettingsError, match="give the start lattice and lattice constant"):
        MDRun(str(potential), "Cu", 108, 300.0, "nvt", 40, 1)
