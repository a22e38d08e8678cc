"""Per-atom and total energies of frames through LAMMPS with an exported potential.

Per-atom energies come from ``compute pe/atom`` of ``pair_style mliap`` (no Python in the
force loop). One LAMMPS instance per rank is reused for all of its frames. Under
``mpirun -np N`` either frames are shared out over ranks (``mode="frames"``, the fast
choice for many small boxes) or every frame is domain-decomposed over all ranks
(``mode="domain"``, for large boxes). Results are identical to a serial run.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from ase import Atoms

from toolkit.config import JobConfig
from toolkit.data import atomic_write_text, file_hash, validate_frames
from toolkit.errors import AetkError
from toolkit.lammps import Lammps
from toolkit.metrics import energy_metrics
from toolkit.models.potential import Potential
from toolkit.parallel import allgather_dict, is_rank0, serial, share_indices, world
from toolkit.progress import progress as progress_bar
from toolkit.tables import read_columns, write_table

MODES = ("frames", "domain")  # under mpirun: frames shared out, or each frame decomposed


class EvaluationError(AetkError, ValueError):
    """An evaluation was asked for something impossible (unknown mode, mixed elements)."""


@dataclass
class Prediction:
    """Predicted energies of a list of frames (atoms concatenated in frame order)."""

    energy: np.ndarray  # (F,) eV
    local_energy: np.ndarray  # (n_atoms,) eV
    forces: np.ndarray  # (n_atoms, 3) eV/A
    frame_index: np.ndarray  # (n_atoms,)

    @classmethod
    def collect(cls, per_frame: Sequence[tuple[float, np.ndarray, np.ndarray]]) -> Prediction:
        """From (energy, per-atom energies, forces) of each frame, in frame order."""
        return cls(
            energy=np.array([energy for energy, _, _ in per_frame]),
            local_energy=np.concatenate([local for _, local, _ in per_frame]),
            forces=np.concatenate([forces for _, _, forces in per_frame]),
            frame_index=np.concatenate([np.full(len(local), i)
                                        for i, (_, local, _) in enumerate(per_frame)]),
        )


class PotentialSession:
    """A LAMMPS instance with a potential loaded; frames are swapped in one after another."""

    def __init__(self, potential: Potential, comm=None):
        self.potential = potential
        self.lmp = Lammps(comm=comm if comm is not None else serial())
        self.lmp.setup_box(potential.elements)
        self.lmp.commands(potential.pair_commands())
        self.lmp.commands(["neighbor 1.0 bin", "compute peatom all pe/atom",
                           "thermo_style custom step pe"])

    def switch(self, potential: Potential) -> None:
        """Load another potential into the same LAMMPS instance (same element order)."""
        if potential.elements != self.potential.elements:
            raise EvaluationError(f"{potential.directory} has elements {potential.elements}, "
                                  f"this session {self.potential.elements}; a session only "
                                  "switches between potentials of one element set")
        self.potential = potential
        self.lmp.commands(potential.pair_commands())

    def __enter__(self) -> PotentialSession:
        return self

    def __exit__(self, *exc) -> None:
        self.lmp.close()

    def evaluate(self, atoms: Atoms) -> tuple[float, np.ndarray, np.ndarray]:
        """(energy eV, per-atom energies (N,), forces (N, 3)) of one frame."""
        self.lmp.load_atoms(atoms, self.potential.spec.type_of)
        if self.lmp.comm.Get_size() > 1:
            # Domain-decomposed ML-IAP crashed (segfault) on the 11th of a series of
            # 2,916-atom frames with LAMMPS 2025.7.22 unless its pair style is set up
            # afresh per frame; re-reading the model costs milliseconds.
            self.lmp.commands(self.potential.pair_commands())
        self.lmp.command("run 0 post no")
        return (self.lmp.thermo("pe"), self.lmp.gather("c_peatom", 1)[:, 0],
                self.lmp.gather("f", 3))


def check_frames_for(potential: Potential, frames: Sequence[Atoms], source) -> None:
    validate_frames(frames, source, require=(), cutoff=potential.spec.cutoff,
                    species=potential.elements)
    symbols = {s for atoms in frames for s in atoms.get_chemical_symbols()}
    potential.check_species(symbols, str(source or "the frames"))


def predict(
    potential: Potential,
    frames: Sequence[Atoms],
    *,
    comm=None,
    mode: str = "frames",
    progress: bool = True,
    source: str | Path | None = None,
) -> Prediction:
    """Energies, per-atom energies and forces of ``frames`` from LAMMPS; all ranks get all."""
    check_frames_for(potential, frames, source)
    if mode not in MODES:
        raise EvaluationError(f"mode must be one of {MODES}, not {mode!r}")
    comm = comm if comm is not None else serial()
    if mode == "domain" or comm.Get_size() == 1:
        mine, lammps_comm = list(range(len(frames))), comm
    else:  # frames shared out, one serial LAMMPS instance per rank
        mine, lammps_comm = share_indices(len(frames), comm), serial()
    results = {}
    with PotentialSession(potential, comm=lammps_comm) as session:
        for index in progress_bar(mine, desc="LAMMPS evaluate", unit="frame",
                                  enabled=progress and is_rank0(comm)):
            results[index] = session.evaluate(frames[index])
    if mode == "frames":
        results = allgather_dict(results, comm)
    return Prediction.collect([results[i] for i in range(len(frames))])


def score(potential: Potential, frames: Sequence[Atoms], prediction: Prediction) -> dict:
    """Metrics of a prediction against the frames' reference energies."""
    has_local = all("local_energy" in atoms.arrays for atoms in frames)
    species = np.concatenate([[potential.spec.type_of(s) - 1 for s in a.get_chemical_symbols()]
                              for a in frames])
    return energy_metrics(
        np.array([a.info["energy"] for a in frames]),
        prediction.energy,
        np.concatenate([a.arrays["local_energy"] for a in frames]) if has_local else None,
        prediction.local_energy,
        species,
        potential.elements,
        np.array([len(a) for a in frames], dtype=float),
    )


PER_ATOM_COLUMNS = ["frame", "atom_id", "species", "reference_local_energy",
                    "predicted_local_energy"]


def write_per_atom_table(path: str | Path, frames: Sequence[Atoms],
                         prediction: Prediction) -> None:
    """CSV: frame, atom id (1-based, frame order), species, reference and predicted energy
    (eV; the reference cell is empty for frames without ``local_energy``)."""
    rows = []
    k = 0
    for f, atoms in enumerate(frames):
        reference = atoms.arrays.get("local_energy")
        for i, symbol in enumerate(atoms.get_chemical_symbols()):
            rows.append({"frame": f, "atom_id": i + 1, "species": symbol,
                         "reference_local_energy": None if reference is None
                         else float(reference[i]),
                         "predicted_local_energy": float(prediction.local_energy[k])})
            k += 1
    write_table(path, rows, PER_ATOM_COLUMNS)


@dataclass(frozen=True)
class EvaluateConfig(JobConfig):
    """What `aetk evaluate` computes: a potential on frames, and how under MPI.

    Written into the metrics JSON (``config``), so a report says what made it.
    """

    potential: str  # potential directory
    data: str  # frames, extxyz
    frames: str = "all"  # "all", or "test": the potential's held-out test frames of its data
    mode: str = "frames"  # under mpirun: frames shared out over ranks, or each decomposed
    replicate: int = 1  # evaluate each frame repeated n x n x n (large-box path)

    def __post_init__(self) -> None:
        object.__setattr__(self, "potential", str(self.potential))
        object.__setattr__(self, "data", str(self.data))
        if self.frames not in ("all", "test"):
            raise EvaluationError(f"frames {self.frames!r}: choose 'all' or 'test'")
        if self.mode not in MODES:
            raise EvaluationError(f"mode {self.mode!r}: choose one of {MODES}")
        if isinstance(self.replicate, bool) or not isinstance(self.replicate, int) \
                or self.replicate < 1:
            raise EvaluationError(f"replicate {self.replicate!r}: a whole number >= 1")


def evaluate_to_files(config: EvaluateConfig, out: str | Path, progress: bool = True
                      ) -> dict:
    """The `aetk evaluate` job: predict through LAMMPS (MPI-aware), write the metrics JSON
    ``out`` (with the config) and the per-atom CSV next to it; returns the metrics."""
    from toolkit.data import read_frames
    from toolkit.models.potential import read_potential

    comm = world()
    potential = read_potential(config.potential)
    frames = read_frames(config.data)
    if config.frames == "test":
        frames = [frames[i] for i in potential.test_split(config.data)]
    if config.replicate > 1:
        frames = [replicate(atoms, config.replicate) for atoms in frames]
    prediction = predict(potential, frames, comm=comm, mode=config.mode, progress=progress,
                         source=config.data)
    metrics = score(potential, frames, prediction)
    if is_rank0(comm):
        out = Path(out)
        report = {"potential": str(potential.directory), "data": config.data,
                  "data_sha256": file_hash(config.data), "frames": len(frames),
                  "ranks": comm.Get_size(), "mode": config.mode, "config": config.to_dict(),
                  "metrics": metrics}
        atomic_write_text(out, json.dumps(report, indent=1) + "\n")
        write_per_atom_table(out.with_suffix(".atoms.csv"), frames, prediction)
    return metrics


def replicate(atoms: Atoms, n: int) -> Atoms:
    """The frame repeated n x n x n times (labels scaled), for large-box evaluation."""
    big = atoms.repeat((n, n, n))
    if "energy" in atoms.info:
        big.info["energy"] = atoms.info["energy"] * n**3
    return big


def read_per_atom_table(path: str | Path) -> dict[str, np.ndarray]:
    """The per-atom CSV as one array per column (energies float, eV)."""
    return read_columns(path, ints={"frame", "atom_id"}, texts={"species"},
                        require=PER_ATOM_COLUMNS)
