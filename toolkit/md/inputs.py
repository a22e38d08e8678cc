"""MD inputs: what a run is (:class:`MDRun`), which model it uses, and its LAMMPS input.

One run = one hand-runnable input, ``lammps_inputs/md.lmp`` filled in and written next to
the outputs (:func:`input_text`). Phases: an fcc lattice at the liquid density is melted
with the LJ reference (the potential under test only ever sees liquid configurations, like
its training frames), equilibrated with the potential under test (NVT), then the production
run (NVT or NVE) is dumped.

Other elements (no classical reference, e.g. an imported Cu or Si potential): the start is
``lattice`` (fcc, bcc, sc, hcp, diamond) at ``lattice_constant``, and the melt phase (if
any steps) uses the potential under test itself; ``melt_steps=0`` runs the crystal.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from toolkit.config import JobConfig
from toolkit.errors import AetkError
from toolkit.lammps import render_template
from toolkit.models.wall import RepulsiveWall
from toolkit.reference.classical import (
    ClassicalRun,
    LiquidBox,
    fcc_lattice_constant,
    pair_setup,
)
from toolkit.species import (
    ELEMENTS,
    element,
    number_density,
    system_composition,
    system_counts,
)

REFERENCE_PREFIX = "reference:"
SPECIES_FILE = "species.txt"
ENSEMBLES = ("nvt", "nve")
PHASES = ("melt", "equilibration", "production")


class MDSettingsError(AetkError, ValueError):
    """An MD run was asked for impossible settings."""
# Two noble-gas atoms at 0.6 sigma would cost ~1800 epsilon (~18 eV) in the LJ reference; a
# closest pair below that means the potential has no repulsive core there: a collapse.
MIN_PAIR_DISTANCE_SIGMA = 0.6


@dataclass(frozen=True)
class MDRun(LiquidBox, JobConfig):
    """Everything that determines an MD run (the `aetk md` job's config); written to
    ``run.json`` next to the outputs and into ``summary.json``."""

    potential: str  # potential directory, or "reference:lj" / "reference:lj+atm"
    system: str = "Ar"
    natoms: int = 108
    temperature: float = 120.0  # K
    ensemble: str = "nvt"
    steps: int = 5000  # production steps
    seed: int = 1
    timestep: float = 0.002  # ps
    melt_steps: int = 2500
    equilibration_steps: int = 2500
    thermo_every: int = 20  # steps per chunk and thermo line
    dump_every: int = 100  # steps between trajectory frames
    per_atom_energies: bool = False
    cutoff_sigma: float = 1.6  # classical reference only (melt and reference runs)
    # stop when two atoms come closer than this x the smallest sigma (0: never; benchmarks);
    # for elements without LJ data: x the start lattice's nearest-neighbour distance
    min_pair_distance_sigma: float = MIN_PAIR_DISTANCE_SIGMA
    lattice: str = "fcc"  # start lattice
    lattice_constant: float | None = None  # A; None: fcc at the Ar/Kr liquid density

    @property
    def classical(self) -> bool:
        """Ar/Kr liquid from fcc at the 120 K density, melted with LJ (the default path)."""
        return (all(s in ELEMENTS for s in self.species) and self.lattice == "fcc"
                and self.lattice_constant is None)

    @property
    def cells(self) -> int:
        from toolkit.reference.lammps_reference import LATTICE_BASIS

        return round((self.natoms / LATTICE_BASIS[self.lattice]) ** (1 / 3))

    @property
    def start_nn_distance(self) -> float:
        """Nearest-neighbour distance (A) of the start lattice."""
        from toolkit.studies.invariant import NN_PER_A

        a = self.lattice_constant or fcc_lattice_constant(self.system)
        return a * NN_PER_A[self.lattice]

    def __post_init__(self) -> None:
        from toolkit.reference.lammps_reference import LATTICE_BASIS

        if self.lattice not in LATTICE_BASIS:
            raise MDSettingsError(f"lattice {self.lattice!r}: choose from {list(LATTICE_BASIS)}")
        basis = LATTICE_BASIS[self.lattice]
        if basis * self.cells**3 != self.natoms:
            raise MDSettingsError(f"--atoms {self.natoms}: a {self.lattice} start has {basis} "
                                  f"n^3 atoms ({', '.join(str(basis * c**3) for c in (2, 3, 4))}"
                                  ", ...)")
        if not all(s in ELEMENTS for s in self.species) and self.lattice_constant is None:
            raise MDSettingsError(f"{self.system}: no liquid density is known for it; give the "
                                  "start lattice and lattice constant (--lattice, "
                                  "--lattice-constant)")
        if self.lattice_constant is not None and not self.lattice_constant > 0:
            raise MDSettingsError("lattice constant must be positive (A)")
        if self.classical:
            # the classical run validates system, atom count (4 n^3) and seed the same way
            ClassicalRun(self.system, natoms=self.natoms, seed=self.seed,
                         temperature=self.temperature, cutoff_sigma=self.cutoff_sigma)
        else:
            system_counts(self.system)  # raises on unknown systems
            if self.seed < 1:
                raise MDSettingsError("seed must be a positive integer")
        if self.ensemble not in ENSEMBLES:
            raise MDSettingsError(f"ensemble {self.ensemble!r}: choose from {ENSEMBLES}")
        if self.steps < 1 or min(self.melt_steps, self.equilibration_steps) < 0:
            raise MDSettingsError("steps must be positive, melt/equilibration steps non-negative")
        if self.thermo_every < 1 or self.dump_every < 1 or not 0 < self.timestep <= 0.01:
            raise MDSettingsError("thermo/dump intervals must be positive, timestep in "
                                  "(0, 0.01] ps")
        if self.temperature <= 0:
            raise MDSettingsError("temperature must be positive (K)")


@dataclass
class PairModel:
    """What LAMMPS needs to use a potential: pair lines and the atom-type order."""

    label: str
    pair_lines: list[str]
    elements: tuple[str, ...]
    training_energy: tuple[float, float] | None = None  # (eV/atom expected, eV scale)
    wall: RepulsiveWall | None = None  # the potential's repulsive wall, toolkit/models/wall.py


def load_pair_model(potential: str | Path | PairModel, system: str,
                    cutoff_sigma: float = 1.6) -> PairModel:
    """A potential directory or ``reference:lj`` / ``reference:lj+atm``, checked for ``system``.

    A :class:`PairModel` (any LAMMPS pair lines, e.g. a linear SNAP) is used as given.
    """
    if isinstance(potential, PairModel):
        return potential
    name = str(potential)
    species = set(system_composition(system))
    if name.startswith(REFERENCE_PREFIX):
        reference = name[len(REFERENCE_PREFIX):]
        elements = ("Ar", "Kr")
        # pair_setup validates nothing itself; an unknown name would give LJ silently
        from toolkit.reference.classical import REFERENCES

        if reference not in REFERENCES:
            raise MDSettingsError(f"{name!r}: choose reference:{' or reference:'.join(REFERENCES)}")
        return PairModel(f"the classical {reference} reference", pair_setup(
            list(elements), reference, cutoff_sigma).splitlines(), elements)
    from toolkit.models.potential import read_potential

    loaded = read_potential(name)
    loaded.check_species(species, f"system {system}")
    norm = loaded.normalisation
    expected = sum(x * float(norm.shift[loaded.spec.type_of(s) - 1])
                   for s, x in system_composition(system).items())
    # an imported model (aetk import) has no training energies to compare with
    training = None if "imported" in loaded.meta else (expected, float(norm.scale))
    return PairModel(f"the potential {loaded.directory}", loaded.pair_commands(),
                     loaded.spec.elements, training, loaded.wall)


def input_text(run: MDRun, model: PairModel, dump_file: str = "trajectory.dump",
               species_file: str = SPECIES_FILE) -> str:
    """The complete, hand-runnable LAMMPS input of ``run`` (``lammps_inputs/md.lmp``).

    For a mixture it reads ``species_file`` (see :func:`species_file_text`).
    """
    from toolkit.reference.lammps_reference import LATTICE_BASIS, LATTICE_VOLUME

    species = run.species
    type_of = {s: t + 1 for t, s in enumerate(model.elements)}
    if run.classical:
        density = number_density(system_composition(run.system))
        lattice_constant = fcc_lattice_constant(run.system)  # same start as the reference MD
        melt_setup = pair_setup(list(model.elements), "lj", run.cutoff_sigma)
        melt_with = "the LJ reference"
    else:
        lattice_constant = run.lattice_constant
        density = LATTICE_BASIS[run.lattice] / (LATTICE_VOLUME[run.lattice]
                                                * lattice_constant**3)
        # no classical reference for these elements: the potential under test melts it
        melt_setup = "\n".join(model.pair_lines)
        melt_with = "the potential under test (no classical reference for these elements)"
    if len(species) == 1:
        type_assignment = f"# one species: every atom is type {type_of[species[0]]}"
    else:
        # from a file, because `set type/subset` picks other atoms on other processor counts
        type_assignment = (f"# which atoms are {species[1]}: drawn by the toolkit with seed "
                           f"{run.seed} (atom id -> type)\n"
                           f"variable        species atomfile {species_file}\n"
                           "set             group all type v_species")
    masses = "\n".join(f"mass            {t} {element(s).mass}  # {s}"
                       for s, t in type_of.items())
    integrator = (f"fix             integrate all nvt temp {run.temperature} {run.temperature} "
                  "0.1 tchain 3" if run.ensemble == "nvt" else
                  "fix             integrate all nve  # microcanonical: energy drift is a test")
    columns = "id element type x y z vx vy vz fx fy fz"
    if run.per_atom_energies:
        per_atom = "compute         peatom all pe/atom  # per-atom energies, eV"
        columns += " c_peatom"
    else:
        per_atom = "# per-atom energies not requested (aetk md --per-atom)"
    return render_template(
        "lammps_inputs/md.lmp",
        system=run.system, natoms=run.natoms, temperature=run.temperature,
        potential_label=model.label, thermo_every=run.thermo_every,
        density=f"{density:.6f}", elements=" ".join(model.elements), lattice=run.lattice,
        lattice_constant=f"{lattice_constant:.10f}", cells=run.cells,
        ntypes=len(model.elements), first_type=type_of[species[0]],
        type_assignment=type_assignment, masses=masses, timestep=run.timestep,
        melt_temperature=2.5 * run.temperature,
        melt_pair_setup=melt_setup, melt_with=melt_with,
        seed=run.seed, melt_steps=run.melt_steps, pair_setup="\n".join(model.pair_lines),
        equilibration_steps=run.equilibration_steps, integrator=integrator,
        per_atom_compute=per_atom, dump_every=run.dump_every, dump_file=dump_file,
        dump_columns=columns, steps=run.steps,
    )


def species_file_text(run: MDRun, model: PairModel) -> str | None:
    """LAMMPS ``atomfile`` of atom types by id for a mixture (None for one species).

    A seeded random choice of exactly round(x N) atoms of the second species, the same on
    any number of processors (ids are in spatial order after ``reset_atoms id sort yes``).
    """
    composition = system_composition(run.system)
    species = run.species
    if len(species) == 1:
        return None
    type_of = {s: t + 1 for t, s in enumerate(model.elements)}
    types = np.full(run.natoms, type_of[species[0]])
    n_second = round(composition[species[1]] * run.natoms)
    chosen = np.random.default_rng(run.seed).choice(run.natoms, n_second, replace=False)
    types[chosen] = type_of[species[1]]
    lines = [f"# atom types of {run.system} by atom id, seed {run.seed}", str(run.natoms)]
    lines += [f"{i + 1} {t}" for i, t in enumerate(types)]
    return "\n".join(lines) + "\n"


def sections(text: str) -> list[tuple[str, list[str]]]:
    """Split an input at ``# --- name ---`` markers into (phase, commands), continuations joined."""
    out: list[tuple[str, list[str]]] = [("setup", [])]
    pending = ""
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("# ---") and stripped.endswith("---"):
            out.append((stripped.strip("#- "), []))
            continue
        command = line.split("#", 1)[0].rstrip()
        if command.endswith("&"):
            pending += command[:-1] + " "
            continue
        command, pending = (pending + command).strip(), ""
        if command:
            out[-1][1].append(command)
    return out

