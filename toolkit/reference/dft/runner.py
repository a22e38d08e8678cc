"""DFT of a list of frames, frame by frame, resumable, shared by several workers.

Each frame gets a directory ``<out>/frame_NNNNN/`` with the CP2K input and output, the
parsed result (``result.json``), the Bader basin analysis (``basins.json``) and, last, the
completion marker ``DONE``. A frame with ``DONE`` is never recomputed; a frame whose CP2K run
fails is retried once in the same call and then reported (``FAILED`` holds the reason) and
is tried again by the next call. The three cube files (valence density, total density,
Hartree potential) are reduced to per-basin numbers right after the single point and then
deleted unless ``keep_cubes`` is set: at 600 Ry one 108-atom frame writes ~0.5 GB of cubes.
Workers sharing ``out`` claim frames (:mod:`toolkit.reference.dft.claims`).
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Collection
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from ase import Atoms

from toolkit.config import JobConfig
from toolkit.progress import progress as progress_bar
from toolkit.reference.dft.claims import _claims_locked, claim_frame, release_frame
from toolkit.reference.dft.cp2k import (
    CUBES,
    PROJECT,
    DftError,
    DftSettings,
    Launcher,
    run_single_point,
    same_structure,
)

DONE, FAILED = "DONE", "FAILED"


def frame_dir(out: str | Path, index: int) -> Path:
    return Path(out) / f"frame_{index:05d}"


def _write_json(path: Path, data: dict) -> None:
    from toolkit.data import atomic_write_text

    atomic_write_text(path, json.dumps(data, indent=1, sort_keys=True) + "\n")


def _check_settings(out: Path, settings: DftSettings) -> None:
    """Refuse to mix frames computed with different settings in one directory."""
    path = out / "settings.json"
    wanted = asdict(settings)
    if path.is_file():
        stored = json.loads(path.read_text())
        if stored != wanted:
            diff = sorted(k for k in wanted if stored.get(k) != wanted[k])
            raise DftError(
                f"{out} was computed with different DFT settings ({', '.join(diff)}); "
                "use a new --out directory or the stored settings"
            )
    else:
        _write_json(path, wanted)


def _write_structures(out: Path, structures: list[Atoms]) -> None:
    """Write ``frames.extxyz`` unless it already holds these structures and more.

    Workers sharing a directory may be given different numbers of frames (a longer run
    started next to a shorter one); the longer list must survive, since
    :func:`toolkit.reference.local_energy.load_dft` reads finished frames' structures there.
    A longer stored list that starts differently is refused rather than overwritten. Check
    and write happen under the claims lock, so concurrent workers cannot shrink the file.
    """
    from toolkit.data import read_frames, write_frames

    path = out / "frames.extxyz"
    with _claims_locked(out):
        if path.is_file():
            stored = read_frames(path)
            if len(stored) > len(structures):
                if not all(a.get_chemical_symbols() == b.get_chemical_symbols()
                           and np.allclose(a.positions, b.positions, atol=1e-5)
                           for a, b in zip(stored[: len(structures)], structures, strict=True)):
                    raise DftError(
                        f"{path} holds {len(stored)} structures that differ from the "
                        f"{len(structures)} given; this directory belongs to other input "
                        "frames: use a new --out")
                return
        write_frames(path, structures)


@dataclass
class DftSummary:
    """What one call of :func:`run_dft` did."""

    out: Path
    computed: list[int]
    skipped: list[int]
    failed: dict[int, str]
    wall_s: dict[int, float]
    busy: list[int] = field(default_factory=list)

    def __str__(self) -> str:
        text = (
            f"{self.out}: {len(self.computed)} frames computed, {len(self.skipped)} already "
            f"done, {len(self.failed)} failed"
        )
        if self.busy:
            text += f", {len(self.busy)} being computed by other workers"
        if self.computed:
            text += f"; {np.mean(list(self.wall_s.values())):.1f} s per frame"
        if self.failed:
            text += "\n" + "\n".join(f"  frame {i}: {m.splitlines()[0]}" for i, m in
                                     self.failed.items())
        return text


@dataclass(frozen=True)
class DftJob(JobConfig):
    """What `aetk dft` does to each frame: the physics (``settings``, also kept in
    ``settings.json``, which a later call must match), how CP2K is launched, and what is
    kept. Written to ``job.json`` next to the frames by every call."""

    settings: DftSettings = field(default_factory=DftSettings)
    launcher: Launcher = field(default_factory=Launcher)
    keep_cubes: bool = False  # keep the three cube files (~0.5 GB per 108-atom frame)
    bader_method: str = "near-grid"

    def __post_init__(self) -> None:
        from toolkit.reference.bader import METHODS

        if self.bader_method not in METHODS:
            raise DftError(f"bader_method {self.bader_method!r}: choose from {METHODS}")


def run_dft(
    frames: list[Atoms],
    out: str | Path,
    job: DftJob | None = None,
    *,
    progress: bool = True,
    skip: Collection[int] = (),
) -> DftSummary:
    """Single points and Bader basins of every frame; resumable (see module doc).

    Writes ``<out>/frames.extxyz`` (the input structures), ``<out>/settings.json``,
    ``<out>/job.json`` and one directory per frame. Frames already marked ``DONE`` are
    skipped after checking that their structure matches; a failed frame is retried once,
    then recorded in the summary. Frames claimed by another worker sharing ``out`` are
    skipped and listed as ``busy``. ``skip``: frame indices finished elsewhere (e.g. in
    committed records), never computed.
    """

    job = job or DftJob()
    settings = job.settings
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    _check_settings(out, settings)
    job.write(out / "job.json")
    # check every finished frame before writing anything, so a wrong input cannot
    # overwrite the record of what was computed
    skip = set(skip)
    done = [i for i in range(len(frames))
            if i not in skip and (frame_dir(out, i) / DONE).is_file()]
    for index in done:
        stored = json.loads((frame_dir(out, index) / "result.json").read_text())
        if not same_structure(stored, frames[index]):
            raise DftError(
                f"{frame_dir(out, index)} holds a different structure than frame {index} of "
                "the input; the frames changed since this directory was made: use a new --out"
            )
    structures = [Atoms(a.get_chemical_symbols(), a.positions, cell=a.cell, pbc=True)
                  for a in frames]
    _write_structures(out, structures)
    summary = DftSummary(out=out, computed=[], skipped=sorted(set(done) | (skip & set(
        range(len(frames))))), failed={}, wall_s={})
    finished = set(done) | skip
    todo = [(i, a) for i, a in enumerate(frames) if i not in finished]
    bar = progress_bar(todo, desc=f"dft {out.name}", unit="frame", enabled=progress)
    for index, atoms in bar:
        workdir = frame_dir(out, index)
        if not claim_frame(workdir):
            summary.busy.append(index)
            continue
        if (workdir / DONE).is_file():  # finished by another worker after this call began
            release_frame(workdir)
            summary.skipped.append(index)
            continue
        try:
            wall = _compute_frame(atoms, workdir, job)
        finally:
            release_frame(workdir)
        if isinstance(wall, str):
            summary.failed[index] = wall
            continue
        summary.computed.append(index)
        summary.wall_s[index] = wall
        bar.set_postfix(s_per_frame=f"{wall:.0f}")
    return summary


def _compute_frame(atoms: Atoms, workdir: Path, job: DftJob) -> float | str:
    """Single point + basins of one claimed frame; its wall time (s), or the error text."""
    from toolkit.reference.bader import analyse_frame

    (workdir / FAILED).unlink(missing_ok=True)
    error = None
    for attempt in range(2):  # a crash (node hiccup, SCF trouble) gets one retry
        try:
            result = run_single_point(atoms, workdir, job.settings, job.launcher)
            result["attempts"] = attempt + 1
            start = time.perf_counter()
            basins = analyse_frame(workdir, result, method=job.bader_method)
            basins["wall_s"] = time.perf_counter() - start
            break
        except (DftError, subprocess.SubprocessError, OSError, ValueError) as exc:
            error = f"{type(exc).__name__}: {exc}"
    else:
        error = f"failed after 2 attempts; last error: {error}"
        (workdir / FAILED).write_text(error + "\n")
        return error
    _write_json(workdir / "result.json", result)
    _write_json(workdir / "basins.json", basins)
    if not job.keep_cubes:
        for name in CUBES.values():
            (workdir / name).unlink(missing_ok=True)
    for junk in workdir.glob(f"{PROJECT}-RESTART.wfn*"):
        junk.unlink()  # wavefunction restart files are large and never reused here
    (workdir / DONE).write_text(f"{time.strftime('%Y-%m-%dT%H:%M:%S')}\n")
    return result["wall_s"] + basins["wall_s"]


def dft_command(data: str | Path, out: str | Path, job: DftJob | None = None,
                progress: bool = True) -> DftSummary:
    """``aetk dft --data FRAMES --out DIR``: read and check the frames, run :func:`run_dft`
    with ``job`` and return the summary (print it).

    Raises :class:`DftError` when any frame failed, after all others were done.
    """
    from toolkit.data import read_frames, validate_frames

    frames = read_frames(data)
    validate_frames(frames, data, require=())
    summary = run_dft(frames, out, job, progress=progress)
    if summary.failed:
        raise DftError(str(summary) + "\nrerun the same command to retry the failed frames")
    return summary
