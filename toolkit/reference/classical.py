"""Classical reference data: LAMMPS MD of the liquids with LJ or LJ + Axilrod-Teller-Muto.

The reference local energy of an atom is LAMMPS's ``compute pe/atom``: half of each LJ
pair energy and a third of each ATM triple energy. With ``lj+atm`` the partition is
genuinely many-body, so no pair descriptor represents it exactly.

Cutoffs, in reduced units: every pair i-j is cut at ``cutoff_sigma`` x sigma_ij
(default 1.6, just past the first minimum of g(r) in these liquids, so the reference
energy is that of the first coordination shell) with ``lj/smooth/linear``, so energy and
force go continuously to zero. The SNAP descriptor default uses radii sigma_i / 2, so
its pair cutoffs rcutfac (R_i + R_j) = rcutfac x sigma_ij (arithmetic sigma mixing) scale
with the reference pair by pair; rcutfac 1.45 (not 1.6) won the representability search
(see toolkit/descriptors.py and docs/emergence.md). Longer cutoffs (e.g. ``--cutoff-sigma
2.5``) are a flag away; the descriptor spec must then grow with them (see the README
for what that does to representability).

ATM (``pair_style atm C C``) uses the largest pair cutoff C for the two bonds at each
triple's apex and for the cube root of the product r_ij r_jk r_ki; it is a hard cutoff,
so the small ATM energy jumps slightly when a triple crosses it (irrelevant under a
thermostat).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.units import bar

from toolkit.errors import AetkError
from toolkit.lammps import Lammps, render_template
from toolkit.parallel import serial
from toolkit.progress import progress as progress_bar
from toolkit.species import (
    atm_triple_c9,
    element,
    lorentz_berthelot,
    number_density,
    system_composition,
    system_counts,
)

REFERENCES = ("lj", "lj+atm")
DEFAULT_CUTOFF_SIGMA = 1.6  # pair cutoffs in units of sigma_ij
PRODUCTION_MARKER = "# --- production ---"


class ReferenceDataError(AetkError, ValueError):
    """A classical reference run or relabelling asked for something impossible."""


TEACHER_PREFIX = "teacher:"


def parse_teacher_reference(reference: str) -> Path | None:
    """The potential directory of ``teacher:PATH``, or None for a classical reference (here,
    not in toolkit.studies.teacher, so that checking a reference needs no PyTorch)."""
    if reference.startswith(TEACHER_PREFIX):
        path = reference[len(TEACHER_PREFIX):]
        if not path:
            raise ReferenceDataError("--reference teacher:PATH needs a potential directory "
                                     "after ':'")
        return Path(path)
    if reference not in REFERENCES:
        raise ReferenceDataError(f"unknown reference {reference!r}; choose from {REFERENCES} or "
                         "teacher:POTENTIAL_DIR")
    return None


class LiquidBox:
    """Mixin for runs of ``system`` with ``natoms`` atoms melted from an fcc lattice."""

    system: str
    natoms: int

    @property
    def cells(self) -> int:
        return fcc_cells(self.natoms)

    @property
    def species(self) -> list[str]:
        return list(system_composition(self.system))


@dataclass(frozen=True)
class ClassicalRun(LiquidBox):
    """Everything that determines a reference data set (same settings, same file)."""

    system: str
    reference: str = "lj"
    n_frames: int = 100
    seed: int = 1
    natoms: int = 108
    temperature: float = 120.0  # K
    every: int = 100  # MD steps (2 fs) between frames: 0.2 ps
    cutoff_sigma: float = DEFAULT_CUTOFF_SIGMA
    melt_steps: int = 2500
    equilibration_steps: int = 10000

    def __post_init__(self) -> None:
        counts = system_counts(self.system)  # raises on unknown systems
        if counts is not None and sum(counts.values()) != self.natoms:
            raise ReferenceDataError(f"system {self.system} has {sum(counts.values())} atoms, not "
                             f"--atoms {self.natoms}")
        if len(system_composition(self.system)) > 2:
            raise ReferenceDataError(f"system {self.system}: at most two species per liquid")
        if self.reference not in REFERENCES:
            raise ReferenceDataError(f"unknown reference {self.reference!r}; choose from "
                                     f"{REFERENCES}")
        if 4 * fcc_cells(self.natoms) ** 3 != self.natoms:
            options = ", ".join(str(4 * c**3) for c in range(2, 11))
            raise ReferenceDataError(
                f"--atoms {self.natoms}: the liquid is melted from an fcc lattice, so the "
                f"atom count must be 4 n^3 ({options})"
            )
        if not 1.0 < self.cutoff_sigma <= 5.0:
            raise ReferenceDataError(f"cutoff_sigma {self.cutoff_sigma} outside (1, 5]")
        if self.n_frames < 1 or self.every < 1 or self.seed < 1:
            raise ReferenceDataError("frames, every and seed must be positive integers")


def fcc_cells(natoms: int) -> int:
    """Cubic fcc cells per box edge for ``natoms`` = 4 n^3 (rounded otherwise)."""
    return round((natoms / 4) ** (1 / 3))


def pair_cutoff(a: str, b: str, cutoff_sigma: float) -> float:
    """Reference cutoff of the a-b pair, A."""
    return cutoff_sigma * lorentz_berthelot(a, b)[1]


def pair_setup(species: list[str], reference: str,
               cutoff_sigma: float = DEFAULT_CUTOFF_SIGMA,
               present: list[str] | None = None) -> str:
    """LAMMPS pair_style/pair_coeff lines for the reference; type i+1 is species[i].

    ``present``: the species the frames hold (default: all types). The reference of a system
    is defined by its own species: the global (ATM and neighbour) cutoff is the longest pair
    cutoff among them, so relabelling pure-Ar frames in a box with Ar and Kr types gives the
    energies `aetk generate --system Ar` sampled with (5.43 A, not the Kr-Kr 5.80 A).
    """
    pairs = list(itertools.combinations_with_replacement(range(len(species)), 2))
    lj_coeffs = []
    for i, j in pairs:
        epsilon, sigma = lorentz_berthelot(species[i], species[j])
        lj_coeffs.append((i + 1, j + 1, epsilon, sigma, cutoff_sigma * sigma))
    present = species if present is None else present
    longest = max(cutoff_sigma * lorentz_berthelot(a, b)[1]
                  for a, b in itertools.combinations_with_replacement(present, 2))
    if reference == "lj":
        lines = [f"pair_style      lj/smooth/linear {longest:.10g}"]
        lines += [f"pair_coeff      {i} {j} {e:.10g} {s:.10g} {c:.10g}"
                  for i, j, e, s, c in lj_coeffs]
        return "\n".join(lines)
    lines = [f"pair_style      hybrid/overlay lj/smooth/linear {longest:.10g} "
             f"atm {longest:.10g} {longest:.10g}"]
    lines += [f"pair_coeff      {i} {j} lj/smooth/linear {e:.10g} {s:.10g} {c:.10g}"
              for i, j, e, s, c in lj_coeffs]
    for i, j, k in itertools.combinations_with_replacement(range(len(species)), 3):
        c9 = atm_triple_c9(species[i], species[j], species[k])
        lines.append(f"pair_coeff      {i + 1} {j + 1} atm {k + 1} {c9:.10g}")
    return "\n".join(lines)


def fcc_lattice_constant(system: str) -> float:
    """Cubic fcc cell edge (A) giving the liquid number density of ``system`` at 120 K."""
    return (4.0 / number_density(system_composition(system))) ** (1.0 / 3.0)


def input_text(run: ClassicalRun, dump_file: str = "frames.dump") -> str:
    """The complete, hand-runnable LAMMPS input for ``run``."""
    composition = system_composition(run.system)
    species = run.species
    density = number_density(composition)
    lattice_constant = fcc_lattice_constant(run.system)
    if len(species) == 1:
        type_assignment = "# one species: every atom is type 1"
    else:
        n_second = round(composition[species[1]] * run.natoms)
        type_assignment = f"set             type 1 type/subset 2 {n_second} {run.seed}"
    masses = "\n".join(
        f"mass            {t + 1} {element(s).mass}  # {s}" for t, s in enumerate(species)
    )
    return render_template(
        "lammps_inputs/classical_md.lmp",
        system=run.system,
        natoms=run.natoms,
        temperature=run.temperature,
        reference=run.reference,
        dump_file=dump_file,
        density=f"{density:.6f}",
        lattice_constant=f"{lattice_constant:.10f}",
        cells=run.cells,
        ntypes=len(species),
        type_assignment=type_assignment,
        masses=masses,
        pair_setup=pair_setup(species, run.reference, run.cutoff_sigma),
        thermo_every=run.every,
        melt_temperature=2.5 * run.temperature,
        seed=run.seed,
        melt_steps=run.melt_steps,
        equilibration_steps=run.equilibration_steps,
        every=run.every,
        production_steps=run.every * run.n_frames,
    )


def generate_frames(run: ClassicalRun, progress: bool = True) -> list[Atoms]:
    """Run the MD of ``run`` and return its frames with energies, forces, stress, local energies."""
    text = input_text(run)
    setup = text.split(PRODUCTION_MARKER)[0]
    species = run.species
    frames = []
    with Lammps(comm=serial()) as lmp:
        lmp.commands(setup)
        lo, hi = lmp.raw.extract_box()[:2]
        lengths = np.array(hi) - np.array(lo)
        volume = float(np.prod(lengths))
        bar_ = progress_bar(range(run.n_frames), desc=f"{run.system} {run.reference}",
                            unit="frame", enabled=progress)
        for index in bar_:
            # the first run after reset_timestep needs a full setup; later ones skip it
            lmp.command(f"run {run.every} pre {'yes' if index == 0 else 'no'} post no")
            frames.append(_harvest_frame(lmp, species, lo, lengths, volume, run))
    return frames


def _harvest_frame(lmp: Lammps, species, lo, lengths, volume, run: ClassicalRun) -> Atoms:
    thermo = lmp.raw.last_thermo()
    if int(thermo["Step"]) != int(lmp.raw.extract_global("ntimestep")):
        raise RuntimeError("LAMMPS thermo output is stale; the frame would be mislabelled")
    positions = lmp.gather("x", 3) - np.asarray(lo)
    types = lmp.gather("type", 1, integer=True)[:, 0]
    local_energy = lmp.gather("c_peatom", 1)[:, 0]
    energy = float(thermo["PotEng"])
    virial_bar = [float(thermo[f"c_virial[{k}]"]) for k in range(1, 7)]  # xx yy zz xy xz yz
    stress = -np.array([virial_bar[i] for i in (0, 1, 2, 5, 4, 3)]) * bar  # ASE Voigt order
    atoms = Atoms(
        symbols=[species[t - 1] for t in types],
        positions=positions,
        cell=np.diag(lengths),
        pbc=True,
    )
    atoms.wrap()
    atoms.arrays["forces"] = lmp.gather("f", 3)
    atoms.arrays["local_energy"] = local_energy
    atoms.info["energy"] = energy
    atoms.info["stress"] = stress
    atoms.info["system"] = run.system
    atoms.info["reference"] = run.reference
    atoms.info["cutoff_sigma"] = run.cutoff_sigma
    atoms.info["step"] = int(thermo["Step"])
    total = float(np.sum(local_energy))
    if not math.isclose(total, energy, rel_tol=0.0, abs_tol=1e-8 * max(1.0, abs(energy))):
        raise ReferenceDataError(
            f"pe/atom sums to {total!r} eV but the total is {energy!r} eV; "
            "this reference does not partition its energy"
        )
    return atoms


def run_metadata(run: ClassicalRun) -> dict:
    return {"generator": "toolkit.reference.classical", **asdict(run)}


def write_input(run: ClassicalRun, path: str | Path, dump_file: str) -> None:
    from toolkit.data import atomic_write_text

    atomic_write_text(path, input_text(run, dump_file=dump_file))


def evaluate_reference(
    frames: list[Atoms], reference: str, elements: tuple[str, ...] = ("Ar", "Kr"), comm=None,
    cutoff_sigma: float = DEFAULT_CUTOFF_SIGMA,
) -> list[Atoms]:
    """Copies of ``frames`` relabelled with the classical reference: energy, forces, local_energy.

    One LAMMPS instance for all frames; with ``comm=COMM_WORLD`` under ``mpirun`` each
    frame is domain-decomposed over the ranks (every rank returns the same frames).
    """
    if reference not in REFERENCES:
        raise ReferenceDataError(f"unknown reference {reference!r}; choose from {REFERENCES}")
    index = {s: t + 1 for t, s in enumerate(elements)}
    present = [e for e in elements if any(e in atoms.get_chemical_symbols() for atoms in frames)]
    labelled = []
    with Lammps(comm=comm if comm is not None else serial()) as lmp:
        lmp.setup_box(elements)
        lmp.commands(pair_setup(list(elements), reference, cutoff_sigma, present))
        lmp.commands(["neighbor 2.0 bin", "compute peatom all pe/atom",
                      "thermo_style custom step pe", "thermo_modify format float %.17g"])
        for atoms in frames:
            lmp.load_atoms(atoms, index.__getitem__)
            lmp.command("run 0 post no")
            copy = atoms.copy()
            # get_thermo, not last_thermo: the latter is stale when the step does not change
            copy.info["energy"] = lmp.thermo("pe")
            copy.arrays["forces"] = lmp.gather("f", 3)
            copy.arrays["local_energy"] = lmp.gather("c_peatom", 1)[:, 0]
            labelled.append(copy)
    return labelled
