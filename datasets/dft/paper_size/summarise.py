"""The paper's size, demonstrated: Ar108 frames at 600 Ry + rVV10 through `aetk dft`.

The first run, frame 0 on one rank (from the repository root; the DFT work directory is not
tracked):

    aetk generate --system Ar --atoms 108 --frames 3 --seed 21 --every 500 --out W/Ar108.extxyz
    /usr/bin/time -v aetk dft --data W/Ar108.extxyz --out W/dft --cutoff 600 --vdw-cutoff 150 --np 1
    python datasets/dft/paper_size/summarise.py W/dft W/time.txt

(stopped after the first frame). ``Ar108.structures.extxyz`` next to this file is that
W/Ar108.extxyz, ``Ar108.cp2k.inp`` the CP2K input `aetk dft` wrote for its first frame.
Writes ``Ar108.json`` next to this file: cost, memory, the Bader checks, and how the shipped
32-atom maps (Ar32 and the joint map, 300 Ry) predict this frame's DFT total from its
electrostatic energy. Its ``ranks`` and ``note`` describe that run (one rank; which SCF
steps shared the machine).

The second run, all three frames on two ranks, from the same structures in a new W:

    /usr/bin/time -v aetk dft --data W/Ar108.extxyz --out W/dft --cutoff 600 --vdw-cutoff 150 --np 2
    python datasets/dft/paper_size/summarise.py --frames W/dft W/time.txt 2 "NOTE"

writes ``Ar108_frames.json``: the same per frame, the maps' errors over the frames, and frame
0 against the first run (the same structure and settings on one rank).
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
DFT = HERE.parent


def maps() -> dict[str, dict]:
    """The shipped 32-atom maps for Ar: the Ar32 fit and the joint fit's Ar species."""
    joint = json.loads((DFT / "joint" / "joint.fit.json").read_text())["joint"]
    return {"Ar32": json.loads((DFT / "Ar32.fit.json").read_text())["fit"],
            "joint": {"slope": joint["slopes"]["Ar"], "intercept": joint["intercepts"]["Ar"]}}


def frame_summary(frame: Path) -> dict:
    """Cost, energies, Bader checks and the maps' predictions of one finished frame."""
    result = json.loads((frame / "result.json").read_text())
    basins = json.loads((frame / "basins.json").read_text())
    out_text = (frame / "cp2k.out").read_text()
    steps = [float(m) for m in re.findall(r"^\s+\d+ OT \S+\s+\S+\s+(\S+)\s", out_text, re.M)]
    peak = re.search(r"Estimated peak process memory \[MiB\]\s+(\d+)", out_text)
    n = result["natoms"]
    e_total, e_es = result["energy"], result["electrostatic_energy"]
    summary = {
        "natoms": n, "cp2k_wall_s": result["wall_s"], "bader_partition_wall_s": basins["wall_s"],
        "scf_steps": len(steps), "scf_step_s": steps,
        "cp2k_estimated_peak_memory_MiB": int(peak.group(1)) if peak else None,
        "E_total_eV": e_total, "E_es_eV": e_es,
        "basin_checks": basins["checks"], "n_basins": len(basins["basin_electrons"]),
        "maps": {},
    }
    for name, fit in maps().items():
        predicted = (1.0 + fit["slope"]) * e_es + n * fit["intercept"]
        summary["maps"][name] = {"slope": fit["slope"], "intercept": fit["intercept"],
                                 "predicted_E_total_eV": predicted,
                                 "error_meV_per_atom": 1e3 * (predicted - e_total) / n}
    return summary


def max_rss_gib(time_file: str | None) -> float | None:
    if not time_file:
        return None
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)",
                    Path(time_file).read_text())
    return int(rss.group(1)) / 2**20 if rss else None


def main(dft_dir: str, time_file: str | None = None) -> None:
    """The first run: frame 0 on one rank -> Ar108.json."""
    settings = json.loads((Path(dft_dir) / "settings.json").read_text())
    frame = frame_summary(Path(dft_dir) / "frame_00000")
    summary = {
        "system": "Ar108", "natoms": frame.pop("natoms"), "settings": settings,
        **{k: frame[k] for k in ("cp2k_wall_s", "bader_partition_wall_s", "scf_steps",
                                 "scf_step_s", "cp2k_estimated_peak_memory_MiB")},
        "ranks": 1,
        "note": "one CP2K rank on a 2-core VM; SCF steps 1-5 shared the machine with a "
                "training sweep (110-200 s each), steps 6-9 ran alone (63-106 s)",
        **{k: frame[k] for k in ("E_total_eV", "E_es_eV", "basin_checks", "n_basins")},
        "maps": frame["maps"],
    }
    if time_file:
        summary["max_rss_GiB"] = max_rss_gib(time_file)
    (HERE / "Ar108.json").write_text(json.dumps(summary, indent=1) + "\n")
    print(json.dumps({k: summary[k] for k in ("cp2k_wall_s", "bader_partition_wall_s",
                                              "scf_steps", "cp2k_estimated_peak_memory_MiB",
                                              "maps")}, indent=1))


def main_frames(dft_dir: str, time_file: str | None, ranks: int, note: str) -> None:
    """Every finished frame of a run -> Ar108_frames.json (with the first run's frame 0 as
    a reference: the same structure at the same settings on another number of ranks)."""
    settings = json.loads((Path(dft_dir) / "settings.json").read_text())
    frames = [frame_summary(f) for f in sorted(Path(dft_dir).glob("frame_*"))
              if (f / "basins.json").is_file()]
    first = json.loads((HERE / "Ar108.json").read_text())
    errors = {name: [f["maps"][name]["error_meV_per_atom"] for f in frames]
              for name in frames[0]["maps"]}
    summary = {
        "system": "Ar108", "settings": settings, "ranks": ranks, "note": note,
        "max_rss_GiB": max_rss_gib(time_file), "frames": frames,
        "frame0_against_first_run": {
            "first_run_ranks": first["ranks"],
            "E_total_difference_meV_per_atom":
                1e3 * (frames[0]["E_total_eV"] - first["E_total_eV"]) / first["natoms"],
            "E_es_difference_meV_per_atom":
                1e3 * (frames[0]["E_es_eV"] - first["E_es_eV"]) / first["natoms"]},
        "map_errors_meV_per_atom": {
            name: {"min": min(v), "max": max(v), "mean": sum(v) / len(v)}
            for name, v in errors.items()},
    }
    (HERE / "Ar108_frames.json").write_text(json.dumps(summary, indent=1) + "\n")
    print(json.dumps({k: summary[k] for k in ("frame0_against_first_run",
                                              "map_errors_meV_per_atom")}, indent=1))


if __name__ == "__main__":
    if sys.argv[1:2] == ["--frames"]:  # --frames DFT_DIR TIME_FILE RANKS NOTE
        main_frames(sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5])
    else:
        main(*sys.argv[1:])
