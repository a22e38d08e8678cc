"""Transfer: per-element networks from different potentials combined in one LAMMPS model.

In the paper, networks trained on pure Ar and pure Kr are combined so that each atom's
environment is handled by its own species' network, and evaluated on the mixture;
mixture-trained networks are evaluated on the pure liquids. Every evaluation runs through
LAMMPS (``pair_style mliap``); under ``mpirun`` the potentials are shared out over ranks,
each rank reusing one LAMMPS instance for all of its potentials and frames.

Combining is exact (:func:`toolkit.models.networks.combine`): each source's energy scale is
folded into its own output layer, so the assembled species network is the very function the
source potential evaluates.
"""

from __future__ import annotations

import csv
import io
import json
import tempfile
from pathlib import Path

from tqdm import tqdm

from toolkit.data import atomic_write_text, read_frames, split_frames
from toolkit.evaluation import PotentialSession, Prediction, check_frames_for, score
from toolkit.models.networks import SpeciesNetworks, combine
from toolkit.models.potential import Potential, read_potential, write_potential
from toolkit.models.wall import RepulsiveWall
from toolkit.models.wall import merge as merge_walls


def write_networks(model: SpeciesNetworks, out: str | Path, meta: dict,
                   wall: RepulsiveWall | None = None) -> Path:
    return write_potential(out, model, meta, wall=wall)


def assemble(sources: dict[str, str | Path], out: str | Path, wall: bool = True) -> Potential:
    """`aetk assemble`: one potential directory from per-element source potentials.

    The repulsive walls of the sources merge into one that starts below every source's
    data (toolkit/models/wall.py). Sources must all have a wall or all have none; ``wall=False``
    drops the walls.
    """
    potentials = {element: read_potential(path) for element, path in sources.items()}
    merged = (merge_walls([p.wall for p in potentials.values()],
                          [p.directory for p in potentials.values()]) if wall else None)
    combined = combine({e: p.model for e, p in potentials.items()},
                       {e: str(p.directory) for e, p in potentials.items()})
    meta = {"assembled_from": {e: {"directory": str(sources[e]),
                                   "model_sha256": p.meta["files"]["model.mliap.nn"]}
                               for e, p in potentials.items()}}
    write_networks(combined, out, meta, wall=merged)
    return read_potential(out)


# -- the transfer study over a sweep -------------------------------------------------------------
TRANSFER_COLUMNS = ["system", "direction", "activation", "depth", "width", "seed",
                    "total_r2", "total_pearson", "total_rmse", "local_r2", "local_pearson",
                    "local_r2_aligned", "local_rmse_aligned"]


def _member(sweep_dir: Path, system, activation, depth, width, seed) -> SpeciesNetworks:
    from toolkit.studies.sweep import load_member

    return load_member(sweep_dir, system, activation, depth, width, seed)


def transfer_tasks(config, sweep_dir: Path) -> list[tuple]:
    """(target system, direction, activation, depth, width, seed) with all inputs finished."""
    from toolkit.studies.sweep import cell_id, finished_cells

    done = finished_cells(sweep_dir)
    tasks = []
    for activation in config.activations:
        for depth in config.depths:
            for width in config.widths:
                have = {s for s in ("Ar", "Kr", "ArKr")
                        if cell_id(s, activation, depth, width) in done}
                for seed in config.seeds:
                    if {"Ar", "Kr", "ArKr"} <= have:
                        tasks.append(("ArKr", "pure->mixture", activation, depth, width, seed))
                    if "ArKr" in have:
                        tasks += [(target, "mixture->pure", activation, depth, width, seed)
                                  for target in ("Ar", "Kr") if target in config.systems]
    return tasks


def _task_networks(task, sweep_dir: Path) -> SpeciesNetworks:
    target, direction, activation, depth, width, seed = task
    if direction == "mixture->pure":
        return _member(sweep_dir, "ArKr", activation, depth, width, seed)
    pure = {e: _member(sweep_dir, e, activation, depth, width, seed) for e in ("Ar", "Kr")}
    return combine(pure, {e: f"sweep cell {e} {activation} d{depth} w{width} seed {seed}"
                          for e in pure})


def run_transfer(sweep_dir: str | Path, out: str | Path | None = None, comm=None,
                 progress: bool = True) -> Path:
    """Evaluate every transfer of a finished sweep through LAMMPS; write transfer.csv."""
    from toolkit.lammps import self_comm, world_comm
    from toolkit.studies.sweep import _config_from_dict, data_path

    comm = comm or world_comm()
    rank, size = comm.Get_rank(), comm.Get_size()
    sweep_dir = Path(sweep_dir)
    config = _config_from_dict(json.loads((sweep_dir / "config.json").read_text()))
    if config.train_frames:
        from toolkit.studies.sweep import SweepConfigError

        raise SweepConfigError(f"{sweep_dir}: transfer takes sweeps without a train_frames "
                               "axis (one network per architecture, width and seed)")
    test_frames = {}
    for system in config.systems:
        frames = read_frames(data_path(config, system, sweep_dir))
        split = split_frames(len(frames), config.split_seed)
        test_frames[system] = [frames[i] for i in split.test]
    tasks = transfer_tasks(config, sweep_dir)
    mine = tasks[rank::size]
    rows = []
    with tempfile.TemporaryDirectory(prefix="aetk-transfer-") as scratch:
        session = None
        for index, task in enumerate(tqdm(mine, desc="transfer", unit="model",
                                          disable=not progress or rank != 0)):
            networks = _task_networks(task, sweep_dir)
            potential_dir = write_networks(networks, Path(scratch) / f"p{rank}-{index}",
                                           {"transfer_task": list(task)})
            potential = read_potential(potential_dir)
            frames = test_frames[task[0]]
            check_frames_for(potential, frames, f"{task[0]} test frames")
            if session is None:  # one LAMMPS instance per rank, reused for every model
                session = PotentialSession(potential, comm=self_comm())
            else:
                session.switch(potential)
            prediction = Prediction.collect([session.evaluate(atoms) for atoms in frames])
            metrics = score(potential, frames, prediction)
            rows.append(_row(task, metrics))
        if session is not None:
            session.lmp.close()
    gathered = comm.gather(rows, root=0)
    out = Path(out) if out else sweep_dir / "transfer.csv"
    if rank == 0:
        order = {task: i for i, task in enumerate(tasks)}
        all_rows = sorted((r for part in gathered for r in part),
                          key=lambda r: order[(r["system"], r["direction"], r["activation"],
                                               r["depth"], r["width"], r["seed"])])
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=TRANSFER_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows({k: (repr(v) if isinstance(v, float) else v) for k, v in r.items()}
                         for r in all_rows)
        atomic_write_text(out, buffer.getvalue())
    comm.Barrier()
    return out


def _row(task, metrics: dict) -> dict:
    target, direction, activation, depth, width, seed = task
    local = metrics.get("local", {})
    aligned = metrics.get("local_aligned", {})
    return {"system": target, "direction": direction, "activation": activation,
            "depth": depth, "width": width, "seed": seed,
            "total_r2": metrics["total"]["r2"], "total_pearson": metrics["total"]["pearson"],
            "total_rmse": metrics["total"]["rmse"], "local_r2": local.get("r2", float("nan")),
            "local_pearson": local.get("pearson", float("nan")),
            "local_r2_aligned": aligned.get("r2", float("nan")),
            "local_rmse_aligned": aligned.get("rmse", float("nan"))}
