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
    .venv/bin/python datasets/dft/make_dataset.py --tables   # README.md's tables
    .venv/bin/python datasets/dft/make_dataset.py --write-tables   # ... written into it
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
    parser.add_argument("--tables", action="store_true",
                        help="print README.md's tables from the committed files and stop")
    parser.add_argument("--write-tables", action="store_true",
                        help="replace README.md's tables by those --tables prints, and stop")
    parser.add_argument("--isolated", action="store_true",
                        help="compute the isolated Ar and Kr atoms (records/isolated.extxyz)")
    args = parser.parse_args()
    campaign = Campaign(Path(args.root), Path(args.work), systems=tuple(args.systems),
                        target=args.target)
    if args.tables:
        print(tables_markdown(campaign))
        return
    if args.write_tables:
        from toolkit.data import atomic_write_text
        from toolkit.errors import AetkError

        readme = campaign.root / "README.md"
        try:
            text, count = replace_tables(readme.read_text(), tables_markdown(campaign))
        except AetkError as exc:
            sys.exit(f"{readme}: {exc}")
        atomic_write_text(readme, text)
        print(f"{readme}: {count} tables written")
        return
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


# -- README tables ------------------------------------------------------------------------------
def tables_markdown(campaign) -> str:
    """README.md's tables, rendered from the committed records, fits, joint map, isolated
    atoms and cost (read only; tests/test_dft_dataset.py checks that README.md shows them)."""
    return "\n".join([frames_table(campaign), fit_table(campaign.root),
                      joint_table(campaign.root), isolated_table(campaign.root),
                      cost_table(campaign.root)])


def replace_tables(text: str, tables: str) -> tuple[str, int]:
    """``text`` with each markdown table of ``tables`` in place of the table there whose
    header is the same whole line; the number of tables replaced. A header that is missing
    or appears twice, or a block of ``tables`` that is not a table, is an error (the
    README's tables are then fixed by hand)."""
    import re

    from toolkit.errors import AetkError

    blocks = [b.strip("\n") for b in tables.split("\n\n") if b.strip()]
    for block in blocks:
        if not all(line.startswith("|") for line in block.splitlines()):
            raise AetkError(f"the rendered block {block.splitlines()[0]!r} is not a markdown "
                            "table; paste `--tables` by hand")
        header = block.splitlines()[0]
        found = list(re.finditer(r"(?m)^" + re.escape(header) + r"$", text))
        if len(found) != 1:
            raise AetkError(f"README.md has {len(found)} tables headed {header!r}, not one; "
                            "paste `--tables` by hand")
        start = found[0].start()
        lines = text[start:].split("\n")
        rows = next((k for k, line in enumerate(lines) if not line.startswith("|")), len(lines))
        text = text[:start] + block + text[start + len("\n".join(lines[:rows])):]
    return text, len(blocks)


def frames_table(campaign) -> str:
    """Frames per system and trajectory, counted from the trajectory labels of the records."""
    from toolkit.reference.dft.campaign import status

    lines = ["| system | frames | target | frames per trajectory (done/planned) |",
             "|---|---|---|---|"]
    for system, row in status(campaign).items():
        if not row["records"]:
            continue
        parts = ", ".join(f"{name} {count}" for name, count in row["trajectories"].items())
        lines.append(f"| {system} | {row['records']} | {row['target']} | {parts} |")
    return "\n".join(lines) + "\n"


def fit_table(root) -> str:
    """Per-system fits: the paper's axes and E_total against E_es (the honest Fig. 1)."""
    lines = ["| system | frames | slope | intercept (eV/atom) | RMSE (meV/atom) | R2, paper's "
             "axes | R2, E_total/N vs E_es/N | std E_total/N (meV) | std E_es/N (meV) | "
             "species mean local energy (eV) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for path in _fit_files(root):
        info = json.loads(path.read_text())
        fit, honest = info["fit"], info["total_against_electrostatic"]
        means = ", ".join(f"{s} {v:.3f}" for s, v in info["species_mean_local_energy_eV"].items())
        lines.append(
            f"| {path.name[:-len('.fit.json')]} | {fit['n_frames']} | {fit['slope']:.4f} | "
            f"{fit['intercept']:.3f} | {1e3 * fit['rmse']:.2f} | {fit['r2']:.4f} | "
            f"{honest['r2']:.4f} | {1e3 * honest['total_std_eV_per_atom']:.2f} | "
            f"{1e3 * honest['electrostatic_std_eV_per_atom']:.2f} | {means} |")
    return "\n".join(lines) + "\n"


def _fit_files(root) -> list:
    from toolkit.reference.dft.campaign import SYSTEMS

    names = [*SYSTEMS, "Ar16Kr16.pure_aligned"]
    return [Path(root, f"{n}.fit.json") for n in names if Path(root, f"{n}.fit.json").is_file()]


def joint_table(root) -> str:
    """The joint per-species map, and each system's RMSE under it and under its own fit."""
    info = json.loads(Path(root, "joint", "joint.fit.json").read_text())
    joint = info["joint"]
    lines = ["| species | slope | intercept (eV/atom) |", "|---|---|---|"]
    for s in joint["slopes"]:
        lines.append(f"| {s} | {joint['slopes'][s]:.4f} ± {joint['slope_stderr'][s]:.4f} | "
                     f"{joint['intercepts'][s]:.2f} ± {joint['intercept_stderr'][s]:.2f} |")
    lines += ["", "| system | frames | own fit: slope ± std. error | own fit: RMSE (meV/atom) | "
              "joint map: RMSE (meV/atom) |", "|---|---|---|---|---|"]
    for system, own in info["per_system_fits"].items():
        lines.append(f"| {system} | {own['n_frames']} | {own['slope']:.4f} ± "
                     f"{slope_stderr(Path(root, f'{system}.fit.json')):.4f} | "
                     f"{own['rmse_meV_per_atom']:.2f} | "
                     f"{1e3 * joint['rmse_per_system'][system]:.2f} |")
    lines.append(f"| all | {joint['n_frames']} | | | {info['rmse_meV_per_atom']:.2f} |")
    return "\n".join(lines) + "\n"


def slope_stderr(fit_json) -> float:
    """Least-squares standard error of a per-system slope, from its fit file:
    sqrt(SSR / (n - 2)) / (std(E_es/N) sqrt(n)), with SSR = n RMSE^2 (frames independent)."""
    info = json.loads(Path(fit_json).read_text())
    n = info["fit"]["n_frames"]
    spread = info["total_against_electrostatic"]["electrostatic_std_eV_per_atom"]
    return info["fit"]["rmse"] * (n / (n - 2)) ** 0.5 / (spread * n ** 0.5)


def isolated_table(root) -> str:
    """Each map's prediction (1 + slope) E_es + intercept of the free atom's DFT energy."""
    rows = json.loads(Path(root, "isolated.json").read_text())
    lines = ["| atom | box (A) | E_total (eV) | E_es (eV) | basin electrons | map | "
             "predicted E (eV) | predicted - E_total (eV) |", "|---|---|---|---|---|---|---|---|"]
    for element, entry in rows.items():
        for name, m in entry["maps"].items():
            lines.append(f"| {element} | {entry['box_A']:.3f} | {entry['E_total_eV']:.4f} | "
                         f"{entry['E_es_eV']:.4f} | {entry['basin_electrons']:.5f} | {name} | "
                         f"{m['predicted_E_eV']:.4f} | {m['predicted_minus_E_total_eV']:+.4f} |")
    return "\n".join(lines) + "\n"


def cost_table(root) -> str:
    """Wall time per frame (single point, partition) of the frames that carry timings."""
    cost = json.loads(Path(root, "cost.json").read_text())
    lines = ["| system | frames | timed frames | single point: mean (min-max) s | "
             "partition: mean s | mean per frame s | SCF steps |", "|---|---|---|---|---|---|---|"]
    for system, row in cost.items():
        if not row.get("timed_frames"):
            lines.append(f"| {system} | {row['frames']} | 0 | | | | |")
            continue
        sp = row["single_point_wall_s"]
        lines.append(f"| {system} | {row['frames']} | {row['timed_frames']} | "
                     f"{sp['mean']:.0f} ({sp['min']:.0f}-{sp['max']:.0f}) | "
                     f"{row['partition_wall_s_mean']:.0f} | {row['mean_wall_s_per_frame']:.0f} | "
                     f"{', '.join(str(n) for n in row['scf_steps'])} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
