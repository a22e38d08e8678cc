"""The contract every kind of potential must keep, written once (after NequIP's
``model_tests_lammps``): what LAMMPS evaluates is the model PyTorch trained, its forces are
the derivative of its energy, the number of ranks changes nothing, and the repulsive wall is
exactly zero on the data the potential was made from.

Kinds are registered in :data:`KINDS` (name -> factory); ``tests/test_contract.py`` applies
every check to every kind. A new way to make a potential (e.g. ``imported``) adds one
factory::

    def make_imported(data: ContractData, out: Path) -> Made:
        ...  # write a potential directory at out
        return Made(read_potential(out), data_frames=..., has_wall=...)

    KINDS["imported"] = make_imported

Tolerances (float64 throughout): per-atom energies 1e-10 eV between PyTorch and LAMMPS and
between rank counts; forces 1e-7 eV/A against central differences of step 1e-5 A (the
truncation error of the difference quotient is ~1e-10 eV/A here, rounding ~1e-11).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from ase import Atoms

from toolkit.models.potential import Potential

ENERGY_TOL = 1e-10  # eV per atom
FORCE_TOL = 1e-7  # eV/A, finite differences
FD_STEP = 1e-5  # A
FD_ATOMS = (0, 17, 54, 101)  # both species in the 50/50 mixture frames


@dataclass
class ContractData:
    """Frames every factory may use (written once per test session)."""

    root: Path
    arkr: Path  # ArKr LJ frames, extxyz
    ar: Path  # pure Ar LJ frames
    kr: Path  # pure Kr LJ frames


@dataclass
class Made:
    """A potential of one kind, the frames it was made from, and whether it has a wall."""

    potential: Potential
    data_frames: list[Atoms]
    has_wall: bool
    notes: dict = field(default_factory=dict)


KINDS: dict[str, Callable[[ContractData, Path], Made]] = {}


def kind(name: str):
    def register(factory: Callable[[ContractData, Path], Made]):
        KINDS[name] = factory
        return factory
    return register


# -- the checks ------------------------------------------------------------------------------
def pytorch_local_energies(potential: Potential, frames: Sequence[Atoms]) -> np.ndarray:
    """Per-atom energies (eV) of the potential's model in PyTorch on LAMMPS descriptors."""
    from toolkit.descriptors import compute_descriptors

    d = compute_descriptors(list(frames), potential.spec, cache=False, progress=False)
    return potential.model.atomic_energies(d.values, d.species_index)


def check_pytorch_equals_lammps(potential: Potential, frames: Sequence[Atoms]) -> float:
    """LAMMPS per-atom and total energies equal PyTorch's to 1e-10 eV; returns the worst."""
    from toolkit.evaluation import predict

    expected = pytorch_local_energies(potential, frames)
    got = predict(potential, frames, progress=False)
    worst = float(np.max(np.abs(got.local_energy - expected)))
    assert worst < ENERGY_TOL, f"LAMMPS vs PyTorch per-atom energies differ by {worst:.2e} eV"
    totals = np.bincount(got.frame_index, weights=expected)
    assert np.max(np.abs(got.energy - totals)) < ENERGY_TOL * max(len(a) for a in frames)
    assert np.std(expected) > 1e-5, "a flat model cannot fail this check"
    return worst


def check_forces_are_finite_differences(potential: Potential, atoms: Atoms,
                                        indices: Sequence[int] = FD_ATOMS) -> float:
    """LAMMPS forces equal ASE's central differences of the LAMMPS energy (wall included)."""
    from ase.calculators.fd import calculate_numerical_forces

    from toolkit.md.calculator import PotentialCalculator

    atoms = atoms.copy()
    atoms.calc = PotentialCalculator(potential)
    try:
        forces = atoms.get_forces()[list(indices)]
        numeric = calculate_numerical_forces(atoms, eps=FD_STEP, iatoms=list(indices))
    finally:
        atoms.calc.close()
    worst = float(np.max(np.abs(numeric - forces)))  # rows of `indices`, in order
    assert np.max(np.abs(forces)) > 1e-3, "forces too small for the check to mean anything"
    assert worst < FORCE_TOL, f"max |F_fd - F| = {worst:.2e} eV/A"
    return worst


def check_wall_is_zero_on_data(made: Made, out: Path, compressed: Atoms) -> None:
    """On every frame of its data, the potential equals its bare network bit for bit
    (energy, per-atom energies, forces); on ``compressed`` (pairs pushed inside the wall)
    it does not, so the comparison can fail."""
    from toolkit.evaluation import predict
    from toolkit.models.potential import read_potential, write_potential

    potential = made.potential
    if not made.has_wall:
        assert potential.wall is None
        assert "zbl" not in (potential.directory / "pair.lmp").read_text()
        return
    assert potential.wall is not None
    bare = read_potential(write_potential(out, potential.model, {}, wall=None))
    walled, plain = (predict(p, made.data_frames, progress=False) for p in (potential, bare))
    assert np.array_equal(walled.local_energy, plain.local_energy)
    assert np.array_equal(walled.energy, plain.energy)
    assert np.array_equal(walled.forces, plain.forces)
    inside = (predict(p, [compressed], progress=False) for p in (potential, bare))
    difference = np.subtract(*(p.local_energy for p in inside))
    assert np.max(np.abs(difference)) > 1e-4, "the wall never acts, so 'zero' says nothing"


def padded(atoms: Atoms, factor: int = 3) -> Atoms:
    """``atoms`` in a box ``factor`` times longer along every axis, empty beyond the first
    length of each: whichever axis LAMMPS cuts into ``factor`` slabs for ``factor`` ranks
    (it chooses when the session's box is made), all slabs but the first hold no atom."""
    out = atoms.copy()
    out.wrap()
    out.set_cell(out.cell.array * factor, scale_atoms=False)
    return out


def compressed(atoms: Atoms, scale: float = 0.85) -> Atoms:
    """``atoms`` with box and positions scaled down: neighbours closer than in any liquid."""
    out = atoms.copy()
    out.set_cell(out.cell.array * scale, scale_atoms=True)
    return out


RANKS_SCRIPT = """
import json
import numpy as np
from toolkit.data import read_frames
from toolkit.evaluation import PotentialSession, predict
from toolkit.models.potential import read_potential
from toolkit.parallel import world

comm = world()
assert comm.Get_size() == 3
rank = comm.Get_rank()
pair = comm.Split(0 if rank < 2 else 1, rank)  # ranks 0, 1 together; rank 2 alone (serial)
frames = read_frames("frames.extxyz")  # 2 frames: under 3 ranks, rank 2 owns none
slab = read_frames("padded.extxyz")  # atoms in the first third: empty subdomains
for name, path in json.load(open("kinds.json")).items():
    potential = read_potential(path)
    for c in (comm, pair):
        shared = predict(potential, frames, comm=c, mode="frames", progress=False)
        domain = predict(potential, slab, comm=c, mode="domain", progress=False)
        if c.Get_rank() == 0:
            np.savez(f"{name}-np{c.Get_size()}.npz", shared=shared.local_energy,
                     shared_forces=shared.forces, domain=domain.local_energy,
                     domain_forces=domain.forces)
    with PotentialSession(potential, comm=comm) as session:
        session.evaluate(slab[0])
        atoms = comm.allgather(int(session.lmp.raw.extract_global("nlocal")))
    if rank == 0:
        json.dump(atoms, open(f"{name}-atoms-per-rank.json", "w"))
"""


def run_ranks(potentials: dict[str, Path], frames: Sequence[Atoms], work: Path) -> Path:
    """Evaluate every potential under ``mpirun -np 3``: frames shared out (2 frames, so one
    rank owns none) and one padded frame domain-decomposed (empty subdomains), on 3 ranks
    and on a 2-rank and a 1-rank split of them. Files land in ``work``."""
    import json

    from mpi_helpers import run_mpi

    from toolkit.data import write_frames

    work.mkdir(parents=True, exist_ok=True)
    write_frames(work / "frames.extxyz", list(frames[:2]))
    write_frames(work / "padded.extxyz", [padded(frames[0])])
    (work / "kinds.json").write_text(json.dumps({k: str(v) for k, v in potentials.items()}))
    run_mpi(RANKS_SCRIPT, work, np=3)
    return work


def check_ranks_agree(name: str, potential: Potential, frames: Sequence[Atoms],
                      work: Path) -> None:
    """1, 2 and 3 ranks give the serial in-process numbers to 1e-10 eV, including ranks with
    no frame and subdomains with no atom."""
    import json

    from toolkit.evaluation import predict

    serial = predict(potential, list(frames[:2]), progress=False)
    slab = predict(potential, [padded(frames[0])], progress=False)
    atoms = json.loads((work / f"{name}-atoms-per-rank.json").read_text())
    assert sorted(atoms)[:2] == [0, 0] and sum(atoms) == len(frames[0]), atoms
    for ranks in (1, 2, 3):
        got = np.load(work / f"{name}-np{ranks}.npz")
        assert np.max(np.abs(got["shared"] - serial.local_energy)) < ENERGY_TOL, ranks
        assert np.max(np.abs(got["shared_forces"] - serial.forces)) < ENERGY_TOL, ranks
        assert np.max(np.abs(got["domain"] - slab.local_energy)) < ENERGY_TOL, ranks
        assert np.max(np.abs(got["domain_forces"] - slab.forces)) < ENERGY_TOL, ranks
    # negative control: the padded frame's surface atoms see other environments than in bulk
    bulk = predict(potential, list(frames[:1]), progress=False)
    assert np.max(np.abs(bulk.local_energy - slab.local_energy)) > 1e-4
