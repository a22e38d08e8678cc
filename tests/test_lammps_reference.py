"""Any element and any LAMMPS reference: SW/Tersoff Si frames whose local energies sum to the
totals, refusals in one line, and Ar/Kr exactly as before."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from toolkit.descriptor_spec import DescriptorSpec, SpecError, read_spec
from toolkit.errors import AetkError
from toolkit.reference.lammps_reference import (
    LammpsRun,
    ReferenceError,
    generate_frames,
    label_frames,
    lammps_potentials_dir,
    parse_reference,
)
from toolkit.species import UnknownSpeciesError, classical_element, element, system_composition

SHORT = {"melt_steps": 300, "quench_steps": 300, "equilibration_steps": 300, "every": 20}


@pytest.fixture(scope="module")
def sw_frames():
    frames = []
    for phase, temperature in (("crystal", 900.0), ("liquid", 2500.0), ("amorphous", 600.0)):
        run = LammpsRun("lammps:si-sw", "Si", phase=phase, n_frames=3, natoms=64,
                        temperature=temperature, **SHORT)
        frames += generate_frames(run, progress=False)
    return frames


def test_sw_local_energies_sum_to_totals(sw_frames):
    for atoms in sw_frames:
        local = atoms.arrays["local_energy"]
        assert abs(local.sum() - atoms.info["energy"]) < 1e-9 * abs(atoms.info["energy"])
        assert np.ptp(local) > 1e-3  # a real partition: atoms differ
    # SW's ground state is -4.3366 eV/atom (2.1683 eV x 2); thermal frames lie above it
    per_atom = [a.info["energy"] / len(a) for a in sw_frames]
    assert all(-4.34 < e < -3.5 for e in per_atom)
    assert {a.info["phase"] for a in sw_frames} == {"crystal", "liquid", "amorphous"}


def test_relabelling_reproduces_the_sampled_labels(sw_frames):
    """label_frames (run 0 on the stored positions) gives the MD's own labels back."""
    again = label_frames(sw_frames[:3], parse_reference("lammps:si-sw"))
    for a, b in zip(sw_frames[:3], again, strict=True):
        np.testing.assert_allclose(b.arrays["local_energy"], a.arrays["local_energy"],
                                   atol=1e-9)
        np.testing.assert_allclose(b.arrays["forces"], a.arrays["forces"], atol=1e-8)


def test_forces_are_minus_the_gradient_of_the_reference_energy(sw_frames):
    reference = parse_reference("lammps:si-tersoff")
    atoms = sw_frames[0].copy()
    base = label_frames([atoms], reference)[0]
    h, i = 1e-5, 7
    shifted = []
    for sign in (1, -1):
        moved = atoms.copy()
        moved.positions[i, 0] += sign * h
        shifted.append(label_frames([moved], reference)[0].info["energy"])
    numeric = -(shifted[0] - shifted[1]) / (2 * h)
    assert abs(numeric - base.arrays["forces"][i, 0]) < 1e-5
    assert abs(base.arrays["local_energy"].sum() - base.info["energy"]) < 1e-9


def test_density_and_lattice_constant_set_the_box():
    run = LammpsRun("lammps:si-sw", "Si", phase="liquid", natoms=64, density=2.57,
                    temperature=2000.0, n_frames=1, **SHORT)
    frame = generate_frames(run, progress=False)[0]
    volume = frame.get_volume() * 1e-24  # cm^3
    mass = 64 * element("Si").mass / 6.02214076e23  # g
    assert abs(mass / volume - 2.57) < 1e-9
    run = LammpsRun("lammps:si-tersoff", "Si", natoms=216, lattice_constant=5.5,
                    temperature=300.0, n_frames=1, **SHORT)
    assert np.allclose(np.diag(generate_frames(run, progress=False)[0].cell), 16.5)


def test_cli_writes_frames_and_a_runnable_input(tmp_path):
    out = tmp_path / "si.extxyz"
    result = subprocess.run(
        [sys.executable, "-m", "toolkit.cli", "generate", "--system", "Si", "--reference",
         "lammps:si-sw", "--phase", "crystal", "--temperature", "300", "--frames", "2",
         "--every", "10", "--out", str(out), "--quiet"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    from toolkit.data import read_frames

    frames = read_frames(out)
    assert len(frames) == 2 and len(frames[0]) == 64
    text = out.with_suffix(".lmp").read_text()
    assert "pair_style sw" in text and "lattice         diamond 5.431" in text


def _reference_file(tmp_path, text: str):
    path = tmp_path / "ref.lmp"
    path.write_text(text)
    return f"lammps:{path}"


def test_a_reference_whose_per_atom_energies_do_not_add_up_is_refused(tmp_path):
    """pair_modify tail yes adds the long-range correction to the total only."""
    good = _reference_file(tmp_path, "# elements: Ar\npair_style lj/cut 8.0\n"
                           "pair_coeff 1 1 0.0104 3.4\n")
    run = LammpsRun(good, "Ar", natoms=108, density=1.4, temperature=100.0, n_frames=1,
                    **SHORT)
    frame = generate_frames(run, progress=False)[0]
    assert abs(frame.arrays["local_energy"].sum() - frame.info["energy"]) < 1e-9
    bad = _reference_file(tmp_path, "# elements: Ar\npair_style lj/cut 8.0\n"
                          "pair_coeff 1 1 0.0104 3.4\npair_modify tail yes\n")
    with pytest.raises(ReferenceError, match="does not partition its energy"):
        label_frames([frame], parse_reference(bad))


@pytest.mark.parametrize("text, message", [
    ("# elements: Ar\npair_style nonsense\npair_coeff * *\n",
     "LAMMPS rejected `pair_style nonsense`"),
    ("# elements: Si\npair_style sw\npair_coeff * * NoSuchFile.sw Si\n",
     "LAMMPS rejected `pair_coeff \\* \\* NoSuchFile.sw Si`"),
    ("# elements: Ar\npair_style lj/cut 5\npair_coeff 1 1 0.01 3.4\nfix 1 all nve\n",
     "line 4: `fix` is not allowed"),
    ("pair_style lj/cut 5\npair_coeff 1 1 0.01 3.4\n", "'# elements: Si'"),
    ("# elements: Xx\npair_style lj/cut 5\npair_coeff 1 1 0.01 3.4\n", "chemical symbols"),
])
def test_a_lammps_file_that_fails_is_one_clear_line(text, message, tmp_path):
    reference = _reference_file(tmp_path, text)
    with pytest.raises(ReferenceError, match=message) as info:
        frames = generate_frames(LammpsRun(reference, "Si" if "Si" in text else "Ar",
                                           natoms=108, lattice="fcc", lattice_constant=5.3,
                                           temperature=100.0, n_frames=1, **SHORT),
                                 progress=False)
        del frames
    assert "\n" not in str(info.value) and "ref.lmp" in str(info.value)


def test_elements_are_read_from_a_manybody_pair_coeff_line(tmp_path):
    reference = parse_reference(_reference_file(tmp_path, "pair_style sw\n"
                                                "pair_coeff * * Si.sw Si\n"))
    assert reference.elements == ("Si",)
    assert (lammps_potentials_dir() / "Si.sw").is_file()
    with pytest.raises(ReferenceError, match="no such reference file and no such preset"):
        parse_reference("lammps:si-nonsense")


def test_any_element_has_mass_and_number_but_classical_data_only_for_ar_kr():
    assert element("Si").mass == pytest.approx(28.085) and element("Si").atomic_number == 14
    assert system_composition("Si") == {"Si": 1.0}
    with pytest.raises(UnknownSpeciesError, match="no classical LJ/ATM reference for Si"):
        classical_element("Si")
    with pytest.raises(UnknownSpeciesError, match="not a chemical symbol"):
        element("Qq")
    from toolkit.reference.classical import ClassicalRun, input_text

    with pytest.raises(AetkError, match="use any LAMMPS potential as the reference"):
        input_text(ClassicalRun("Si", natoms=108))


def test_an_element_without_radius_or_weight_in_the_spec_is_refused(tmp_path):
    assert DescriptorSpec(elements=("Si",)).radii == (1.45,)  # documented default
    path = tmp_path / "cu.toml"
    path.write_text('[descriptor]\nelements = ["Cu"]\n')
    with pytest.raises(SpecError, match="element Cu has no radius and no default one") as info:
        read_spec(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)
    path.write_text('[descriptor]\nelements = ["Cu"]\nradii = [1.4]\n')
    with pytest.raises(SpecError, match="element Cu has no weight"):
        read_spec(path)
    path.write_text('[descriptor]\nelements = ["Cu"]\nradii = [1.4]\nweights = [1.0]\n')
    assert read_spec(path).cutoff == pytest.approx(1.45 * 2 * 1.4)


def test_ar_kr_defaults_are_exactly_as_before():
    """The default spec, its hash (descriptor caches, potential checks) and Ar/Kr data."""
    spec = DescriptorSpec()
    assert spec.to_dict() == {
        "twojmax": 6, "rcutfac": 1.45, "rfac0": 0.99363, "rmin0": 0.0,
        "elements": ["Ar", "Kr"], "radii": [1.6976, 1.8137], "weights": [1.0, 1.4389],
        "switchflag": 1, "bzeroflag": 1}
    assert spec.key == "d38bc0ad772bcc750341d1faef7e8eb3e4f2c27d9726664db47b3a7de2b21021"
    assert DescriptorSpec(elements=("Kr", "Ar")).radii == (1.8137, 1.6976)
    assert (element("Ar").mass, element("Kr").mass) == (39.948, 83.798)
    assert classical_element("Kr").lj_sigma == 3.6274
