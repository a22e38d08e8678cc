"""MD with the shipped example potentials, with and without their repulsive walls (README,
"MD with a trained potential"; potentials/README.md).

    .venv/bin/python scripts/md_walls.py [--out runs/md-walls]   # ~15 min on one core

For each of potentials/{ar,kr,arkr,arkr-from-pure}-tanh4: `aetk md` (108 atoms, 120 K, NVT,
2 fs steps: a 2,500-step LJ melt, 5,000 steps of equilibration with the potential, 5,000
production steps) with its per-pair walls and `--compare-reference` (LJ, the reference it
was trained on), and the same run with the bare network (`aetk assemble --no-wall`: the
same networks, no wall). A run that goes unstable (e.g. two atoms collapse) stops and says
where; that is a result here, not a failure. A run folder is reused only if it ran to its
end with these settings (and, with walls, has its comparison); otherwise it is redone. The
table of all runs goes to results/md_walls/summary.csv (relative names only, no paths);
with another --steps, to OUT/summary.csv.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STEPS = 5000  # equilibration and production steps of the committed table
POTENTIALS = {"ar-tanh4": "Ar", "kr-tanh4": "Kr", "arkr-tanh4": "ArKr",
              "arkr-from-pure-tanh4": "ArKr"}
PAIRS = ("Ar-Ar", "Ar-Kr", "Kr-Kr")
COLUMNS = (["run", "potential", "system", "wall", "status", "production_ps",
            "stopped_phase", "stopped_ps_into_phase", "closest_pair_min_A",
            "wall_fraction_of_frames_inside"]
           + [f"closest_in_md_{p}_A" for p in PAIRS] + [f"closest_in_data_{p}_A" for p in PAIRS]
           + ["rdf_integrated_abs_difference_A", "mean_pe_difference_meV_per_atom"])


def _aetk() -> str:
    found = Path(sys.executable).with_name("aetk")
    if found.is_file():
        return str(found)
    which = shutil.which("aetk")
    if which is None:
        sys.exit("scripts/md_walls.py: no `aetk` next to this Python or on the PATH; run it "
                 "with the project's .venv/bin/python (make setup)")
    return which


def _run(args: list[str]) -> int:
    print("+ aetk " + " ".join(args), flush=True)
    # an unstable MD run exits non-zero: that is a result here, judged by summary.json
    return subprocess.run([_aetk(), *args], cwd=ROOT, check=False).returncode


def _finished(folder: Path, steps: int, wall: bool) -> bool:
    """A run folder of these settings that ran to its end (completed, or stopped as
    unstable), with its comparison if it completed with walls; anything else is redone."""
    try:
        summary = json.loads((folder / "summary.json").read_text())
    except (OSError, ValueError):
        return False
    run = summary.get("run", {})
    return (run.get("steps") == steps and run.get("equilibration_steps") == steps
            and summary.get("status") in ("completed", "unstable")
            and (summary["status"] == "completed" or "stopped" in summary)
            and not (wall and summary["status"] == "completed"
                     and not (folder / "comparison.json").is_file()))


def run_all(out: Path, steps: int = STEPS) -> list[dict]:
    rows = []
    for name, system in POTENTIALS.items():
        bare = out / "bare" / name
        if not (bare / "meta.json").is_file():
            elements = ["Ar", "Kr"] if system == "ArKr" else [system]
            rc = _run(["assemble", *[a for e in elements
                                     for a in ("--element", f"{e}=potentials/{name}")],
                       "--no-wall", "--out", str(bare)])
            if not (bare / "meta.json").is_file():
                sys.exit(f"{bare}: `aetk assemble` exited {rc} without a potential")
        for wall, potential, folder in ((True, f"potentials/{name}", out / name),
                                        (False, str(bare), out / f"{name}-bare")):
            if not _finished(folder, steps, wall):
                shutil.rmtree(folder, ignore_errors=True)
                rc = _run(["md", "--potential", potential, "--system", system,
                           "--temperature", "120", "--steps", str(steps),
                           "--equilibration-steps", str(steps),
                           *(["--compare-reference", "--reference", "lj"] if wall else []),
                           "--out", str(folder), "--quiet"])
                if not _finished(folder, steps, wall):
                    sys.exit(f"{folder}: `aetk md` exited {rc} without a finished run "
                             "(see its output above)")
            rows.append(_row(folder, name, system, wall))
    return rows


def _row(folder: Path, name: str, system: str, wall: bool) -> dict:
    summary = json.loads((folder / "summary.json").read_text())
    run = summary["run"]
    row = {"run": folder.name, "potential": name, "system": system, "wall": wall,
           "status": summary["status"],
           "production_ps": round(summary["production_steps_done"] * run["timestep"], 3)}
    stopped = summary.get("stopped")
    if stopped:  # LAMMPS counts steps from the melt on; the runner gives the phase's time
        row["stopped_phase"] = stopped["phase"]
        row["stopped_ps_into_phase"] = round(stopped["ps_into_phase"], 6)
    row["closest_pair_min_A"] = summary.get("closest_pair_min")
    contacts = summary.get("wall")
    if contacts:
        row["wall_fraction_of_frames_inside"] = contacts["fraction_of_frames_inside"]
        for pair in PAIRS:
            row[f"closest_in_md_{pair}_A"] = contacts["closest_pairs_in_md"].get(pair)
            row[f"closest_in_data_{pair}_A"] = contacts["closest_pairs_in_data"].get(pair)
    comparison = folder / "comparison.json"
    if comparison.is_file():
        c = json.loads(comparison.read_text())
        row["rdf_integrated_abs_difference_A"] = c["rdf_integrated_abs_difference_A"]["total"]
        row["mean_pe_difference_meV_per_atom"] = 1e3 * c["mean_pe_per_atom"]["difference"]
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "md-walls")
    parser.add_argument("--table", type=Path,
                        help="output table (default: results/md_walls/summary.csv for the "
                        f"committed settings, --steps {STEPS}; OUT/summary.csv otherwise)")
    parser.add_argument("--steps", type=int, default=STEPS,
                        help="equilibration and production steps each (a smaller number "
                        "checks the script)")
    args = parser.parse_args()
    from toolkit.tables import write_table

    rows = run_all(args.out.resolve(), args.steps)
    table = args.table or (ROOT / "results" / "md_walls" / "summary.csv"
                           if args.steps == STEPS else args.out / "summary.csv")
    table.parent.mkdir(parents=True, exist_ok=True)
    write_table(table, rows, COLUMNS)
    print(f"wrote {table}")


if __name__ == "__main__":
    main()
