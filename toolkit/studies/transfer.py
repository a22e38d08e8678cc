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

import tempfile
from pathlib import Path

import numpy as np

from toolkit.data import make_split, read_frames
from toolkit.descriptor_spec import DescriptorSpec
from toolkit.evaluation import PotentialSession, Prediction, check_frames_for, score
from toolkit.models.networks import SpeciesNetworks, combine
from toolkit.models.potential import Potential, read_potential, write_potential
from toolkit.models.wall import RepulsiveWall
from toolkit.models.wall import merge as merge_walls
from toolkit.parallel import barrier, gather_lists, serial, share, world
from toolkit.progress import progress as progress_bar
from toolkit.tables import write_table


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
                    "local_r2_aligned", "local_rmse_aligned", "local_r2_gauge",
                    "local_r2_frame_centred", "gauge_share_transfer", "aligned_share_transfer"]


def transfer_columns(spec: DescriptorSpec) -> list[str]:
    """transfer.csv: the fixed columns, then mean LPR per element of the target's atoms."""
    from toolkit.studies.identifiability import lpr_columns

    return TRANSFER_COLUMNS + lpr_columns(spec)


def _task_sources(task) -> dict[str, str]:
    """element -> the sweep system whose member supplies that element's network."""
    if task[1] == "mixture->pure":
        return {e: "ArKr" for e in ("Ar", "Kr")}
    return {"Ar": "Ar", "Kr": "Kr"}


def _task_rigidity(task, sweep_dir: Path, trains: dict, query, spec: DescriptorSpec,
                   ) -> dict[str, float]:
    """Mean LPR per element of the target test atoms, each element's rigidity from the
    training frames of the member that supplies its network (block-diagonal over sources)."""
    from toolkit.studies.rigidity import model_rigidity

    _, _, activation, depth, width, seed = task
    out = {}
    for element, system in _task_sources(task).items():
        s = spec.elements.index(element)
        mask = query.species_index == s
        if not mask.any():
            continue
        model = _member(sweep_dir, system, activation, depth, width, seed)
        train = trains[system]
        lpr = model_rigidity(model, train.values, train.species_index, train.frame_index,
                             query.values[mask], query.species_index[mask])
        out[f"lpr_{element}"] = float(lpr.mean())
    return out


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
    from toolkit.studies.sweep import refuse_changed_data, stored_config, sweep_frames

    comm = comm or world()
    rank = comm.Get_rank()
    sweep_dir = Path(sweep_dir)
    config = stored_config(sweep_dir)
    # the test frames and training sets are the sweep's only if the frames are its frames
    refuse_changed_data(config, sweep_dir)
    if config.train_frames:
        from toolkit.studies.sweep import SweepConfigError

        raise SweepConfigError(f"{sweep_dir}: transfer takes sweeps without a train_frames "
                               "axis (one network per architecture, width and seed)")
    from toolkit.descriptors import compute_descriptors
    from toolkit.studies.identifiability import GaugeProjector

    spec = config.spec
    test_frames, projectors, queries, trains = {}, {}, {}, {}
    for system in config.systems:
        path = sweep_frames(config, system, sweep_dir)
        frames = read_frames(path)
        split = make_split(frames, config.split_seed, config.split_mode, path)
        test_frames[system] = [frames[i] for i in split.test]
        descriptors = compute_descriptors(frames, spec, source=path, progress=False)
        queries[system] = descriptors.select_frames(list(split.test))
        trains[system] = descriptors.select_frames(list(split.train))
        if all("local_energy" in a.arrays for a in test_frames[system]):
            projectors[system] = GaugeProjector(test_frames[system], spec)
    tasks = transfer_tasks(config, sweep_dir)
    rows = []
    with tempfile.TemporaryDirectory(prefix="aetk-transfer-") as scratch:
        session = None
        for index, task in enumerate(progress_bar(share(tasks, comm), desc="transfer",
                                                  unit="model",
                                                  enabled=progress and rank == 0)):
            networks = _task_networks(task, sweep_dir)
            potential_dir = write_networks(networks, Path(scratch) / f"p{rank}-{index}",
                                           {"transfer_task": list(task)})
            potential = read_potential(potential_dir)
            frames = test_frames[task[0]]
            check_frames_for(potential, frames, f"{task[0]} test frames")
            if session is None:  # one LAMMPS instance per rank, reused for every model
                session = PotentialSession(potential, comm=serial())
            else:
                session.switch(potential)
            prediction = Prediction.collect([session.evaluate(atoms) for atoms in frames])
            metrics = score(potential, frames, prediction)
            row = _row(task, metrics)
            if task[0] in projectors:
                reference = np.concatenate([a.arrays["local_energy"] for a in frames])
                report = projectors[task[0]].decompose(reference, prediction.local_energy)
                row.update(local_r2_gauge=report.r2_gauge,
                           local_r2_frame_centred=report.r2_frame_centred,
                           gauge_share_transfer=report.share_transfer,
                           aligned_share_transfer=report.aligned_share_transfer)
            row.update(_task_rigidity(task, sweep_dir, trains, queries[task[0]], spec))
            rows.append(row)
        if session is not None:
            session.lmp.close()
    gathered = gather_lists(rows, comm)
    out = Path(out) if out else sweep_dir / "transfer.csv"
    if rank == 0:
        order = {task: i for i, task in enumerate(tasks)}
        write_table(out, sorted(gathered, key=lambda r: order[(
            r["system"], r["direction"], r["activation"], r["depth"], r["width"],
            r["seed"])]), transfer_columns(spec))
    barrier(comm)
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
