"""Every kind of potential keeps the contract of tests/contract.py: PyTorch == LAMMPS to
1e-10 eV, forces == finite differences, 1 == 2 == 3 ranks (with idle ranks and empty
subdomains), repulsive wall exactly zero on its data.

Kinds: fitted (`aetk fit`), exported from a sweep (`aetk export`), assembled from pure
potentials (`aetk assemble`), teacher (`aetk generate --reference teacher:`). A new kind
registers a factory in ``contract.KINDS`` (see there)."""

from __future__ import annotations

from pathlib import Path

import pytest
from contract import (
    KINDS,
    ContractData,
    Made,
    check_forces_are_finite_differences,
    check_pytorch_equals_lammps,
    check_ranks_agree,
    check_wall_is_zero_on_data,
    compressed,
    kind,
    run_ranks,
)

from toolkit.data import read_frames, write_frames
from toolkit.models.fitting import FitConfig, fit_potential
from toolkit.models.potential import read_potential
from toolkit.models.training import TrainingSettings

QUICK = TrainingSettings(max_iterations=20, patience=20)


@kind("fitted")
def make_fitted(data: ContractData, out: Path) -> Made:
    potential, _ = fit_potential(FitConfig(str(data.arkr), (5,), "tanh", seed=1,
                                           training=QUICK), out, progress=False)
    return Made(potential, read_frames(data.arkr), has_wall=True)


@kind("sweep")
def make_sweep_member(data: ContractData, out: Path) -> Made:
    from toolkit.studies.sweep import export_member, read_config, run_sweep

    config = data.root / "contract-sweep.toml"
    config.write_text(f"""[sweep]
systems = ["ArKr"]
activations = ["sigmoid"]
depths = [2]
widths = [3]
seeds = [4]
[training]
max_iterations = 20
[data.files]
ArKr = "{data.arkr}"
""")
    run_sweep(read_config(config), out.parent / "sweep", progress=False)
    target = export_member(out.parent / "sweep", "ArKr", "sigmoid", 2, 3, 4, out)
    return Made(read_potential(target), read_frames(data.arkr), has_wall=True)


@kind("assembled")
def make_assembled(data: ContractData, out: Path) -> Made:
    from toolkit.studies.transfer import assemble

    sources = {}
    for element, path in (("Ar", data.ar), ("Kr", data.kr)):
        sources[element], _ = fit_potential(FitConfig(str(path), (4,), "tanh", seed=2,
                                                      training=QUICK),
                                            out.parent / element, progress=False)
    potential = assemble({e: p.directory for e, p in sources.items()}, out)
    return Made(potential, read_frames(data.ar) + read_frames(data.kr), has_wall=True)


@kind("teacher")
def make_teacher(data: ContractData, out: Path) -> Made:
    from toolkit.models.networks import Architecture
    from toolkit.studies.teacher import write_teacher

    frames = read_frames(data.arkr)
    write_teacher(frames, out, architecture=Architecture((4,), "relu"), settings=QUICK)
    return Made(read_potential(out), frames, has_wall=False)


@pytest.fixture(scope="module")
def contract_data(tmp_path_factory, arkr_lj_frames) -> ContractData:
    from toolkit.reference.classical import ClassicalRun, generate_frames

    root = tmp_path_factory.mktemp("contract")
    paths = {"arkr": root / "arkr.extxyz", "ar": root / "ar.extxyz", "kr": root / "kr.extxyz"}
    write_frames(paths["arkr"], arkr_lj_frames)
    for system in ("Ar", "Kr"):
        write_frames(paths[system.lower()], generate_frames(ClassicalRun(
            system, n_frames=6, seed=5, melt_steps=300, equilibration_steps=300),
            progress=False))
    return ContractData(root, **paths)


@pytest.fixture(scope="module")
def made(contract_data, tmp_path_factory) -> dict[str, Made]:
    return {name: factory(contract_data, tmp_path_factory.mktemp(name) / "potential")
            for name, factory in KINDS.items()}


@pytest.fixture(scope="module")
def ranks(made, arkr_lj_frames, tmp_path_factory) -> Path:
    """One `mpirun -np 3` for all kinds (each start of MPI costs seconds)."""
    return run_ranks({name: m.potential.directory for name, m in made.items()},
                     arkr_lj_frames, tmp_path_factory.mktemp("ranks"))


@pytest.mark.parametrize("name", sorted(KINDS))
def test_pytorch_equals_lammps(name, made, arkr_lj_frames):
    check_pytorch_equals_lammps(made[name].potential, arkr_lj_frames)


@pytest.mark.parametrize("name", sorted(KINDS))
def test_forces_are_finite_differences_also_inside_the_wall(name, made, arkr_lj_frames):
    potential = made[name].potential
    check_forces_are_finite_differences(potential, arkr_lj_frames[0])
    check_forces_are_finite_differences(potential, compressed(arkr_lj_frames[0]))


@pytest.mark.mpi
@pytest.mark.parametrize("name", sorted(KINDS))
def test_one_two_three_ranks_agree(name, made, ranks, arkr_lj_frames):
    check_ranks_agree(name, made[name].potential, arkr_lj_frames, ranks)


@pytest.mark.parametrize("name", sorted(KINDS))
def test_wall_is_exactly_zero_on_its_data(name, made, arkr_lj_frames, tmp_path):
    check_wall_is_zero_on_data(made[name], tmp_path / "bare", compressed(arkr_lj_frames[0]))


def test_the_contract_catches_a_broken_export(made, arkr_lj_frames, tmp_path):
    """Negative control for the whole contract: a potential whose nn file is edited (one
    weight changed by 1e-6, hashes updated so it still loads) fails the PyTorch check."""
    import hashlib
    import json
    import shutil

    source = made["fitted"].potential.directory
    broken = tmp_path / "broken"
    shutil.copytree(source, broken)
    nn = broken / "model.mliap.nn"
    lines = nn.read_text().splitlines()
    # the first parameter line of Ar: after its comment, the means and the stds lines
    row = next(i for i, line in enumerate(lines) if line.startswith("# element Ar")) + 3
    numbers = lines[row].split()
    numbers[1] = repr(float(numbers[1]) + 1e-6)
    lines[row] = " ".join(numbers)
    nn.write_text("\n".join(lines) + "\n")
    meta = json.loads((broken / "meta.json").read_text())
    meta["files"]["model.mliap.nn"] = hashlib.sha256(nn.read_bytes()).hexdigest()
    (broken / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(AssertionError, match="LAMMPS vs PyTorch"):
        check_pytorch_equals_lammps(read_potential(broken), arkr_lj_frames)
