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
