"""The paper's regime (docs/paper_regime.md): tables that compare sweeps and data sizes, and
the record of where and how a sweep ran.

- :func:`width_table`: a metric against width, mean +- std over seeds, one column per
  (label, system): e.g. the L-BFGS and Adam protocols side by side;
- :func:`data_size_table`: a metric against width, one column per number of training
  frames (a sweep with a ``train_frames`` axis);
- :func:`run_record`: machine, device, code version and wall time of a sweep run, appended
  to ``SWEEP/runs.jsonl`` by ``aetk sweep`` so a shipped table says where it came from.

Only rows that exist are tabulated: a cell that did not run is an empty entry, never a
number.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from toolkit.errors import AetkError


def group_metric(rows: Iterable[dict], metric: str,
                 fields: Sequence[str]) -> dict[tuple, dict[int, np.ndarray]]:
    """(values of ``fields``) -> {width: values of ``metric`` over seeds}."""
    out: dict[tuple, dict[int, list[float]]] = {}
    for row in rows:
        key = tuple(row[f] for f in fields)
        out.setdefault(key, {}).setdefault(int(row["width"]), []).append(float(row[metric]))
    return {k: {w: np.array(v) for w, v in by_width.items()} for k, by_width in out.items()}


def _entry(values: np.ndarray | None) -> str:
    if values is None or not len(values):
        return ""
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{values.mean():.3f} ± {values.std():.3f}"


def data_size_axis(rows: Sequence[dict]) -> list[int]:
    """The training-set sizes of a sweep with a data-size axis (several sizes for one cell),
    smallest first; [] where every cell has one size (systems that merely have different
    numbers of frames are not an axis; tables without the column, such as transfer.csv,
    have one size)."""
    per_cell: dict[tuple, set] = {}
    for row in rows:
        key = (row["system"], row["activation"], int(row["depth"]), int(row["width"]))
        per_cell.setdefault(key, set()).add(row.get("n_train"))
    if not any(len(sizes) > 1 for sizes in per_cell.values()):
        return []
    return sorted({int(row["n_train"]) for row in rows})


def width_table(tables: dict[str, list[dict]], metric: str, systems: Sequence[str],
                activation: str = "tanh", depth: int = 1) -> str:
    """Markdown: ``metric`` vs width for each (label, system); mean ± std over seeds (the
    population std of the seeds' values, numpy's default). Rows of several training-set
    sizes in one cell are refused: their mean would mix data sizes (``data_size_table``)."""
    for label, rows in tables.items():
        if data_size_axis([r for r in rows if r["activation"] == activation
                           and int(r["depth"]) == depth and r["system"] in systems]):
            raise AetkError(f"{label}: cells with several training-set sizes; tabulate one "
                            "size at a time (data_size_table shows them side by side)")
    groups = {label: group_metric([r for r in rows if r["activation"] == activation
                                   and int(r["depth"]) == depth], metric, ["system"])
              for label, rows in tables.items()}
    columns = [(label, system) for label in tables for system in systems
               if (system,) in groups[label]]
    widths = sorted({w for label, system in columns for w in groups[label][(system,)]})
    lines = ["| width | " + " | ".join(f"{label} {system}" for label, system in columns) + " |",
             "|---|" + "---|" * len(columns)]
    for width in widths:
        cells = [_entry(groups[label][(system,)].get(width)) for label, system in columns]
        lines.append(f"| {width} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def data_size_table(rows: list[dict], metric: str, system: str, activation: str = "tanh",
                    depth: int = 1) -> str:
    """Markdown: ``metric`` vs width (rows) for each number of training frames (columns)."""
    chosen = [r for r in rows if r["system"] == system and r["activation"] == activation
              and int(r["depth"]) == depth]
    groups = group_metric(chosen, metric, ["n_train"])
    sizes = sorted(k[0] for k in groups)
    widths = sorted({w for by_width in groups.values() for w in by_width})
    lines = ["| width | " + " | ".join(f"{n} frames" for n in sizes) + " |",
             "|---|" + "---|" * len(sizes)]
    for width in widths:
        lines.append(f"| {width} | " + " | ".join(_entry(groups[(n,)].get(width))
                                                  for n in sizes) + " |")
    return "\n".join(lines) + "\n"


def paired_table(tables: dict[str, list[dict]], metrics: Sequence[str]) -> str:
    """Markdown: per label after the first, how far each member's ``metrics`` are from the
    same member (system, activation, depth, width, seed, n_train) in the first table.

    For runs that should agree (float32 vs float64 storage, cuda vs cpu): max and mean
    |difference| over the members both tables have, and how many those are.
    """
    fields = ("system", "activation", "depth", "width", "seed", "n_train")
    labels = list(tables)

    def keyed(rows):
        return {tuple(str(r[f]) for f in fields): r for r in rows}

    reference = keyed(tables[labels[0]])
    lines = [f"| vs {labels[0]} | members | " + " | ".join(
        f"max abs diff {m} | mean abs diff {m}" for m in metrics) + " |",
        "|---|---|" + "---|---|" * len(metrics)]
    for label in labels[1:]:
        other = keyed(tables[label])
        shared = sorted(set(reference) & set(other))
        cells = []
        for metric in metrics:
            diff = np.array([abs(float(other[k][metric]) - float(reference[k][metric]))
                             for k in shared])
            cells += [f"{diff.max():.2e}", f"{diff.mean():.2e}"] if len(diff) else ["", ""]
        lines.append(f"| {label} | {len(shared)} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def step_table(bench: dict) -> str:
    """Markdown: one training step's time per architecture on the GPU and the CPU, from the
    JSON that ``scripts/gpu_step_bench.py`` writes (CPU only where no GPU ran)."""
    gpu = bench.get("gpu")
    cpu = f"CPU ({bench['cpu_threads']} threads)"
    head = ["width x layers", f"{gpu} (ms)", f"{cpu} (ms)", "CPU / GPU"] if gpu else \
        ["width x layers", f"{cpu} (ms)"]
    lines = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    order = sorted(bench["steps"], key=lambda k: tuple(int(x) for x in reversed(k.split("x"))))
    for key in order:
        row = bench["steps"][key]
        cells = [key.replace("x", " x "), _ms(row["cpu_s"])]
        if gpu:
            cells[1:1] = [_ms(row["cuda_s"])]
            cells.append(f"{row['cpu_over_cuda']:.0f}x")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _ms(seconds: float) -> str:
    ms = 1e3 * float(seconds)
    return f"{ms:,.0f}" if ms >= 100 else f"{ms:.3g}"


# -- where a sweep ran ------------------------------------------------------------------------
def code_version(root: str | Path | None = None) -> dict:
    """The git commit of the toolkit's checkout (and whether it had local changes)."""
    from toolkit import __version__

    root = Path(root) if root else Path(__file__).resolve().parents[2]
    out: dict = {"aetk": __version__}
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"],
                                capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--",
                                "toolkit"], capture_output=True, text=True, timeout=10)
        if commit.returncode == 0:
            out["git_commit"] = commit.stdout.strip()
            out["toolkit_modified"] = bool(dirty.stdout.strip())
    except (OSError, subprocess.SubprocessError):
        pass
    return out


def machine() -> dict:
    """CPU model and count, memory, torch and its device, Python, OS."""
    import torch

    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    info = {"cpu": cpu, "cpus": os.cpu_count(), "python": platform.python_version(),
            "platform": platform.platform(), "torch": torch.__version__,
            "cuda": torch.cuda.is_available()}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def run_record(out: str | Path, started: float, code: dict, cells_before: int,
               cells_after: int, ranks: int, device: str, command: str,
               stopped: str | None = None) -> dict:
    """Append one line about an ``aetk sweep`` call to ``out/runs.jsonl``.

    ``code``: :func:`code_version` taken when the run started (the code it imported).
    ``stopped``: the signal that ended the call before its cells were done (a time limit's
    SIGTERM), recorded as ``"stopped"``. ``cells_trained`` counts the cells the folder
    gained, by every process that shares it (``--part``).
    """
    record = {"started": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(started)),
              "wall_s": round(time.time() - started, 1), "ranks": ranks, "device": device,
              "cells_trained": cells_after - cells_before, "cells_finished": cells_after,
              "command": command, "code": code, "machine": machine()}
    if stopped:
        record["stopped"] = stopped
    with open(Path(out) / "runs.jsonl", "a") as handle:
        handle.write(json.dumps(record) + "\n")
    return record
