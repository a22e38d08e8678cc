"""The paper's size, demonstrated: one Ar108 frame at 600 Ry + rVV10 through `aetk dft`.

Made with (from the repository root; the DFT work directory is not tracked):

    aetk generate --system Ar --atoms 108 --frames 3 --seed 21 --every 500 --out W/Ar108.extxyz
    /usr/bin/time -v aetk dft --data W/Ar108.extxyz --out W/dft --cutoff 600 --vdw-cutoff 150 --np 1
    python datasets/dft/paper_size/summarise.py W/dft W/time.txt

(stopped after the first frame). ``Ar108.structures.extxyz`` next to this file is that
W/Ar108.extxyz, ``Ar108.cp2k.inp`` the CP2K input `aetk dft` wrote for its first frame.
Writes ``Ar108.json`` next to this file: cost, memory, the Bader checks, and how the shipped
32-atom maps (Ar32 and the joint map, 300 Ry) predict this frame's DFT total from its
electrostatic energy. Its ``ranks`` and ``note`` describe the committed run (one rank; which
SCF steps shared the machine); edit them here before summarising another run.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
DFT = HERE.parent


def main(dft_dir: str, time_file: str | None = None) -> None:
    frame = Path(dft_dir) / "frame_00000"
    result = json.loads((frame / "result.json").read_text())
    basins = json.loads((frame / "basins.json").read_text())
    out_text = (frame / "cp2k.out").read_text()
    steps = [float(m) for m in re.findall(r"^\s+\d+ OT \S+\s+\S+\s+(\S+)\s", out_text, re.M)]
    peak = re.search(r"Estimated peak process memory \[MiB\]\s+(\d+)", out_text)
    settings = json.loads((Path(dft_dir) / "settings.json").read_text())
    n = result["natoms"]
    e_total, e_es = result["energy"], result["electrostatic_energy"]
    maps = {"Ar32": json.loads((DFT / "Ar32.fit.json").read_text())["fit"]}
    joint = json.loads((DFT / "joint" / "joint.fit.json").read_text())["joint"]
    summary = {
        "system": "Ar108", "natoms": n, "settings": settings,
        "cp2k_wall_s": result["wall_s"], "bader_partition_wall_s": basins["wall_s"],
        "scf_steps": len(steps), "scf_step_s": steps,
        "cp2k_estimated_peak_memory_MiB": int(peak.group(1)) if peak else None,
        "ranks": 1,
        "note": "one CP2K rank on a 2-core VM; SCF steps 1-5 shared the machine with a "
                "training sweep (110-200 s each), steps 6-9 ran alone (63-106 s)",
        "E_total_eV": e_total, "E_es_eV": e_es,
        "basin_checks": basins["checks"], "n_basins": len(basins["basin_electrons"]),
        "maps": {},
    }
    if time_file:
        text = Path(time_file).read_text()
        rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", text)
        summary["max_rss_GiB"] = int(rss.group(1)) / 2**20 if rss else None
    for name, fit in (("Ar32", maps["Ar32"]), ("joint", {
            "slope": joint["slopes"]["Ar"], "intercept": joint["intercepts"]["Ar"]})):
        predicted = (1.0 + fit["slope"]) * e_es + n * fit["intercept"]
        summary["maps"][name] = {"slope": fit["slope"], "intercept": fit["intercept"],
                                 "predicted_E_total_eV": predicted,
                                 "error_meV_per_atom": 1e3 * (predicted - e_total) / n}
    (HERE / "Ar108.json").write_text(json.dumps(summary, indent=1) + "\n")
    print(json.dumps({k: summary[k] for k in ("cp2k_wall_s", "bader_partition_wall_s",
                                              "scf_steps", "cp2k_estimated_peak_memory_MiB",
                                              "maps")}, indent=1))


if __name__ == "__main__":
    main(*sys.argv[1:])
