"""The shipped DFT data set as a campaign: compositions x independent trajectories x frames.

Layout (``root`` = ``datasets/dft``, ``work`` = ``data/dft``, untracked):

    root/structures/SYSTEM.extxyz   input structures, every frame labelled with its
                                    ``trajectory`` and ``trajectory_frame``
    root/records/SYSTEM.extxyz      one frame per finished single point: DFT energy and
                                    forces, basin energies and electrons, E_es, timings
                                    (the compact, committed record; CP2K's own files stay
                                    in ``work``)
    work/SYSTEM/TRAJECTORY/frame_NNNNN/   run_dft directories (claims, CP2K in/out)

A *trajectory* is one classical LJ MD run of its own seed (melted and equilibrated from
its own start), sampled every ``every`` steps, so frames of different trajectories are
independent and test frames can come from a trajectory never seen in training. The three
original systems keep the 50 frames computed before the campaign as trajectory
``lj8.5A-s7`` (full-range LJ, 8.5 A, seed 7, the generator of commit 697c3dc).

Frames are computed round-robin (frame k of every trajectory of every system before frame
k + 1), so a campaign stopped at any point leaves every system with frames of all its
trajectories. Several workers share the work directories through frame claims
(:mod:`toolkit.reference.dft.claims`); after each frame a worker merges every finished
frame into the records under a lock, so a killed worker loses at most the frame it was
computing. Frames already in the records are never recomputed, on any machine: a fresh
checkout continues where the committed records end.
"""

from __future__ import annotations

import fcntl
import json
import math
import time
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from ase import Atoms

from toolkit.data import atomic_write_text, read_frames, write_frames
from toolkit.reference.dft.cp2k import DftError, DftSettings, Launcher
from toolkit.reference.dft.runner import DONE, DftJob, frame_dir, run_dft

SYSTEMS = ("Ar32", "Kr32", "Ar16Kr16", "Ar24Kr8", "Ar8Kr24")
# the 50 frames per system computed before the campaign, from datasets/dft/NAME.extxyz
LEGACY_TRAJECTORY = "lj8.5A-s7"
LEGACY_SYSTEMS = ("Ar32", "Kr32", "Ar16Kr16")
# 300 Ry, rVV10 kernel on a 150 Ry grid: docs/dft.md (600 Ry changes E_total by 0.09 meV
# and E_es by 0.35 meV per Ar32 frame at 2.2x the cost)
SETTINGS = DftSettings(cutoff=300.0, rel_cutoff=60.0, vdw="rVV10", vdw_cutoff=150.0)


@dataclass(frozen=True)
class Trajectory:
    """One independent classical MD run that supplies input structures."""

    system: str
    name: str
    seed: int | None  # None: the legacy trajectory (stored structures only)
    n_frames: int


@dataclass(frozen=True)
class Campaign:
    """What to compute: per system ``target`` frames from independent trajectories."""

    root: Path
    work: Path
    systems: tuple[str, ...] = SYSTEMS
    target: int = 200  # frames per system
    frames_per_trajectory: int = 40
    first_seed: int = 101
    every: int = 250  # MD steps of 2 fs between frames: 0.5 ps
    cutoff_sigma: float = 2.5  # LJ cutoff of the sampling runs (8.5 A for Ar)
    natoms: int = 32
    settings: DftSettings = SETTINGS

    def trajectories(self, system: str) -> list[Trajectory]:
        out = []
        have = 0
        if system in LEGACY_SYSTEMS:
            out.append(Trajectory(system, LEGACY_TRAJECTORY, None, 50))
            have = 50
        n_new = max(0, math.ceil((self.target - have) / self.frames_per_trajectory))
        for k in range(n_new):
            seed = self.first_seed + k
            out.append(Trajectory(system, f"lj{self.cutoff_sigma:g}s-s{seed}", seed,
                                  self.frames_per_trajectory))
        return out

    def structures_path(self, system: str) -> Path:
        return self.root / "structures" / f"{system}.extxyz"

    def records_path(self, system: str) -> Path:
        return self.root / "records" / f"{system}.extxyz"

    def work_dir(self, trajectory: Trajectory) -> Path:
        return self.work / trajectory.system / trajectory.name


# -- structures ---------------------------------------------------------------------------
def _label(frames: Sequence[Atoms], trajectory: str) -> list[Atoms]:
    out = []
    for k, atoms in enumerate(frames):
        bare = Atoms(atoms.get_chemical_symbols(), atoms.positions, cell=atoms.cell, pbc=True)
        bare.info["trajectory"] = trajectory
        bare.info["trajectory_frame"] = k
        out.append(bare)
    return out


def structures(campaign: Campaign, system: str) -> dict[str, list[Atoms]]:
    """Input structures of every trajectory of ``system``; missing ones are made and stored.

    A stored legacy file without labels (the 50 structures shipped before the campaign) is
    labelled as trajectory ``lj8.5A-s7``. New trajectories are classical LJ runs
    (:class:`toolkit.reference.classical.ClassicalRun`, same seed -> same frames).
    """
    from toolkit.reference.classical import ClassicalRun, generate_frames

    path = campaign.structures_path(system)
    stored = read_frames(path) if path.is_file() else []
    changed = bool(stored) and "trajectory" not in stored[0].info
    if changed:
        stored = _label(stored, LEGACY_TRAJECTORY)
    by_name: dict[str, list[Atoms]] = {}
    for atoms in stored:
        by_name.setdefault(str(atoms.info["trajectory"]), []).append(atoms)
    for trajectory in campaign.trajectories(system):
        have = by_name.get(trajectory.name, [])
        if len(have) >= trajectory.n_frames:
            by_name[trajectory.name] = have[:trajectory.n_frames]
            continue
        if trajectory.seed is None:
            raise DftError(f"{path}: the {trajectory.name} structures are missing; "
                                    "restore the file from git")
        run = ClassicalRun(system, reference="lj", n_frames=trajectory.n_frames,
                           seed=trajectory.seed, natoms=campaign.natoms, every=campaign.every,
                           cutoff_sigma=campaign.cutoff_sigma)
        by_name[trajectory.name] = _label(generate_frames(run, progress=False),
                                          trajectory.name)
        changed = True
    if changed:
        ordered = [a for t in campaign.trajectories(system) for a in by_name[t.name]]
        write_frames(path, ordered)
    return {t.name: by_name[t.name] for t in campaign.trajectories(system)}


# -- records ------------------------------------------------------------------------------
@contextmanager
def _records_locked(campaign: Campaign):
    directory = campaign.root / "records"
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / ".lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def read_system_records(campaign: Campaign, system: str):
    from toolkit.reference.local_energy import read_records

    path = campaign.records_path(system)
    return read_records(path) if path.is_file() else []


def recorded(campaign: Campaign, system: str) -> dict[str, set[int]]:
    """trajectory -> frame indices already in the records."""
    out: dict[str, set[int]] = {}
    for record in read_system_records(campaign, system):
        out.setdefault(str(record.labels["trajectory"]), set()).add(
            int(record.labels["trajectory_frame"]))
    return out


def _legacy_records(campaign: Campaign, system: str):
    """The 50 frames computed before the campaign, from the shipped partitioned file."""
    from toolkit.reference.local_energy import read_records

    shipped = campaign.root / f"{system}.extxyz"
    records = read_records(shipped)
    legacy = [r for r in records if "trajectory" not in r.labels
              or r.labels["trajectory"] == LEGACY_TRAJECTORY]
    for record in legacy:
        record.labels = {"trajectory": LEGACY_TRAJECTORY, "trajectory_frame": record.index}
        # GTH-PBE-q8: 8 valence electrons per Ar or Kr pseudo-ion
        record.ion_charges = np.full(len(record.atoms), 8.0)
    return legacy


def _workdir_record(workdir: Path, trajectory: Trajectory, index: int, atoms: Atoms):
    from toolkit.reference.dft.cp2k import same_structure
    from toolkit.reference.local_energy import DftFrameRecord

    result = json.loads((workdir / "result.json").read_text())
    basins = json.loads((workdir / "basins.json").read_text())
    if not same_structure(result, atoms):
        raise DftError(f"{workdir}: result belongs to another structure than "
                         f"{trajectory.name} frame {index}; move the directory away")
    return DftFrameRecord(
        index=index, atoms=atoms, energy=float(result["energy"]),
        forces=np.asarray(result["forces"], dtype=np.float64),
        electrostatic_energy=float(result["electrostatic_energy"]),
        basin_energies=np.asarray(basins["basin_electrostatic_eV"], dtype=np.float64),
        basin_electrons=np.asarray(basins["basin_electrons"], dtype=np.float64),
        ion_charges=np.array([result["kinds"][s]["zeff"] for s in result["symbols"]]),
        grid_mismatch=float(basins["grid_mismatch_eV"]), components=result["components"],
        labels={"trajectory": trajectory.name, "trajectory_frame": index,
                "single_point_s": float(result["wall_s"]),
                "partition_s": float(basins["wall_s"]),
                "scf_steps": int(result["scf_steps"][-1])})


def collect(campaign: Campaign, system: str, inputs: dict[str, list[Atoms]]) -> int:
    """Merge every finished work-directory frame of ``system`` into its records file.

    Runs under the records lock; the file is rewritten atomically in campaign order
    (trajectory, frame). Returns the number of records.
    """
    from toolkit.reference.local_energy import record_frame

    with _records_locked(campaign):
        records = read_system_records(campaign, system)
        if not records and system in LEGACY_SYSTEMS:
            records = _legacy_records(campaign, system)
        have = {(str(r.labels["trajectory"]), int(r.labels["trajectory_frame"]))
                for r in records}
        for trajectory in campaign.trajectories(system):
            work = campaign.work_dir(trajectory)
            for index, atoms in enumerate(inputs[trajectory.name]):
                key = (trajectory.name, index)
                workdir = frame_dir(work, index)
                if key in have or not (workdir / DONE).is_file():
                    continue
                records.append(_workdir_record(workdir, trajectory, index, atoms))
                have.add(key)
        order = {t.name: k for k, t in enumerate(campaign.trajectories(system))}
        records.sort(key=lambda r: (order.get(str(r.labels["trajectory"]), len(order)),
                                    int(r.labels["trajectory_frame"])))
        frames = [record_frame(r) for r in records]
        for k, atoms in enumerate(frames):
            atoms.info["dft_frame"] = k
        if frames:
            write_frames(campaign.records_path(system), frames)
        return len(frames)


# -- computing ----------------------------------------------------------------------------
def compute(campaign: Campaign, launcher: Launcher, budget_min: float,
            log=print, inputs: dict[str, dict[str, list[Atoms]]] | None = None
            ) -> dict[str, int]:
    """Single points round-robin until every system has its target or the budget is spent.

    Returns records per system. Safe to run as several processes at once. ``inputs``
    (system -> trajectory -> frames) replaces :func:`structures`, e.g. for tests.
    """
    start = time.time()
    if inputs is None:
        inputs = {system: structures(campaign, system) for system in campaign.systems}
    counts = {system: collect(campaign, system, inputs[system]) for system in campaign.systems}
    longest = max(t.n_frames for s in campaign.systems for t in campaign.trajectories(s))
    for k in range(longest):
        for system in campaign.systems:
            done = recorded(campaign, system)
            for trajectory in campaign.trajectories(system):
                if k >= trajectory.n_frames or k in done.get(trajectory.name, set()):
                    continue
                elapsed = (time.time() - start) / 60
                if elapsed > budget_min:
                    log(f"budget of {budget_min} min reached after {elapsed:.1f} min")
                    return counts
                frames = inputs[system][trajectory.name][:k + 1]
                skip = done.get(trajectory.name, set())
                summary = run_dft(frames, campaign.work_dir(trajectory),
                                  DftJob(campaign.settings, launcher), skip=skip,
                                  progress=False)
                if summary.computed:
                    counts[system] = collect(campaign, system, inputs[system])
                    log(f"{(time.time() - start) / 60:7.1f} min  {system} {trajectory.name} "
                        f"frame {k}: {summary.wall_s[k]:.0f} s; {counts[system]} records")
                if summary.failed:
                    log(str(summary))
    return counts


def status(campaign: Campaign) -> dict[str, dict]:
    """Records per system and trajectory against the plan."""
    out = {}
    for system in campaign.systems:
        done = recorded(campaign, system)
        out[system] = {"records": sum(len(v) for v in done.values()),
                       "target": campaign.target,
                       "trajectories": {t.name: f"{len(done.get(t.name, ()))}/{t.n_frames}"
                                        for t in campaign.trajectories(system)}}
    return out


def write_status(campaign: Campaign) -> Path:
    path = campaign.root / "records" / "status.json"
    atomic_write_text(path, json.dumps(status(campaign), indent=1) + "\n")
    return path


# -- isolated atoms -----------------------------------------------------------------------------
ISOLATED = ("Ar", "Kr")


def isolated_atoms(campaign: Campaign, launcher: Launcher, box: float | None = None,
                   log=print) -> list:
    """One CP2K single point (+ its Bader basin, the whole cell) per element, alone in a
    periodic box at the campaign's settings; records in ``records/isolated.extxyz``.

    ``box`` (A): default the box of that element's pure 32-atom liquid, so the grids are
    those of the liquid frames. Resumable like every frame (work/isolated/ELEMENT).
    """
    from toolkit.reference.classical import fcc_cells, fcc_lattice_constant
    from toolkit.reference.local_energy import record_frame

    records = []
    for element in ISOLATED:
        length = box or fcc_lattice_constant(element) * fcc_cells(campaign.natoms)
        atoms = Atoms(element, positions=[[length / 2] * 3], cell=[length] * 3, pbc=True)
        trajectory = Trajectory(element, f"isolated-{length:.4f}A", None, 1)
        work = campaign.work / "isolated" / element
        summary = run_dft([atoms], work, DftJob(campaign.settings, launcher), progress=False)
        if summary.failed:
            raise DftError(str(summary))
        log(f"isolated {element} in a {length:.3f} A box: {summary}")
        record = _workdir_record(frame_dir(work, 0), trajectory, 0, atoms)
        record.labels["element"] = element
        record.labels["box_A"] = length
        records.append(record)
    frames = [record_frame(r) for r in records]
    write_frames(campaign.root / "records" / "isolated.extxyz", frames)
    return records
