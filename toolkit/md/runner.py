"""Molecular dynamics with a trained potential (or the classical reference) in LAMMPS.

One run = one hand-runnable input, ``lammps_inputs/md.lmp`` filled in and written next to
the outputs. The toolkit executes the same commands but splits every ``run N`` into chunks
(``run k start s stop e``, so a thermostat ramp is the same as in one long run), which gives
a progress bar, a stability check per chunk and a clean stop on Ctrl-C.

Phases: an fcc lattice at the liquid density is melted with the LJ reference (the potential
under test only ever sees liquid configurations, like its training frames), equilibrated
with the potential under test (NVT), then the production run (NVT or NVE) is dumped.

Outputs in ``out_dir``: ``md.lmp`` (input), ``log.lammps``, ``trajectory.dump`` (LAMMPS
text dump with ``element`` column: ASE ``read(..., format="lammps-dump-text")`` and OVITO
read it), ``thermo.csv`` (every chunk), ``summary.json`` (settings, means, speed, drift,
``status``: completed / interrupted / unstable).

Under ``mpirun -np N`` the run is domain-decomposed over all ranks (``COMM_WORLD``); only
rank 0 writes files and shows progress.
"""

from __future__ import annotations

import contextlib
import json
import math
import signal
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm  # the type of a progress bar

from toolkit.data import atomic_write_text
from toolkit.errors import AetkError
from toolkit.lammps import Lammps, LammpsError
from toolkit.md.inputs import (
    REFERENCE_PREFIX,
    SPECIES_FILE,
    MDRun,
    PairModel,
    input_text,
    load_pair_model,
    sections,
    species_file_text,
)
from toolkit.parallel import is_rank0, on_rank0, world
from toolkit.progress import progress as progress_bar
from toolkit.species import element
from toolkit.tables import write_table

RUN_FILE = "run.json"  # the run's MDRun, written before it starts
THERMO_COLUMNS = ("step", "time", "temp", "pe", "ke", "etotal", "press", "closest")
THERMO_NAMES = ("Step", "Time", "Temp", "PotEng", "KinEng", "TotEng", "Press", "c_closest")
# Blow-up thresholds, checked after every chunk. A liquid at 120 K has kT = 0.01 eV and a
# cohesive energy below 0.1 eV/atom; nothing physical moves the total energy by 0.2 eV/atom
# within one chunk (tens of fs), or heats it tenfold above its thermostat target.
MAX_ENERGY_JUMP = 0.2  # eV/atom between consecutive chunks of one phase
MAX_TEMPERATURE_FACTOR = 10.0  # x the highest target temperature
# A trained potential knows its training energies: per-species shifts and a scale (the std of
# a frame's (E - shifts) / sqrt(N)). An MD mean energy per atom this many scales away from the
# shifts is nothing the model was trained on, even if the run itself stays calm.
MAX_TRAINING_SCALES = 50.0

class MDInstabilityError(AetkError, RuntimeError):
    """The MD blew up (lost atoms, NaN, energy jump, runaway temperature); says where and why."""

    def __init__(self, message: str, step: int, phase: str, ps_into_phase: float):
        super().__init__(message)
        self.step = step
        self.phase = phase
        self.ps_into_phase = ps_into_phase



@dataclass
class MDResult:
    run: MDRun
    out_dir: Path
    status: str  # completed | interrupted | unstable
    thermo: list[dict] = field(default_factory=list)
    summary: dict = field(default_factory=dict)

    @property
    def trajectory(self) -> Path:
        return self.out_dir / "trajectory.dump"


class _StopRequest:
    """SIGINT sets a flag; every rank stops after the same chunk (the flag is MPI-reduced).

    A second Ctrl-C raises KeyboardInterrupt at once (the run is then not tidied up).
    """

    def __init__(self) -> None:
        self.requested = False
        self._previous = None

    def __enter__(self) -> _StopRequest:
        with contextlib.suppress(ValueError):  # not the main thread: no handler, no flag
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)

    def _handle(self, signum, frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def agreed(self, comm) -> bool:
        return bool(comm.allreduce(int(self.requested), op=_mpi_max()))


def _mpi_max():
    from toolkit.lammps import mpi

    return mpi().MAX


class _Runner:
    """Executes a filled-in input section by section, running each ``run N`` in chunks."""

    def __init__(self, lmp: Lammps, run: MDRun, model: PairModel, bar: tqdm,
                 stop: _StopRequest):
        self.lmp, self.run, self.model, self.bar, self.stop = lmp, run, model, bar, stop
        self.thermo: list[dict] = []
        self.min_distance = run.min_pair_distance_sigma * (
            min(element(s).lj_sigma for s in run.species) if run.classical
            else run.start_nn_distance)
        self.production_seconds = 0.0
        self.production_steps = 0
        self.phase_start: dict[str, int] = {}  # LAMMPS step where each phase began

    def execute(self, phase: str, commands: list[str]) -> bool:
        """Run one section; False when a stop was requested (the rest is skipped)."""
        for command in commands:
            words = command.split()
            if words[0] == "run":
                if not self._chunked_run(int(words[1]), phase):
                    return False
            else:
                self.lmp.command(command)
        return True

    def _chunked_run(self, steps: int, phase: str) -> bool:
        if steps == 0:
            return True
        start = int(self.lmp.raw.extract_global("ntimestep"))
        self.phase_start.setdefault(phase, start)
        done, first, previous = 0, True, None
        self.bar.set_description(phase)
        while done < steps:
            k = min(self.run.thermo_every, steps - done)
            began = time.perf_counter()
            try:
                self.lmp.command(f"run {k} start {start} stop {start + steps} "
                                 f"pre {'yes' if first else 'no'} post no")
            except LammpsError as exc:
                # keep LAMMPS's reason, drop the echoed command and the docs link
                reason = str(exc).split("`: ", 1)[-1].split("\n")[0].strip()
                raise self._unstable(phase, start + done + k, f"LAMMPS stopped during steps "
                                     f"{start + done}-{start + done + k}: {reason}",
                                     previous) from None
            if phase == "production":
                self.production_seconds += time.perf_counter() - began
                self.production_steps += k
            first, done = False, done + k
            row = self._thermo_row(phase)
            self._check(row, previous, phase)
            self.thermo.append(row)
            previous = row
            self.bar.update(k)
            if self.stop.agreed(self.lmp.comm):
                return False
        return True

    def _thermo_row(self, phase: str) -> dict:
        # last_thermo, not get_thermo: the latter returns 0 for compute columns (c_closest)
        printed = self.lmp.raw.last_thermo()
        row = {"phase": phase}
        for key, name in zip(THERMO_COLUMNS, THERMO_NAMES, strict=True):
            row[key] = float(printed[name])
        row["step"] = int(row["step"])
        if row["step"] != int(self.lmp.raw.extract_global("ntimestep")):
            raise RuntimeError("LAMMPS thermo output is stale; thermo must print every chunk")
        return row

    def _check(self, row: dict, previous: dict | None, phase: str) -> None:
        n = self.run.natoms
        values = [row[k] for k in THERMO_COLUMNS[1:]]
        if not all(math.isfinite(v) for v in values):
            raise self._unstable(phase, row["step"], "energy or temperature became NaN/inf",
                                 previous)
        hottest = max(self.run.temperature, 2.5 * self.run.temperature if phase == "melt" else 0)
        if row["temp"] > MAX_TEMPERATURE_FACTOR * hottest:
            raise self._unstable(phase, row["step"], f"temperature ran away to "
                                 f"{row['temp']:.4g} K (target {hottest:g} K)", previous)
        if row["closest"] < self.min_distance:
            raise self._unstable(
                phase, row["step"], f"two atoms came {row['closest']:.3f} A apart (limit "
                f"{self.min_distance:.3f} A = {self.run.min_pair_distance_sigma} sigma): the "
                "atoms collapse onto each other", previous)
        if phase != "melt" and self.model.training_energy is not None:
            expected, scale = self.model.training_energy
            distance = abs(row["pe"] / n - expected) / scale
            if distance > MAX_TRAINING_SCALES:
                raise self._unstable(
                    phase, row["step"], f"potential energy {row['pe'] / n:.5g} eV/atom is "
                    f"{distance:.3g} training scales ({scale:.3g} eV) from the training "
                    f"data's {expected:.5g} eV/atom (limit {MAX_TRAINING_SCALES:g})", previous)
        if previous is not None:
            jump = abs(row["etotal"] - previous["etotal"]) / n
            if jump > MAX_ENERGY_JUMP:
                raise self._unstable(phase, row["step"], f"total energy jumped by {jump:.4g} "
                                     f"eV/atom within {row['step'] - previous['step']} steps "
                                     f"(limit {MAX_ENERGY_JUMP} eV/atom)", previous)

    def _unstable(self, phase: str, step: int, what: str, previous: dict | None
                  ) -> MDInstabilityError:
        last = ("no earlier chunk of this phase" if previous is None else
                f"last good chunk: step {previous['step']}, T = {previous['temp']:.1f} K, "
                f"pe = {previous['pe'] / self.run.natoms:.5f} eV/atom")
        if phase == "melt" or self.model.training_energy is None:
            cause = "the timestep is too large for this temperature (classical LJ is robust)"
        else:
            cause = ("the potential is extrapolating outside its training data (e.g. atoms "
                     "closer than in any training frame) or is broken; check its test "
                     "metrics, train on more diverse frames, or try a smaller timestep")
            if self.model.wall is None:
                cause += ("; this potential has no repulsive wall: give it one by fitting or "
                          "exporting it without --no-wall (aetk fit / aetk export), or, for "
                          "an assembled potential, by assembling sources that have walls")
        # LAMMPS counts steps from the melt on and restarts at 0 for production only, so the
        # time is given from the start of the phase
        into = (step - self.phase_start.get(phase, 0)) * self.run.timestep
        return MDInstabilityError(
            f"MD of {self.run.system} with {self.run.potential} stopped in the "
            f"{phase} phase at step {step}, {into:g} ps into that phase: {what}. "
            f"{last}. Likely cause: {cause}.", step, phase, into)


def run_md(run: MDRun, out_dir: str | Path, *, model: PairModel | None = None,
           progress: bool = True, comm=None) -> MDResult:
    """Run the MD ``run`` (an :class:`MDRun`); returns the result (files in ``out_dir``).

    ``run.potential`` names the potential (a directory, or ``reference:lj``); ``model``
    instead gives LAMMPS pair lines directly (e.g. a linear SNAP for benchmarks). Raises
    :class:`MDInstabilityError` if the run blows up (after writing a partial summary); a
    Ctrl-C stops after the current chunk and returns with ``status == "interrupted"``.
    """
    model = model if model is not None else load_pair_model(run.potential, run.system,
                                                            run.cutoff_sigma)
    comm = comm if comm is not None else world()
    rank0 = is_rank0(comm)
    out = Path(out_dir).resolve()

    def prepare() -> None:
        out.mkdir(parents=True, exist_ok=True)
        for stale in ("trajectory.dump", "summary.json", "thermo.csv", "comparison.json",
                      "rdf.png"):
            (out / stale).unlink(missing_ok=True)
        run.write(out / RUN_FILE)
        # the written input names its files relative to itself, so the folder can be moved
        atomic_write_text(out / "md.lmp", input_text(run, model))
        species = species_file_text(run, model)
        if species is not None:
            atomic_write_text(out / SPECIES_FILE, species)

    # LAMMPS reads the species file on rank 0 only, but after it exists
    on_rank0(prepare, comm)
    text = input_text(run, model, dump_file=str(out / "trajectory.dump"),
                      species_file=str(out / SPECIES_FILE))
    total = run.melt_steps + run.equilibration_steps + run.steps
    status, error = "completed", None
    began = time.perf_counter()
    with (Lammps(comm=comm, log=out / "log.lammps") as lmp, _StopRequest() as stop,
          progress_bar(total=total, desc="melt", unit="step",
                       enabled=progress and rank0) as bar):
        runner = _Runner(lmp, run, model, bar, stop)
        try:
            for phase, commands in sections(text):
                if not runner.execute(phase, commands):
                    status = "interrupted"
                    break
        except MDInstabilityError as exc:
            status, error = "unstable", exc
        finally:
            # close the dump so every frame written so far is complete on disk
            with contextlib.suppress(LammpsError):
                lmp.command("undump trajectory")
    result = MDResult(run, out, status, runner.thermo)
    result.summary = _summary(result, model, runner, comm.Get_size(),
                              time.perf_counter() - began, error)
    if rank0:
        _write_thermo(out / "thermo.csv", runner.thermo)
        atomic_write_text(out / "summary.json", json.dumps(result.summary, indent=1) + "\n")
    if error is not None:
        raise error
    return result


def _summary(result: MDResult, model: PairModel, runner: _Runner, ranks: int,
             seconds: float, error: MDInstabilityError | None) -> dict:
    from toolkit.md.analysis import energy_drift, read_dump, wall_contacts

    run = result.run
    rows = [r for r in runner.thermo if r["phase"] == "production"]
    summary = {"run": asdict(run), "potential_label": model.label, "status": result.status,
               "ranks": ranks, "wall_seconds": seconds,
               "production_steps_done": runner.production_steps}
    if error is not None:
        summary["error"] = str(error)
        summary["stopped"] = {"phase": error.phase, "step": error.step,
                              "ps_into_phase": error.ps_into_phase}
    if runner.production_seconds > 0:
        ns = runner.production_steps * run.timestep * 1e-3
        summary["ns_per_day"] = ns / (runner.production_seconds / 86400.0)
    if rows:
        pe = np.array([r["pe"] for r in rows]) / run.natoms
        temp = np.array([r["temp"] for r in rows])
        closest = np.array([r["closest"] for r in rows])
        summary.update(mean_pe_per_atom=float(pe.mean()), std_pe_per_atom=float(pe.std()),
                       mean_temperature=float(temp.mean()),
                       closest_pair_min=float(closest.min()))
        dump = result.out_dir / "trajectory.dump"
        if model.wall is not None and dump.is_file():
            # how often the network needed the wall: dumped frames with a pair inside its
            # pair's wall, i.e. closer than that pair ever came in the training data - margin
            summary["wall"] = wall_contacts(read_dump(dump), model.wall, model.elements)
    if run.ensemble == "nve" and len(rows) >= 3:
        summary["nve"] = energy_drift(np.array([r["time"] for r in rows]),
                                      np.array([r["etotal"] for r in rows]),
                                      np.array([r["ke"] for r in rows]), run.natoms)
    return summary


def _write_thermo(path: Path, rows: list[dict]) -> None:
    write_table(path, rows, ("phase",) + THERMO_COLUMNS)


def compare_with_reference(result: MDResult, reference: str = "lj", progress: bool = True,
                           comm=None) -> dict:
    """Repeat ``result``'s run with the classical reference and compare the two.

    The reference run goes to ``<out>/reference_<name>/`` with identical settings (same
    seed, so the same melted start); written next to the model run: ``comparison.json``
    and ``rdf.png`` (g(r) side by side; partials for the mixture). Returns the numbers:
    integrated |g_model - g_ref| (A), mean potential energy per atom (eV), NVE drift.
    """
    from toolkit.md.analysis import compare_runs

    comm = comm if comm is not None else world()
    reference_dir = result.out_dir / f"reference_{reference.replace('+', '_')}"
    run_md(result.run.replace(potential=f"{REFERENCE_PREFIX}{reference}"), reference_dir,
           progress=progress, comm=comm)

    def compare() -> dict:
        comparison = compare_runs(result.out_dir, reference_dir,
                                  plot=result.out_dir / "rdf.png")
        atomic_write_text(result.out_dir / "comparison.json",
                          json.dumps(comparison, indent=1) + "\n")
        return comparison

    return on_rank0(compare, comm)
