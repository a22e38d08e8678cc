"""Grow and partition the shipped DFT reference set in this directory (see README.md).

Five compositions (Ar32, Kr32, Ar16Kr16, Ar24Kr8, Ar8Kr24), each from independent
classical LJ trajectories (``structures/``), CP2K single points + Bader basins stored as
compact records (``records/``), then the correlation fit and local energies per system
(``SYSTEM.extxyz``, ``SYSTEM.fit.json``, figures, ``cost.json``). The campaign and its
layout: :mod:`toolkit.reference.dft.campaign`. Resumable on any machine: frames in the
committed records are never recomputed.

    .venv/bin/python datasets/dft/make_dataset.py --workers 2 --budget-min 600
    .venv/bin/python datasets/dft/make_dataset.py --status
    .venv/bin/python datasets/dft/make_dataset.py --partition-only
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


def main() -> None:
    from toolkit.reference.dft.campaign import (
        SYSTEMS,
        Campaign,
        compute,
        structures,
        write_status,
    )
    from toolkit.reference.dft.cp2k import Launcher

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", type=int, default=200, help="frames per system")
    parser.add_argument("--systems", nargs="+", default=list(SYSTEMS))
    parser.add_argument("--budget-min", type=float, default=55.0)
    parser.add_argument("--work", default=str(ROOT / "data" / "dft"))
    parser.add_argument("--root", default=str(HERE),
                        help="data set directory (structures/, records/, outputs)")
    parser.add_argument("--np", type=int, default=1, help="MPI ranks per CP2K run")
    parser.add_argument("--workers", type=int, default=1,
                        help="concurrent CP2K workers sharing the work directories")
    parser.add_argument("--compute-only", action="store_true",
                        help="run single points and basins, skip the partition")
    parser.add_argument("--partition-only", action="store_true")
    parser.add_argument("--status", action="store_true", help="print what exists and stop")
    parser.add_argument("--isolated", action="store_true",
                        help="compute the isolated Ar and Kr atoms (records/isolated.extxyz)")
    args = parser.parse_args()
    campaign = Campaign(Path(args.root), Path(args.work), systems=tuple(args.systems),
                        target=args.target)
    if args.status:
        print(json.dumps(json.loads(write_status(campaign).read_text()), indent=1))
        return
    if args.isolated:
        from toolkit.reference.dft.campaign import isolated_atoms

        isolated_atoms(campaign, Launcher(np=args.np), log=lambda t: print(t, flush=True))
    if not args.partition_only:
        if args.workers > 1:
            for system in campaign.systems:  # make the structures once, not per worker
                structures(campaign, system)
            worker = [sys.executable, __file__, "--compute-only", "--target", str(args.target),
                      "--budget-min", str(args.budget_min), "--work", args.work,
                      "--root", args.root, "--np", str(args.np), "--systems", *args.systems]
            procs = [subprocess.Popen(worker) for _ in range(args.workers)]
            codes = [proc.wait() for proc in procs]
            if any(codes):
                sys.exit(f"a worker failed (exit codes {codes}); rerun to resume")
        else:
            compute(campaign, Launcher(np=args.np), args.budget_min,
                    log=lambda text: print(text, flush=True))
    write_status(campaign)
    if not args.compute_only:
        partition(campaign)


def partition(campaign) -> None:
    """Correlation fits, local energies, figures and cost from the records of every system.

    Runs from the repository root with relative paths, so the shipped ``*.fit.json`` name
    ``datasets/dft/...`` rather than one machine's absolute paths.
    """
    import numpy as np

    from toolkit.reference.figures import plot_correlation
    from toolkit.reference.local_energy import (
        partition_command,
        partition_joint_command,
        read_records,
    )

    os.chdir(ROOT)
    here = HERE.relative_to(ROOT)
    panels, stats = {}, {}
    for system in campaign.systems:
        records_file = here / "records" / f"{system}.extxyz"
        if not records_file.is_file():
            continue
        fit = partition_command(records_file, here / f"{system}.extxyz", system=system)
        records = read_records(records_file)
        natoms = len(records[0].atoms)
        x = [r.electrostatic_energy / natoms for r in records]
        y = [(r.energy - r.electrostatic_energy) / natoms for r in records]
        panels[system] = (x, y, fit)
        timed = [r.labels for r in records if "single_point_s" in r.labels]
        single = np.array([t["single_point_s"] for t in timed])
        bader = np.array([t["partition_s"] for t in timed])
        trajectories: dict[str, int] = {}
        for r in records:
            name = str(r.labels["trajectory"])
            trajectories[name] = trajectories.get(name, 0) + 1
        stats[system] = {"frames": len(records), "trajectories": trajectories,
                         "timed_frames": len(timed)}
        if len(timed):
            stats[system].update({
                "mean_wall_s_per_frame": float((single + bader).mean()),
                "single_point_wall_s": {"mean": float(single.mean()),
                                        "min": float(single.min()), "max": float(single.max())},
                "partition_wall_s_mean": float(bader.mean()),
                "scf_steps": sorted({int(t["scf_steps"]) for t in timed}),
            })
        print(system, fit, flush=True)
    plot_correlation(panels, here / "correlation_all")
    # the mixture fit fixes only the sum of the species' intercepts; a second version of
    # the mixture moves energy between species so that their mean local energies match
    # the pure liquids (each frame's sum unchanged), see docs/dft.md
    means = {name: json.loads((here / f"{name}.fit.json").read_text())[
        "species_mean_local_energy_eV"] for name in ("Ar32", "Kr32", "Ar16Kr16")}
    offsets = {s: means[f"{s}32"][s] - means["Ar16Kr16"][s] for s in ("Ar", "Kr")}
    partition_command(here / "records" / "Ar16Kr16.extxyz", here / "Ar16Kr16.pure_aligned.extxyz",
                      system="Ar16Kr16", species_offsets=offsets)
    (here / "cost.json").write_text(json.dumps(stats, indent=1) + "\n")
    joint_sources = {s: here / "records" / f"{s}.extxyz" for s in campaign.systems
                     if (here / "records" / f"{s}.extxyz").is_file()}
    joint = partition_joint_command(joint_sources, here / "joint")
    print("joint", joint, flush=True)
    isolated = here / "records" / "isolated.extxyz"
    if isolated.is_file():
        compare_isolated(isolated, here, joint)


def compare_isolated(isolated, here, joint) -> None:
    """What each fitted map says about an isolated atom: E_total against the map's
    (1 + slope) E_es + intercept (the paper relates the intercepts to isolated atoms)."""
    from toolkit.reference.local_energy import read_records

    rows = {}
    for record in read_records(isolated):
        element = str(record.labels["element"])
        entry = {"box_A": float(record.labels["box_A"]), "E_total_eV": record.energy,
                 "E_es_eV": record.electrostatic_energy,
                 "basin_electrons": float(record.basin_electrons[0]),
                 "E_total_minus_E_es_eV": record.energy - record.electrostatic_energy,
                 "maps": {}}
        for name in (f"{element}32", "Ar16Kr16"):
            info = json.loads((here / f"{name}.fit.json").read_text())["fit"]
            predicted = (1 + info["slope"]) * record.electrostatic_energy + info["intercept"]
            entry["maps"][name] = {"slope": info["slope"], "intercept": info["intercept"],
                                   "predicted_E_eV": predicted,
                                   "predicted_minus_E_total_eV": predicted - record.energy}
        predicted = ((1 + joint.slopes[element]) * record.electrostatic_energy
                     + joint.intercepts[element])
        entry["maps"]["joint"] = {"slope": joint.slopes[element],
                                  "intercept": joint.intercepts[element],
                                  "predicted_E_eV": predicted,
                                  "predicted_minus_E_total_eV": predicted - record.energy}
        rows[element] = entry
    (here / "isolated.json").write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
