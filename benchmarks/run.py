"""`make bench`: speed figures of the toolkit on this machine, written to a JSON file.

Each benchmark is a function returning a dict of measured numbers; run all or some:
    python benchmarks/run.py --out benchmarks/results.json [--only generation descriptors]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from collections.abc import Callable

BENCHMARKS: dict[str, Callable[[], dict]] = {}


def benchmark(function: Callable[[], dict]) -> Callable[[], dict]:
    BENCHMARKS[function.__name__] = function
    return function


def _timed(call) -> tuple[float, object]:
    start = time.perf_counter()
    result = call()
    return time.perf_counter() - start, result


@benchmark
def generation() -> dict:
    """Frames per second of production MD sampling (melt/equilibration excluded)."""
    from toolkit.reference.classical import ClassicalRun, generate_frames

    out = {}
    for reference, n in (("lj", 400), ("lj+atm", 40)):
        base = dict(system="ArKr", reference=reference, seed=1, every=100)
        t_setup, _ = _timed(lambda b=base: generate_frames(ClassicalRun(**b, n_frames=1),
                                                           progress=False))
        t_all, _ = _timed(lambda b=base, n=n: generate_frames(ClassicalRun(**b, n_frames=n),
                                                              progress=False))
        per_frame = (t_all - t_setup) / (n - 1)
        out[reference] = {"frames_per_s": 1.0 / per_frame, "md_steps_per_frame": 100,
                          "setup_s": t_setup, "atoms": 108}
    return out


@benchmark
def descriptors() -> dict:
    """Atoms per second of compute sna/atom (twojmax 6, 8.5 A) through the toolkit."""
    from toolkit.descriptors import DescriptorSpec, compute_descriptors
    from toolkit.reference.classical import ClassicalRun, generate_frames

    frames = generate_frames(ClassicalRun("ArKr", n_frames=200, seed=2), progress=False)
    out = {}
    for twojmax in (6, 8):
        spec = DescriptorSpec(twojmax=twojmax)
        seconds, _ = _timed(lambda s=spec: compute_descriptors(frames, s, cache=False,
                                                               progress=False))
        out[f"twojmax{twojmax}"] = {"atoms_per_s": 200 * 108 / seconds, "seconds": seconds}
    return out


@benchmark
def md() -> dict:
    """ns/day of liquid ArKr MD: NN (mliap nn), linear SNAP (mliap linear), LJ reference.

    Same SNAP descriptors for both ML models, fitted on the same 20 ArKr frames (the NN
    briefly, the linear model by ridge least squares on totals); speed does not depend on
    the fit. These descriptor-only models let atom pairs collapse after ~0.5 ps (see the
    README), so the collapse check is off here: only speed is measured. Boxes: 108 atoms
    and 4 x 14^3 = 10976 atoms, melted briefly with LJ, then timed over the production
    steps only (serial; the NN large box also under mpirun -np 2).
    """
    import subprocess
    import sys
    from pathlib import Path

    import numpy as np

    from toolkit.data import atomic_write_text, write_frames
    from toolkit.descriptors import compute_descriptors
    from toolkit.md import PairModel, run_md
    from toolkit.models.fitting import fit_potential
    from toolkit.models.networks import Architecture
    from toolkit.models.training import TrainingSettings
    from toolkit.reference.classical import ClassicalRun, generate_frames

    tmp = Path(tempfile.mkdtemp(prefix="aetk-bench-md-"))
    frames = generate_frames(ClassicalRun("ArKr", n_frames=20, seed=4, every=50),
                             progress=False)
    write_frames(tmp / "arkr.extxyz", frames)
    nn, _ = fit_potential(tmp / "arkr.extxyz", tmp / "nn", Architecture((16,), "tanh"),
                          settings=TrainingSettings(max_iterations=60, patience=60),
                          progress=False)
    spec = nn.spec
    d = compute_descriptors(frames, spec, cache=False, progress=False)
    n_species, n_desc = len(spec.elements), spec.n_descriptors
    design = np.zeros((len(frames), n_species * (n_desc + 1)))  # per species: [1, B...]
    for s in range(n_species):
        mine = d.species_index == s
        block = slice(s * (n_desc + 1), (s + 1) * (n_desc + 1))
        features = np.hstack([np.ones((mine.sum(), 1)), d.values[mine]])
        np.add.at(design[:, block], d.frame_index[mine], features)
    energies = np.array([a.info["energy"] for a in frames])
    ridge = 1e-6 * np.eye(design.shape[1])
    beta = np.linalg.solve(design.T @ design + ridge, design.T @ energies)
    lines = [f"{n_species} {n_desc + 1}"] + [repr(float(b)) for b in beta]
    atomic_write_text(tmp / "linear.mliap.model", "\n".join(lines) + "\n")
    linear = PairModel("linear SNAP", [
        f"pair_style mliap model linear {tmp / 'linear.mliap.model'} "
        f"descriptor sna {nn.directory / 'descriptor.mliap'}",
        "pair_coeff * * " + " ".join(spec.elements)], spec.elements)
    models = {"nn": str(nn.directory), "linear_snap": linear, "lj": "reference:lj"}
    sizes = {108: {"nn": 400, "linear_snap": 400, "lj": 5000},
             10976: {"nn": 10, "linear_snap": 10, "lj": 200}}
    out: dict = {"system": "ArKr", "timestep_fs": 2.0, "nn_hidden": [16]}
    for natoms, steps in sizes.items():
        row = {}
        for name, model in models.items():
            result = run_md(model, "ArKr", natoms, steps=steps[name], seed=1,
                            out_dir=tmp / f"{name}-{natoms}", progress=False,
                            melt_steps=300 if natoms < 1000 else 100, equilibration_steps=0,
                            thermo_every=max(steps[name] // 4, 1), dump_every=steps[name],
                            min_pair_distance_sigma=0.0)
            row[name] = {"ns_per_day": result.summary["ns_per_day"], "steps": steps[name]}
        row["ratio_lj_over_nn"] = row["lj"]["ns_per_day"] / row["nn"]["ns_per_day"]
        row["ratio_linear_over_nn"] = row["linear_snap"]["ns_per_day"] / row["nn"]["ns_per_day"]
        out[f"atoms_{natoms}"] = row
    script = (f"from toolkit.md import run_md\nrun_md({str(nn.directory)!r}, 'ArKr', 10976, "
              f"steps=10, out_dir={str(tmp / 'nn-mpi')!r}, progress=False, melt_steps=100, "
              "equilibration_steps=0, thermo_every=5, dump_every=10, "
              "min_pair_distance_sigma=0.0)\n")
    (tmp / "mpi_md.py").write_text(script)
    mpirun = Path(sys.executable).parent / "mpirun"
    subprocess.run([str(mpirun), "-np", "2", sys.executable, str(tmp / "mpi_md.py")],
                   check=True, capture_output=True, timeout=600)
    mpi = json.loads((tmp / "nn-mpi" / "summary.json").read_text())
    out["atoms_10976"]["nn_mpi_np2"] = {"ns_per_day": mpi["ns_per_day"], "steps": 10}
    return out



def _ar_dataset(n_frames: int = 300, system: str = "Ar"):
    from toolkit.descriptors import DescriptorSpec, compute_descriptors
    from toolkit.reference.classical import ClassicalRun, generate_frames

    frames = generate_frames(ClassicalRun(system, n_frames=n_frames, seed=5), progress=False)
    descriptors = compute_descriptors(frames, DescriptorSpec(), progress=False)
    energies = [a.info["energy"] for a in frames]
    return frames, descriptors, energies


@benchmark
def training() -> dict:
    """Seconds per L-BFGS iteration (210 training frames of Ar, 1 thread) by width."""
    from toolkit.models.networks import Architecture
    from toolkit.models.training import TrainingSettings, train_ensemble

    _, descriptors, energies = _ar_dataset()
    fixed = TrainingSettings(max_iterations=30, patience=1000, gradient_tolerance=0.0,
                             min_improvement=0.0)
    out = {}
    for width in (1, 8, 64, 256):
        arch = Architecture((width,), "tanh")
        seconds, ensemble = _timed(lambda a=arch: train_ensemble(
            a, descriptors, energies, list(range(210)), list(range(210, 240)), [0],
            settings=fixed, progress=False))
        out[f"tanh_w{width}"] = {"s_per_iteration": seconds / fixed.max_iterations}
    return out


def _cpu_seconds(call) -> tuple[float, float]:
    """(process CPU seconds, wall seconds) of ``call()``: CPU time is what a one-thread run
    costs; on a shared machine wall time also counts other people's work."""
    cpu, wall = time.process_time(), time.perf_counter()
    call()
    return time.process_time() - cpu, time.perf_counter() - wall


@benchmark
def batched_vs_one_by_one() -> dict:
    """5 seeds as one batched ensemble vs the 5 members trained one by one (issue 14).

    Same data (210 Ar frames, 1 thread), same number of L-BFGS iterations (early stopping
    off), whole train_ensemble calls, measured interleaved (batched, one by one, batched,
    ...) in this process, 3 rounds; the ratio is of the medians, in process CPU time. A
    batched step does 5 members' arithmetic, so the ratio can reach 5 only where a single
    member's step is dominated by fixed costs (Python, reading the descriptors), i.e. at
    small widths; see docs/paper_regime.md.
    """
    import numpy as np

    from toolkit.models.networks import Architecture
    from toolkit.models.training import TrainingSettings, train_ensemble

    _, descriptors, energies = _ar_dataset()
    fixed = TrainingSettings(max_iterations=50, patience=1000, gradient_tolerance=0.0,
                             min_improvement=0.0)
    train, val = list(range(210)), list(range(210, 240))
    out = {}
    for width in (1, 4, 16, 64):
        arch = Architecture((width,), "tanh")
        batched, single = [], []
        for _ in range(3):
            batched.append(_cpu_seconds(lambda a=arch: train_ensemble(
                a, descriptors, energies, train, val, [0, 1, 2, 3, 4], settings=fixed,
                progress=False)))
            single.append(_cpu_seconds(lambda a=arch: [train_ensemble(
                a, descriptors, energies, train, val, [seed], settings=fixed, progress=False)
                for seed in range(5)]))
        cpu_b, cpu_s = (float(np.median([t[0] for t in x])) for x in (batched, single))
        wall_b, wall_s = (float(np.median([t[1] for t in x])) for x in (batched, single))
        out[f"w{width}"] = {"batched_cpu_s": cpu_b, "one_by_one_cpu_s": cpu_s,
                            "speedup_cpu": cpu_s / cpu_b, "speedup_wall": wall_s / wall_b,
                            "iterations": fixed.max_iterations}
    return out


def _layer_flops(architecture, n_descriptors: int, members: int, atoms: int) -> float:
    """Multiply-add flops (x2) of one value-and-gradient evaluation, counting the work a
    per-member implementation must do: forward, weight gradients, and input gradients of
    every layer but the first."""
    flops = 0.0
    for index, (n_in, n_out) in enumerate(architecture.layer_sizes(n_descriptors)):
        flops += 2 * 2 * atoms * members * (n_in + 1) * n_out  # forward + weight gradient
        if index > 0:
            flops += 2 * atoms * members * n_in * n_out  # gradient to the layer's input
    return flops


def _matmul_peak() -> float:
    """GFLOP/s of a 2000 x 2000 float64 matmul on one thread (best of 5, CPU time)."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    a = torch.randn(2000, 2000, dtype=torch.float64)
    b = torch.randn(2000, 2000, dtype=torch.float64)
    best = min(_cpu_seconds(lambda: a @ b)[0] for _ in range(5))
    torch.set_num_threads(previous)
    return 2 * 2000 ** 3 / best / 1e9


@benchmark
def training_gflops() -> dict:
    """GFLOP/s of a 5-member value-and-gradient evaluation (210 Ar frames, 22,680 atoms,
    one thread) at widths 64-500, against this machine's measured float64 matmul peak on
    one thread; with a GPU, the same evaluation's time on it next to the CPU's.

    Best of 3; CPU time on the CPU (one thread), wall time on the GPU."""
    import numpy as np
    import torch

    from toolkit.models import objective
    from toolkit.models.networks import Architecture, EnsembleNetworks
    from toolkit.models.training import fit_normalisation, frame_set

    torch.set_num_threads(1)
    _, descriptors, energies = _ar_dataset()
    train = descriptors.select_frames(list(range(210)))
    norm = fit_normalisation(train, np.asarray(energies[:210]))
    frames = frame_set(train, np.asarray(energies[:210]), norm)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    packed = {d: objective.PackedFrames.pack(frames.blocks, frames.target, frames.n_atoms, d)
              for d in devices}
    atoms = len(train.values)
    out = {"matmul_peak_gflops_1thread": _matmul_peak(), "atoms": atoms, "members": 5}
    for depth in (1, 2):
        for width in (64, 128, 256, 500):
            arch = Architecture((width,) * depth, "tanh")
            networks = EnsembleNetworks(arch, 2, descriptors.values.shape[1])
            flops = _layer_flops(arch, descriptors.values.shape[1], 5, atoms)
            row = {"gflop": flops / 1e9}
            for device in devices:
                theta = networks.initial_theta([0, 1, 2, 3, 4]).to(device)

                def step(t=theta, d=device, n=networks):
                    objective.value_and_grad(n, t, packed[d])
                    if d == "cuda":
                        torch.cuda.synchronize()

                step()
                # CPU time of the one CPU thread (wall time on a shared machine also counts
                # others' work); wall time for the GPU
                seconds = min(_cpu_seconds(step)[0 if device == "cpu" else 1]
                              for _ in range(3))
                row[f"{device}_s"] = seconds
                row[f"{device}_gflops"] = flops / seconds / 1e9
            row["cpu_fraction_of_peak"] = row["cpu_gflops"] / out["matmul_peak_gflops_1thread"]
            out[f"tanh_{'x'.join([str(width)] * depth)}"] = row
    if not torch.cuda.is_available():
        out["cuda"] = "not available on this machine"
    return out


@benchmark
def bundle_sizes() -> dict:
    """Descriptor bundles of the paper's data (2,000 frames x 108 atoms x 30 descriptors,
    Ar, Kr, ArKr; sweeps/paper.toml) at each storage precision: MiB per system and for all
    three, against the 64 MiB a device machine receives with the working tree."""
    from pathlib import Path

    from toolkit.bundle import PRECISIONS, bundle_bytes, write_bundle
    from toolkit.models.fitting import load_dataset
    from toolkit.studies.sweep import ensure_data, read_config

    config = read_config(Path(__file__).resolve().parents[1] / "sweeps" / "paper.toml")
    out: dict = {"frames": config.data.frames}
    with tempfile.TemporaryDirectory() as tmp:
        paths = ensure_data(config, Path(tmp), progress=False)
        datasets = {s: load_dataset(p, config.spec, config.split_seed, progress=False)
                    for s, p in paths.items()}
        for precision in PRECISIONS:
            sizes = {}
            for system, dataset in datasets.items():
                path = write_bundle(Path(tmp) / precision / f"{system}.npz", dataset, system,
                                    precision)
                sizes[system] = bundle_bytes(path)["file"] / 2 ** 20
            out[precision] = {"mib": sizes, "total_mib": sum(sizes.values()),
                              "three_fit_64_mib": sum(sizes.values()) < 64}
    return out


@benchmark
def lammps_evaluation() -> dict:
    """Atoms/s of per-atom energies through LAMMPS: NN (tanh 16) vs linear SNAP, same spec."""
    import tempfile
    from pathlib import Path

    import numpy as np

    from toolkit.descriptors import DescriptorSpec
    from toolkit.evaluation import predict
    from toolkit.models.networks import (
        Architecture,
        EnsembleNetworks,
        Normalisation,
        SpeciesNetworks,
    )
    from toolkit.models.potential import read_potential, write_potential

    frames, _, _ = _ar_dataset(100, "ArKr")
    spec = DescriptorSpec()
    norm = Normalisation(np.zeros((2, 30)), np.ones((2, 30)), 0.01, np.full(2, -0.05))
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for label, hidden, activation in (("nn_tanh16", (16,), "tanh"),
                                          ("linear_snap", (), "linear")):
            arch = Architecture(hidden, activation)
            nets = EnsembleNetworks(arch, 2, spec.n_descriptors)
            theta = nets.initial_theta([0])[0] * 1e-3
            path = write_potential(Path(tmp) / label,
                                   SpeciesNetworks(spec, arch, theta, norm, ["Ar", "Kr"]), {})
            potential = read_potential(path)
            predict(potential, frames[:5], progress=False)
            seconds, _ = _timed(lambda p=potential: predict(p, frames, progress=False))
            out[label] = {"atoms_per_s": 100 * 108 / seconds}
    out["nn_over_linear_time_ratio"] = (out["linear_snap"]["atoms_per_s"]
                                        / out["nn_tanh16"]["atoms_per_s"])
    return out


@benchmark
def mpi_evaluation() -> dict:
    """`aetk evaluate` frames/s at 1 and 2 ranks; large box (108 x 27 atoms) domain speed-up."""
    import subprocess
    import sys
    import tempfile
    from pathlib import Path

    from toolkit.data import write_frames
    from toolkit.models.fitting import fit_potential
    from toolkit.models.networks import Architecture
    from toolkit.models.training import TrainingSettings

    frames, _, _ = _ar_dataset(200, "ArKr")
    bin_dir = Path(sys.executable).parent
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "arkr.extxyz"
        write_frames(data, frames)
        fit_potential(data, Path(tmp) / "pot", Architecture((16,), "tanh"),
                      settings=TrainingSettings(max_iterations=5), progress=False)

        def run(ranks, extra):
            command = [str(bin_dir / "aetk"), "evaluate", "--potential", str(Path(tmp) / "pot"),
                       "--data", str(data), "--out", str(Path(tmp) / "e.json"), "--quiet",
                       *extra]
            if ranks > 1:
                command = [str(bin_dir / "mpirun"), "-np", str(ranks)] + command
            seconds, _ = _timed(lambda: subprocess.run(command, check=True,
                                                       capture_output=True))
            return seconds

        for ranks in (1, 2):
            out[f"frames_{ranks}rank"] = {"frames_per_s": 200 / run(ranks, [])}
        big = {r: run(r, ["--replicate", "3", "--mode", "domain"]) for r in (1, 2)}
        out["large_box_2916_atoms"] = {"seconds_1rank": big[1], "seconds_2ranks": big[2],
                                       "speedup": big[1] / big[2]}
    out["frames_speedup_2ranks"] = (out["frames_2rank"]["frames_per_s"]
                                    / out["frames_1rank"]["frames_per_s"])
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default="benchmarks/results.json")
    parser.add_argument("--only", nargs="*", choices=sorted(BENCHMARKS))
    args = parser.parse_args()
    os.environ.setdefault("AETK_CACHE", tempfile.mkdtemp(prefix="aetk-bench-"))
    results = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                           "platform": platform.platform()}}
    if os.path.exists(args.out):
        with open(args.out) as handle:
            results = {**json.load(handle), **results}
    for name in args.only or BENCHMARKS:
        print(f"[bench] {name} ...", flush=True)
        results[name] = BENCHMARKS[name]()
        print(json.dumps(results[name], indent=1), flush=True)
    tmp = args.out + ".tmp"
    with open(tmp, "w") as handle:
        json.dump(results, handle, indent=2)
    os.replace(tmp, args.out)
    print(f"[bench] wrote {args.out}")


if __name__ == "__main__":
    main()
