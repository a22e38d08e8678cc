"""Regenerate the small DFT reference set in this directory (see README.md).

Structures (``structures/*.extxyz``: classical LJ MD, 120 K, 32 atoms, frames 0.5 ps
apart) -> CP2K single points
(PBE + rVV10, GTH-PBE-q8, DZVP-MOLOPT-SR-GTH; CUTOFF and the rVV10 grid below) -> Bader
basins -> correlation fit and local energies. Frames are added in rounds over the three
systems, so a wall-clock budget leaves every system with a similar number of frames;
rerunning resumes (finished frames are never recomputed). ``--workers N`` starts N
one-core CP2K workers on the same work directories (frames are claimed, see
``toolkit.reference.dft``) and partitions once they have all stopped.

    .venv/bin/python datasets/dft/make_dataset.py --frames 50 --workers 2 --budget-min 120
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from ase import Atoms

from toolkit.data import read_frames, write_frames
from toolkit.reference.classical import ClassicalRun, generate_frames
from toolkit.reference.dft import DftSettings, Launcher, run_dft
from toolkit.reference.figures import plot_correlation
from toolkit.reference.local_energy import load_dft, partition_command

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
SYSTEMS = {"Ar32": "Ar", "Kr32": "Kr", "Ar16Kr16": "ArKr"}
OLD_GENERATOR_FRAMES = 50  # structures/*.extxyz as shipped, see structures()
SETTINGS = DftSettings(cutoff=300.0, rel_cutoff=60.0, vdw="rVV10", vdw_cutoff=150.0)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--frames", type=int, default=20)
    parser.add_argument("--round", type=int, default=5, help="frames per system per round")
    parser.add_argument("--budget-min", type=float, default=55.0)
    parser.add_argument("--work", default=str(ROOT / "data" / "dft"))
    parser.add_argument("--np", type=int, default=1, help="MPI ranks per CP2K run")
    parser.add_argument("--workers", type=int, default=1,
                        help="concurrent CP2K workers sharing the work directories")
    parser.add_argument("--compute-only", action="store_true",
                        help="run the single points and basins, skip the partition")
    args = parser.parse_args()
    if args.workers > 1:
        for name, system in SYSTEMS.items():  # extend the structures once, not per worker
            structures(name, system, args.frames)
        worker = [sys.executable, __file__, "--compute-only", "--frames", str(args.frames),
                  "--round", str(args.round), "--budget-min", str(args.budget_min),
                  "--work", args.work, "--np", str(args.np)]
        procs = [subprocess.Popen(worker) for _ in range(args.workers)]
        codes = [proc.wait() for proc in procs]
        if any(codes):
            sys.exit(f"a worker failed (exit codes {codes}); rerun to resume")
    else:
        compute(args)
    if not args.compute_only:
        partition(Path(args.work))


def structures(name: str, system: str, n_frames: int) -> list:
    """The first ``n_frames`` input structures of ``name``, from ``structures/NAME.extxyz``.

    The shipped structures (``OLD_GENERATOR_FRAMES`` = 50 per system) come from full-range LJ
    MD at 120 K (``lj/smooth/linear`` cut at 8.5 A for every pair, 32 atoms, seed 7,
    frames 0.5 ps apart), made by the generator of commit 697c3dc. They are stored rather
    than regenerated because the toolkit's classical reference has since moved to a
    first-shell cutoff, which would give different structures and invalidate the finished
    frames. Asking for more frames than are stored extends the file with frames of
    today's generator at ``cutoff_sigma`` 2.5: one MD run (seed 8) whose frames follow the
    shipped ones, regenerated from its start each time, so extending in several steps gives
    the same structures as extending once (an MD run's first frames do not depend on how
    many it is asked for).
    """
    path = HERE / "structures" / f"{name}.extxyz"
    stored = read_frames(path) if path.is_file() else []
    if len(stored) >= n_frames:
        return stored[:n_frames]
    if len(stored) < OLD_GENERATOR_FRAMES:
        sys.exit(f"{path}: {len(stored)} structures, the shipped file has "
                 f"{OLD_GENERATOR_FRAMES}; restore it from git")
    print(f"{path}: {len(stored)} stored structures, {n_frames} asked for; the others come "
          "from a new LJ run (cutoff_sigma 2.5, seed 8)", flush=True)
    extension = generate_frames(
        ClassicalRun(system, reference="lj", n_frames=n_frames - OLD_GENERATOR_FRAMES, seed=8,
                     natoms=32, every=250, cutoff_sigma=2.5), progress=False)
    bare = [Atoms(a.get_chemical_symbols(), a.positions, cell=a.cell, pbc=True)
            for a in extension]
    for old, new in zip(stored[OLD_GENERATOR_FRAMES:], bare, strict=False):
        if not np.allclose(old.positions, new.positions, atol=1e-6):
            sys.exit(f"{path}: its extension frames differ from a fresh seed-8 run; restore "
                     "the file from git")
    frames = stored + bare[len(stored) - OLD_GENERATOR_FRAMES:]
    write_frames(path, frames)
    return frames


def compute(args: argparse.Namespace) -> None:
    """Single points in rounds of ``args.round`` frames per system, within the budget."""
    start = time.time()
    frames = {name: structures(name, system, args.frames) for name, system in SYSTEMS.items()}
    launcher = Launcher(np=args.np)
    done = 0
    while done < args.frames:
        done = min(done + args.round, args.frames)
        for name in SYSTEMS:
            elapsed = (time.time() - start) / 60
            if elapsed > args.budget_min:
                print(f"budget reached after {elapsed:.1f} min", flush=True)
                break
            summary = run_dft(frames[name][:done], Path(args.work) / name, SETTINGS, launcher,
                              progress=False)
            print(f"{(time.time() - start) / 60:6.1f} min  {summary}", flush=True)
        else:
            continue
        break


def partition(work_root: Path) -> None:
    """Correlation fits, local energies, figures and cost of every finished frame.

    Runs from the repository root with relative paths, so the shipped ``*.fit.json`` name
    ``data/dft/...`` and ``datasets/dft/...`` rather than one machine's absolute paths.
    """
    os.chdir(ROOT)
    work_root = Path(os.path.relpath(work_root.resolve(), ROOT))
    here = HERE.relative_to(ROOT)
    panels, stats = {}, {}
    for name in SYSTEMS:
        work = work_root / name
        fit = partition_command(work, here / f"{name}.extxyz", system=name)
        records = load_dft(work)
        natoms = len(records[0].atoms)
        x = [r.electrostatic_energy / natoms for r in records]
        y = [(r.energy - r.electrostatic_energy) / natoms for r in records]
        panels[name] = (x, y, fit)
        results = [json.loads((work / f"frame_{r.index:05d}" / "result.json").read_text())
                   for r in records]
        basins = [json.loads((work / f"frame_{r.index:05d}" / "basins.json").read_text())
                  for r in records]
        single = [r["wall_s"] for r in results]
        bader = [b["wall_s"] for b in basins]
        stats[name] = {
            "frames": len(records),
            "mean_wall_s_per_frame": (sum(single) + sum(bader)) / len(records),
            "single_point_wall_s": {"mean": sum(single) / len(single),
                                    "min": min(single), "max": max(single)},
            "partition_wall_s_mean": sum(bader) / len(bader),
            "scf_steps": sorted({n for r in results for n in r["scf_steps"]}),
            "launcher": results[0].get("launcher"),
        }
        print(name, fit, flush=True)
    plot_correlation(panels, here / "correlation_all")
    # the mixture fit fixes only the sum of the species' intercepts; a second version of
    # the mixture moves energy between species so that their mean local energies match
    # the pure liquids (each frame's sum unchanged), see docs/dft.md
    means = {}
    for name in ("Ar32", "Kr32", "Ar16Kr16"):
        info = json.loads((here / f"{name}.fit.json").read_text())
        means[name] = info["species_mean_local_energy_eV"]
    offsets = {s: means[f"{s}32"][s] - means["Ar16Kr16"][s] for s in ("Ar", "Kr")}
    partition_command(work_root / "Ar16Kr16", here / "Ar16Kr16.pure_aligned.extxyz",
                      system="Ar16Kr16", species_offsets=offsets)
    (here / "cost.json").write_text(json.dumps(stats, indent=1) + "\n")


if __name__ == "__main__":
    main()
