"""One full-batch training step on the GPU next to the CPU's, for the same workload.

    python scripts/gpu_step_bench.py --bundle bundles/paper/Ar.npz --out step.json

The workload of issue 14's table: a 5-member tanh ensemble's loss and gradient
(`toolkit.models.objective.value_and_grad`, float64) over every frame of a descriptor bundle
(the paper's 2,000 frames x 108 atoms x 30 descriptors from `make bundles`), at widths 64 and
500, one and two hidden layers. Each time is the best of `--repeats` after one warm-up; wall
time, with the GPU synchronised. The CPU uses `--cpu-threads` threads (default: all cores).
Needs torch and numpy only, so it runs on a GPU machine without LAMMPS;
`scripts/gpu_session.sh` runs it first. Without a GPU it times the CPU alone.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bundle", default="bundles/paper/Ar.npz")
    parser.add_argument("--out", required=True, help="JSON file")
    parser.add_argument("--widths", default="64,500")
    parser.add_argument("--depths", default="1,2")
    parser.add_argument("--members", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cpu-threads", type=int, default=os.cpu_count())
    args = parser.parse_args(argv)

    import numpy as np
    import torch

    from toolkit.bundle import read_bundle
    from toolkit.models import objective
    from toolkit.models.networks import Architecture, EnsembleNetworks
    from toolkit.models.training import fit_normalisation, frame_set
    from toolkit.studies.regime import machine

    torch.set_num_threads(args.cpu_threads)
    dataset = read_bundle(args.bundle)
    descriptors, energies = dataset.descriptors, np.asarray(dataset.energies)
    frames = frame_set(descriptors, energies, fit_normalisation(descriptors, energies))
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    packed = {d: objective.PackedFrames.pack(frames.blocks, frames.target, frames.n_atoms, d)
              for d in devices}
    out: dict = {"bundle": str(args.bundle), "frames": int(len(energies)),
                 "atoms": int(len(descriptors.values)),
                 "descriptors": int(descriptors.values.shape[1]), "members": args.members,
                 "cpu_threads": args.cpu_threads, "repeats": args.repeats,
                 "machine": machine(), "steps": {}}
    if "cuda" in devices:
        out["gpu"] = torch.cuda.get_device_name(0)
    for depth in (int(d) for d in args.depths.split(",")):
        for width in (int(w) for w in args.widths.split(",")):
            arch = Architecture((width,) * depth, "tanh")
            networks = EnsembleNetworks(arch, descriptors.spec.n_species,
                                        descriptors.values.shape[1])
            row = {}
            for device in devices:
                theta = networks.initial_theta(list(range(args.members))).to(device)

                def step(t=theta, d=device, n=networks):
                    objective.value_and_grad(n, t, packed[d])
                    if d == "cuda":
                        torch.cuda.synchronize()

                step()
                times = []
                for _ in range(args.repeats):
                    start = time.perf_counter()
                    step()
                    times.append(time.perf_counter() - start)
                row[f"{device}_s"] = min(times)
            if "cuda_s" in row:
                row["cpu_over_cuda"] = row["cpu_s"] / row["cuda_s"]
            out["steps"][f"{width}x{depth}"] = row
            print(f"width {width} x {depth}: " + ", ".join(f"{k} {v:.4g}"
                                                         for k, v in row.items()), flush=True)
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
