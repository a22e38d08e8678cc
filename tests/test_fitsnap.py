"""FitSNAP interoperability: input files in and out, FitSNAP networks to native LAMMPS, and
FitSNAP's own descriptor code (fitsnap3 3.1.0.4, installed with the project) as a cross-check.

The FitSNAP-layout networks here are built by FitSNAP itself: its PyTorch solver, set up
from an input file the toolkit wrote, trains them and saves the checkpoint. FitSNAP 3.1.0.4
hard-wires Softplus, which LAMMPS ``nn`` cannot evaluate, so the tests swap its activation
modules for Tanh (they hold no parameters; the state dict layout is unchanged) to stand for a
FitSNAP whose activation LAMMPS can evaluate.
"""

from __future__ import annotations

import configparser
import contextlib
import io
import json
import warnings

import numpy as np
import pytest
import torch

from toolkit.descriptors import DescriptorSession, DescriptorSpec, compute_descriptors
from toolkit.interop.fitsnap import (
    FitsnapError,
    fitsnap_input_text,
    read_fitsnap_input,
    write_fitsnap_input,
)
from toolkit.interop.fitsnap_descriptors import (
    compare_descriptors,
    descriptor_crosscheck,
    fitsnap_descriptors,
)
from toolkit.interop.fitsnap_network import convert_fitsnap_network, fitsnap_network
from toolkit.models.networks import Architecture

SINGLE = DescriptorSpec(twojmax=4, rcutfac=1.6, rfac0=0.97, rmin0=0.25, elements=("Ar",),
                        radii=(1.7,), weights=(1.0,), switchflag=0, bzeroflag=0)


@pytest.fixture(scope="module")
def fitsnap():
    from toolkit.interop.fitsnap_compat import load

    return load()


def _write(tmp_path, text, name="in.fitsnap"):
    path = tmp_path / name
    path.write_text(text)
    return path


# -- input files --------------------------------------------------------------------------------
@pytest.mark.parametrize("spec", [DescriptorSpec(), SINGLE], ids=["default-ArKr", "Ar-variant"])
@pytest.mark.parametrize("hidden", [None, (16,), (12, 5)])
def test_spec_and_layer_sizes_round_trip_through_a_fitsnap_input(spec, hidden, tmp_path):
    architecture = Architecture(hidden, "tanh") if hidden else None
    path = write_fitsnap_input(tmp_path / "x.in", spec, architecture)
    config = read_fitsnap_input(path)
    assert config.spec == spec
    assert config.spec.key == spec.key
    assert config.hidden == hidden
    if hidden:
        assert config.architecture("tanh") == architecture
    # the reader follows the file: one changed weight is a different spec
    edited = path.read_text().replace("wj = 1.0", "wj = 1.001")
    assert read_fitsnap_input(_write(tmp_path, edited)).spec != spec


def test_missing_keys_take_fitsnap_defaults_not_lammps_defaults(tmp_path):
    config = read_fitsnap_input(_write(tmp_path, "[BISPECTRUM]\ntype = Ar\n"))
    spec = config.spec
    # bispectrum.py defaults; bzeroflag 0 is FitSNAP's (LAMMPS's compute default is 1)
    assert (spec.twojmax, spec.rcutfac, spec.rfac0, spec.rmin0) == (6, 4.67637, 0.99363, 0.0)
    assert (spec.radii, spec.weights, spec.switchflag, spec.bzeroflag) == ((0.5,), (1.0,), 1, 0)


def test_layout_flags_and_wselfallflag_give_the_same_spec(tmp_path):
    base = fitsnap_input_text(DescriptorSpec())
    varied = (base.replace("wselfallflag = 0", "wselfallflag = 1")
              .replace("bikflag = 0", "bikflag = 1").replace("dgradflag = 0", "dgradflag = 1"))
    assert varied != base
    assert read_fitsnap_input(_write(tmp_path, varied)).spec == DescriptorSpec()


def test_wselfallflag_does_not_change_lammps_descriptors_without_chemflag(arkr_lj_frames):
    """Why wselfallflag is accepted: without chemflag LAMMPS gives bitwise the same values."""
    spec, atoms = DescriptorSpec(), arkr_lj_frames[0]
    values = {}
    for flag in ("wselfallflag 0", "wselfallflag 1", "bnormflag 1"):
        with DescriptorSession(spec) as session:
            session.lmp.command("uncompute sna")
            session.lmp.command(f"{spec.compute_command('sna')} {flag}")
            values[flag] = session.compute(atoms)
    assert np.array_equal(values["wselfallflag 0"], values["wselfallflag 1"])
    # negative control: a flag that is refused does change them
    assert np.max(np.abs(values["bnormflag 1"] - values["wselfallflag 0"])) > 1e-3


@pytest.mark.parametrize("edit, named", [
    (("chemflag = 0", "chemflag = 1"), "chemflag"),
    (("bnormflag = 0", "bnormflag = 1"), "bnormflag"),
    (("quadraticflag = 0", "quadraticflag = 1"), "quadraticflag"),
    (("switchinnerflag = 0", "switchinnerflag = 1"), "switchinnerflag"),
    (("chemflag = 0", "chemflag = 0\nbikflg = 1"), "bikflg"),
    (("twojmax = 6 6", "twojmax = 6 8"), "twojmax"),
    (("numTypes = 2", "numTypes = 3"), "numTypes = 3"),
    (("type = Ar Kr", "type = Ar Xx"), "'Xx'"),
    (("type = Ar Kr", "type = Ar Ar"), "twice"),
    (("calculator = LAMMPSSNAP", "calculator = LAMMPSPACE"), "LAMMPSPACE"),
    (("bzeroflag = 1", "bzeroflag = maybe"), "bzeroflag"),
])
def test_unsupported_settings_are_refused_by_name(edit, named, tmp_path):
    text = fitsnap_input_text(DescriptorSpec())
    assert edit[0] in text
    path = _write(tmp_path, text.replace(*edit))
    with pytest.raises(FitsnapError) as info:
        read_fitsnap_input(path)
    assert named in str(info.value) and str(path) in str(info.value)


def test_any_element_with_its_radius_and_weight_is_read(tmp_path):
    """FitSNAP inputs give radelem and wj for every type, so elements without a toolkit
    default (Ta here) are read with the input's numbers."""
    text = fitsnap_input_text(DescriptorSpec()).replace("type = Ar Kr", "type = Ar Ta")
    spec = read_fitsnap_input(_write(tmp_path, text)).spec
    assert spec.elements == ("Ar", "Ta")
    assert spec.radii == DescriptorSpec().radii and spec.weights == DescriptorSpec().weights


@pytest.mark.parametrize("sizes, hidden", [("num_desc 10 8 1", (10, 8)), ("30 5 1", (5,)),
                                           ("num_desc 1", ()), ("31 5 1", None),
                                           ("num_desc 5 2", None)])
def test_pytorch_layer_sizes(sizes, hidden, tmp_path):
    text = fitsnap_input_text(DescriptorSpec(), Architecture((7,), "tanh"))
    path = _write(tmp_path, text.replace("layer_sizes = num_desc 7 1", f"layer_sizes = {sizes}"))
    if hidden is None:
        with pytest.raises(FitsnapError, match="layer_sizes"):
            read_fitsnap_input(path)
    else:
        assert read_fitsnap_input(path).hidden == hidden


def test_writer_refuses_values_lammps_variables_would_round():
    spec = DescriptorSpec(radii=(1 / 3 + 1.5, 1.8137))
    with pytest.raises(FitsnapError, match="15 significant digits"):
        fitsnap_input_text(spec)
    # rmin0 is written straight into compute snap, so full precision is fine there
    assert "rmin0 = 0.1234567890123456" in fitsnap_input_text(
        DescriptorSpec(rmin0=0.1234567890123456))


# -- FitSNAP's own descriptors --------------------------------------------------------------------
@pytest.mark.parametrize("spec", [DescriptorSpec(), DescriptorSpec(
    twojmax=4, rmin0=0.3, switchflag=0, bzeroflag=0, rfac0=0.95)], ids=["default", "variant"])
def test_fitsnap_descriptors_equal_toolkit_descriptors(spec, fitsnap, arkr_lj_frames):
    frames = arkr_lj_frames[:3]
    check = descriptor_crosscheck(frames, spec)
    assert check.fitsnap_version == "3.1.0.4"
    assert check.max_abs_descriptor > 1.0  # a nontrivial comparison
    if spec.bzeroflag:  # FitSNAP has per-atom rows only with bzeroflag (lammps_snap.py)
        assert check.per_atom_max_abs_diff < 1e-10
    else:
        assert check.per_atom_max_abs_diff is None
    assert check.energy_row_max_abs_diff < 1e-10


def test_crosscheck_catches_a_different_spec(fitsnap, arkr_lj_frames):
    frames = arkr_lj_frames[:2]
    theirs = fitsnap_descriptors(frames, DescriptorSpec())
    other = DescriptorSpec(weights=(1.0, 1.439))  # Kr weight 1.4389 -> 1.439
    check = compare_descriptors(theirs, compute_descriptors(frames, other, progress=False))
    assert check.per_atom_max_abs_diff > 1e-6 and check.energy_row_max_abs_diff > 1e-7


# -- FitSNAP networks to LAMMPS -----------------------------------------------------------------
def _tanh_instead_of_softplus(network: torch.nn.Sequential) -> None:
    for index, module in enumerate(network):
        if isinstance(module, torch.nn.Softplus):
            network[index] = torch.nn.Tanh()


def _fitsnap_model(fitsnap, sizes, n_types, option):
    """A float64 FitTorch as FitSNAP's solver builds it (solvers/pytorch.py)."""
    networks = [fitsnap.create_torch_network(list(sizes)) for _ in range(n_types if option == 2
                                                                          else 1)]
    for network in networks:
        _tanh_instead_of_softplus(network)
    return fitsnap.FitTorch(networks, sizes[0], False, n_types, option, dtype=torch.float64)


def _fitsnap_per_atom(model, x: np.ndarray, types: np.ndarray) -> np.ndarray:
    """Per-atom energies exactly as FitTorch.forward forms them before summing."""
    x = torch.from_numpy(x)
    with torch.no_grad():
        if model.multi_element_option == 1:
            return model.network_architecture0(x).numpy()[:, 0]
        out = np.zeros(len(x))
        for t in np.unique(types):
            out[types == t] = model.networks[t](x[types == t]).numpy()[:, 0]
        return out


def _labelled(frames):
    from ase.calculators.singlepoint import SinglePointCalculator

    out = []
    for atoms in frames:
        copy = atoms.copy()
        copy.calc = SinglePointCalculator(copy, energy=atoms.info["energy"],
                                          forces=atoms.arrays["forces"], stress=np.zeros(6))
        out.append(copy)
    return out


@pytest.fixture(scope="module")
def fitsnap_trained(fitsnap, arkr_lj_frames, tmp_path_factory):
    """FitSNAP's own PyTorch solver trains per-element networks (3 epochs) from the input file
    aetk writes, and saves its checkpoint itself."""
    from toolkit.interop.fitsnap_compat import pytorch_solver_scope

    tmp = tmp_path_factory.mktemp("fitsnap-train")
    spec, frames = DescriptorSpec(), arkr_lj_frames[:4]
    path = write_fitsnap_input(tmp / "arkr.in", spec, Architecture((6,), "tanh"))
    parser = configparser.ConfigParser(inline_comment_prefixes="#")
    parser.optionxform = str
    parser.read(path)
    # training settings a user adds; absolute paths because FitSNAP caches its output folder
    parser["PYTORCH"].update(num_epochs="3", batch_size="2", training_fraction="0.5",
                             learning_rate="1e-3", save_state_output=str(tmp / "FitTorchModel"),
                             output_file=str(tmp / "FitTorch_Pytorch.pt"))
    with open(path, "w") as handle:
        parser.write(handle)
    torch.manual_seed(0)
    cwd = tmp_path_factory.getbasetemp()
    with contextlib.chdir(tmp), contextlib.redirect_stdout(io.StringIO()), \
            warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # FitSNAP's randint(float) seed
        with pytorch_solver_scope():
            instance = fitsnap.FitSnap(str(path), arglist=["--overwrite"])
        for network in instance.solver.networks:
            _tanh_instead_of_softplus(network)
        instance.data = fitsnap.ase_scraper(_labelled(frames))
        instance.process_configs()
        instance.solver.perform_fit()
        training_descriptors = np.array(instance.pt.shared_arrays["a"].array)
        training_types = np.array(instance.pt.shared_arrays["t"].array)
    del instance
    assert cwd.exists()
    return {"input": path, "checkpoint": tmp / "FitTorchModel", "frames": frames, "spec": spec,
            "a": training_descriptors, "t": training_types}


def test_converted_fitsnap_network_in_lammps_equals_its_pytorch_energies(
        fitsnap, fitsnap_trained, tmp_path):
    from toolkit.evaluation import predict
    from toolkit.models.potential import read_potential

    run, spec, frames = fitsnap_trained, fitsnap_trained["spec"], fitsnap_trained["frames"]
    checkpoint = torch.load(run["checkpoint"], weights_only=True)
    assert set(checkpoint) == {"epoch", "model_state_dict", "optimizer_state_dict", "loss"}
    assert "network_architecture1.3.weight" in checkpoint["model_state_dict"]
    ours = compute_descriptors(frames, spec, progress=False)
    # FitSNAP trained on exactly the toolkit's descriptors and species
    assert np.max(np.abs(run["a"] - ours.values)) < 1e-10
    assert np.array_equal(run["t"] - 1, ours.species_index)

    out = convert_fitsnap_network(run["checkpoint"], run["input"], tmp_path / "pot",
                                  activation="tanh")
    potential = read_potential(out)
    lammps = predict(potential, frames, progress=False)

    model = _fitsnap_model(fitsnap, (spec.n_descriptors, 6, 1), 2, option=2)
    model.load_state_dict(checkpoint["model_state_dict"])
    expected = _fitsnap_per_atom(model, ours.values, ours.species_index)
    assert np.std(expected) > 1e-4  # per-atom energies that differ between atoms
    assert np.max(np.abs(lammps.local_energy - expected)) < 1e-10
    x = torch.from_numpy(ours.values)
    with torch.no_grad():
        totals, _ = model(x, None, torch.from_numpy(ours.frame_index),
                          torch.from_numpy(np.bincount(ours.frame_index)),
                          torch.from_numpy(ours.species_index), None, None, None, "cpu",
                          dtype=torch.float64)
    assert np.max(np.abs(lammps.energy - totals.numpy())) < 1e-10
    meta = json.loads((out / "meta.json").read_text())
    assert meta["source"]["kind"] == "FitSNAP PyTorch network"

    # negative control: the same weights read with another activation are another model
    config = read_fitsnap_input(run["input"])
    wrong = fitsnap_network(checkpoint["model_state_dict"], config, "sigmoid")
    wrong_energies = wrong.atomic_energies(ours.values, ours.species_index)
    assert np.max(np.abs(wrong_energies - expected)) > 1e-3


def test_lammps_nn_silently_evaluates_softplus_as_linear(arkr_lj_frames, tmp_path):
    """Why FitSNAP's Softplus networks are refused instead of written: LAMMPS `mliap model
    nn` takes an activation name it does not know for linear, without a word."""
    from toolkit.lammps import Lammps, self_comm
    from toolkit.models.networks import EnsembleNetworks, Normalisation, SpeciesNetworks
    from toolkit.models.potential import mliap_nn_text, pair_commands

    spec = DescriptorSpec()
    architecture = Architecture((4,), "tanh")
    theta = EnsembleNetworks(architecture, 2, spec.n_descriptors).initial_theta([3])[0]
    d = compute_descriptors(arkr_lj_frames[:1], spec, progress=False).values
    model = SpeciesNetworks(spec, architecture, theta,
                            Normalisation(np.stack([d.mean(0)] * 2), np.stack([d.std(0)] * 2),
                                          1.0, np.zeros(2)), spec.elements)
    energies = {}
    for name in ("tanh", "linear", "softplus"):
        directory = tmp_path / name
        directory.mkdir()
        text = mliap_nn_text(model)
        assert " tanh 4 linear 1" in text
        (directory / "model.mliap.nn").write_text(text.replace(" tanh 4 ", f" {name} 4 "))
        (directory / "descriptor.mliap").write_text(spec.mliap_descriptor_text())
        with Lammps(comm=self_comm()) as lmp:
            lmp.setup_box(spec.elements)
            lmp.commands(pair_commands(directory, spec))
            lmp.load_atoms(arkr_lj_frames[0], spec.type_of)
            lmp.command("run 0 post no")
            energies[name] = lmp.thermo("pe")
    assert energies["softplus"] == energies["linear"]
    assert abs(energies["tanh"] - energies["linear"]) > 1e-3


def test_fitsnap_softplus_networks_are_refused_with_the_reason(fitsnap_trained, tmp_path):
    with pytest.raises(FitsnapError) as info:
        convert_fitsnap_network(fitsnap_trained["checkpoint"], fitsnap_trained["input"],
                                tmp_path / "pot")
    message = str(info.value)
    assert "Softplus" in message and "linear" in message and "mliappy" in message
    assert not (tmp_path / "pot").exists()
    with pytest.raises(FitsnapError, match="gelu"):
        convert_fitsnap_network(fitsnap_trained["checkpoint"], fitsnap_trained["input"],
                                tmp_path / "pot", activation="gelu")


def _random_model(fitsnap, spec, hidden, option, seed=1):
    torch.manual_seed(seed)
    model = _fitsnap_model(fitsnap, (spec.n_descriptors, *hidden, 1), len(spec.elements), option)
    with torch.no_grad():  # FitSNAP's standardisation layer, then trained off the diagonal
        for network in model.networks:
            network[0].weight.copy_(torch.diag(torch.rand(spec.n_descriptors) + 0.1)
                                    + 0.01 * torch.randn(spec.n_descriptors,
                                                         spec.n_descriptors))
            network[0].bias.normal_()
    return model


@pytest.mark.parametrize("hidden, option", [((5,), 1), ((4, 3), 2), ((), 2)])
def test_fitsnap_layouts_convert_exactly(hidden, option, fitsnap, arkr_lj_frames, tmp_path):
    """Shared network (option 1), per-type networks (2), and no hidden layer (then no
    activation is involved, so even FitSNAP's default converts)."""
    spec = DescriptorSpec()
    arch = Architecture(hidden, "tanh") if hidden else Architecture((1,), "tanh")
    text = fitsnap_input_text(spec, arch).replace(
        "layer_sizes = num_desc 1 1", "layer_sizes = num_desc 1").replace(
        "multi_element_option = 2", f"multi_element_option = {option}")
    config = read_fitsnap_input(_write(tmp_path, text))
    model = _random_model(fitsnap, spec, hidden, option)
    ours = compute_descriptors(arkr_lj_frames[:2], spec, progress=False)
    expected = _fitsnap_per_atom(model, ours.values, ours.species_index)
    converted = fitsnap_network(model.state_dict(), config,
                                activation="tanh" if hidden else "softplus")
    got = converted.atomic_energies(ours.values, ours.species_index)
    assert np.max(np.abs(got - expected)) < 1e-10
    assert np.std(expected) > 1e-4


def test_eshift_is_subtracted_when_a_file_scraper_added_it(fitsnap, arkr_lj_frames, tmp_path):
    spec = DescriptorSpec()
    base = fitsnap_input_text(spec, Architecture((4,), "tanh"))
    base += "\n[ESHIFT]\nAr = -0.25\nKr = 0.5\n"
    model = _random_model(fitsnap, spec, (4,), 2)
    ours = compute_descriptors(arkr_lj_frames[:1], spec, progress=False)
    raw = _fitsnap_per_atom(model, ours.values, ours.species_index)
    shift = np.where(ours.species_index == 0, -0.25, 0.5)

    def energies(text, eshift="auto"):
        config = read_fitsnap_input(_write(tmp_path, text))
        converted = fitsnap_network(model.state_dict(), config, "tanh", eshift=eshift)
        return converted.atomic_energies(ours.values, ours.species_index)

    xyz = base + "\n[SCRAPER]\nscraper = XYZ\n"
    assert np.max(np.abs(energies(xyz) - (raw - shift))) < 1e-10
    assert np.max(np.abs(energies(xyz, "ignore") - raw)) < 1e-10
    with pytest.raises(FitsnapError, match="ASE scraper"):
        energies(base)  # no scraper named: FitSNAP's ASE path adds no shift
    assert np.max(np.abs(energies(base, "subtract") - (raw - shift))) < 1e-10


@pytest.mark.parametrize("edit, match", [
    (lambda s: {**s, "network_architecture0.2.weight": s["network_architecture0.1.weight"]},
     "Linear modules"),
    (lambda s: {k.replace("network_architecture", "net"): v for k, v in s.items()},
     "not part of a FitSNAP network"),
    (lambda s: {**s, "network_architecture0.0.weight": s["network_architecture0.0.weight"][:5]},
     "expected 30 inputs"),
    (lambda s: {k: v for k, v in s.items() if not k.startswith("network_architecture1.")},
     "multi_element_option = 2"),
    (lambda s: {**s, "network_architecture1.1.bias": s["network_architecture1.1.bias"] * np.nan},
     "NaN"),
])
def test_state_dicts_not_laid_out_like_fitsnap_are_refused(edit, match, fitsnap, tmp_path):
    spec = DescriptorSpec()
    config = read_fitsnap_input(_write(tmp_path, fitsnap_input_text(spec, Architecture(
        (4,), "tanh"))))
    state = dict(_random_model(fitsnap, spec, (4,), 2).state_dict())
    fitsnap_network(state, config, "tanh")  # the unedited one converts
    with pytest.raises(FitsnapError, match=match):
        fitsnap_network(edit(state), config, "tanh")


def test_networks_trained_against_a_reference_potential_are_refused(fitsnap, tmp_path):
    spec = DescriptorSpec()
    text = fitsnap_input_text(spec, Architecture((4,), "tanh")).replace(
        "pair_style = zero 10.0", "pair_style = hybrid/overlay zero 10.0 zbl 4.0 4.8")
    config = read_fitsnap_input(_write(tmp_path, text))
    with pytest.raises(FitsnapError, match="E - E_reference"):
        fitsnap_network(_random_model(fitsnap, spec, (4,), 2).state_dict(), config, "tanh")


# -- command line -------------------------------------------------------------------------------
def test_cli_spec_input_and_fit_from_a_fitsnap_input(tmp_path, arkr_lj_frames, capsys):
    from toolkit.cli import main
    from toolkit.data import write_frames
    from toolkit.descriptors import read_spec
    from toolkit.models.potential import read_potential

    spec = DescriptorSpec(rcutfac=1.5)
    (tmp_path / "spec.toml").write_text(spec.to_toml())
    assert main(["fitsnap", "input", "--spec", str(tmp_path / "spec.toml"), "--hidden", "5",
                 "--out", str(tmp_path / "a.in")]) == 0
    assert main(["fitsnap", "spec", "--input", str(tmp_path / "a.in"),
                 "--out", str(tmp_path / "back.toml")]) == 0
    assert read_spec(tmp_path / "back.toml") == spec

    write_frames(tmp_path / "d.extxyz", arkr_lj_frames)
    assert main(["fit", "--data", str(tmp_path / "d.extxyz"), "--fitsnap-input",
                 str(tmp_path / "a.in"), "--max-iterations", "5", "--quiet",
                 "--out", str(tmp_path / "pot")]) == 0
    potential = read_potential(tmp_path / "pot")
    assert potential.spec == spec and potential.architecture == Architecture((5,), "tanh")
    assert "not used by aetk fit: [SOLVER]" in capsys.readouterr().out

    assert main(["fitsnap", "input", "--potential", str(tmp_path / "pot"),
                 "--out", str(tmp_path / "b.in")]) == 0
    assert read_fitsnap_input(tmp_path / "b.in").architecture("tanh") == potential.architecture
    # a setting aetk cannot honour is one line naming it, exit code 2
    (tmp_path / "c.in").write_text((tmp_path / "a.in").read_text().replace(
        "chemflag = 0", "chemflag = 1"))
    assert main(["fitsnap", "spec", "--input", str(tmp_path / "c.in"),
                 "--out", str(tmp_path / "c.toml")]) == 2
    err = capsys.readouterr().err.strip()
    assert "chemflag = 1" in err and len(err.splitlines()) == 1


def test_cli_convert_and_check(fitsnap_trained, tmp_path, capsys):
    from toolkit.cli import main
    from toolkit.data import write_frames
    from toolkit.models.potential import read_potential

    run = fitsnap_trained
    args = ["fitsnap", "convert", "--input", str(run["input"]), "--model",
            str(run["checkpoint"]), "--out", str(tmp_path / "pot")]
    assert main(args) == 2  # FitSNAP's Softplus: refused, one line
    assert "Softplus" in capsys.readouterr().err
    assert main([*args, "--activation", "tanh"]) == 0
    assert read_potential(tmp_path / "pot").architecture == Architecture((6,), "tanh")

    write_frames(tmp_path / "d.extxyz", run["frames"])
    assert main(["fitsnap", "check", "--data", str(tmp_path / "d.extxyz"), "--input",
                 str(run["input"]), "--frames", "1", "--out", str(tmp_path / "c.json")]) == 0
    result = json.loads((tmp_path / "c.json").read_text())
    assert result["frames"] == 1 and result["per_atom_max_abs_diff"] < 1e-10
