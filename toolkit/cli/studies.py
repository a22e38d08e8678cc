"""Studies over models: `aetk sweep`, `report`, `transfer`, `ceiling`, `emergence`."""

from __future__ import annotations

import argparse
from pathlib import Path

from toolkit.cli.common import device_argument


def _cmd_sweep(args: argparse.Namespace) -> None:
    import dataclasses
    import sys
    import time

    from toolkit.portable import world_comm
    from toolkit.studies.sweep import finished_cells, parse_only, read_config, run_sweep

    config = read_config(args.config)
    if args.device:
        config = dataclasses.replace(config, training=dataclasses.replace(config.training,
                                                                          device=args.device))
    if args.bundle:
        config = dataclasses.replace(config, data=dataclasses.replace(config.data,
                                                                      bundle=args.bundle))
    from toolkit.studies.regime import code_version, run_record

    comm = world_comm()
    started, before = time.time(), len(finished_cells(Path(args.out)))
    code = code_version() if comm.Get_rank() == 0 else {}  # the code this run imported
    results = run_sweep(config, args.out, progress=not args.quiet, comm=comm,
                        only=parse_only(args.only))
    if comm.Get_rank() == 0:
        run_record(args.out, started, code, before, len(finished_cells(Path(args.out))),
                   comm.Get_size(), config.training.device, " ".join(sys.argv))
        print(f"wrote {results} ({len(config.cells())} cells x {len(config.seeds)} seeds)")


def _cmd_report(args: argparse.Namespace) -> None:
    import json

    from toolkit.plots import sweep_figures
    from toolkit.studies.sweep import read_results

    rows = read_results(args.results)
    sweep_dir = Path(args.results)
    sweep_dir = sweep_dir if sweep_dir.is_dir() else sweep_dir.parent
    if (sweep_dir / "config.json").is_file():  # say which cells the table lacks
        from toolkit.studies.sweep import _config_from_dict, describe_missing, missing_cells

        config = _config_from_dict(json.loads((sweep_dir / "config.json").read_text()))
        print(describe_missing(config, missing_cells(config, sweep_dir)))
    sizes = sorted({row["n_train"] for row in rows})
    label = "local R2" + (" (aligned)" if "aligned" in args.local_metric else "")
    paths = []
    if len(sizes) > 1:  # a data-size axis: one line per size; the paper's figures at the largest
        from toolkit.plots import data_size_figure
        from toolkit.studies.regime import data_size_table

        for activation, depth in sorted({(r["activation"], r["depth"]) for r in rows}):
            name = f"data_size_{args.local_metric}_{activation}_d{depth}"
            paths += data_size_figure(rows, args.local_metric, label, args.out, name,
                                      activation, depth)
            text = "".join(f"\n{system}, {activation}, depth {depth}:\n\n"
                           + data_size_table(rows, args.local_metric, system, activation, depth)
                           for system in sorted({r["system"] for r in rows}))
            Path(args.out, f"{name}.md").write_text(text)
        rows = [row for row in rows if row["n_train"] == sizes[-1]]
    paths += sweep_figures(rows, args.out, local_metric=args.local_metric)
    if args.compare:
        paths += _compare(args, label)
    transfer = sweep_dir / "transfer.csv"
    if transfer.is_file():
        from toolkit.plots import transfer_figures

        paths += transfer_figures(read_results(transfer), args.out,
                                  local_metric=args.local_metric)
    print("wrote " + ", ".join(str(p) for p in paths if p.suffix == ".png"))


def _compare(args: argparse.Namespace, label: str) -> list[Path]:
    """--compare LABEL=SWEEP ...: the sweeps' curves on shared axes, and a table."""
    from toolkit.errors import AetkError
    from toolkit.plots import comparison_figure
    from toolkit.studies.regime import paired_table, width_table
    from toolkit.studies.sweep import read_results

    tables = {}
    for item in args.compare:
        name, sep, path = item.partition("=")
        if not sep or not path:
            raise AetkError(f"--compare {item!r}: write LABEL=SWEEP_DIR, e.g. adam=runs/adam")
        tables[name] = read_results(path)
    known = ["Ar", "Kr", "ArKr"]
    systems = sorted({r["system"] for rows in tables.values() for r in rows},
                     key=lambda s: (known.index(s) if s in known else len(known), s))
    paths = []
    text = ""
    for activation, depth in sorted({(r["activation"], r["depth"])
                                     for rows in tables.values() for r in rows}):
        for metric, ylabel in ((args.local_metric, label), ("total_r2", "total-energy R2")):
            name = f"compare_{metric}_{activation}_d{depth}"
            paths += comparison_figure(tables, metric, ylabel, args.out, name, activation,
                                       depth)
            text += (f"\n{metric}, {activation}, depth {depth} (mean ± std over seeds):\n\n"
                     + width_table(tables, metric, systems, activation, depth))
    text += ("\nThe same members across the sweeps (e.g. float32 vs float64 storage, cuda vs "
             "cpu):\n\n" + paired_table(tables, [args.local_metric, "total_r2"]))
    Path(args.out, "comparison.md").write_text(text)
    return paths


def _cmd_transfer(args: argparse.Namespace) -> None:
    from toolkit.lammps import world_comm
    from toolkit.studies.sweep import SweepConfigError, _config_from_dict, read_config
    from toolkit.studies.transfer import run_transfer

    if args.config:
        import json

        stored = json.loads((Path(args.results) / "config.json").read_text())
        # through the config type, so settings added later compare at their defaults
        if read_config(args.config).to_dict() != _config_from_dict(stored).to_dict():
            raise SweepConfigError(f"{args.config} is not the config the sweep in "
                                   f"{args.results} ran with (see its config.json)")
    out = run_transfer(args.results, args.out, progress=not args.quiet)
    if world_comm().Get_rank() == 0:
        print(f"wrote {out}")


def _cmd_ceiling(args: argparse.Namespace) -> None:
    import dataclasses
    import json

    from toolkit.data import atomic_write_text, read_frames
    from toolkit.descriptors import read_spec
    from toolkit.models.training import resolve_device
    from toolkit.studies.ceiling import (
        MODELS,
        CeilingSettings,
        format_ceiling,
        representability_ceiling,
    )

    resolve_device(args.device)
    defaults = CeilingSettings()
    settings = dataclasses.replace(defaults, network_training=dataclasses.replace(
        defaults.network_training, device=args.device))
    frames = read_frames(args.data)
    result = representability_ceiling(frames, read_spec(args.spec), split_seed=args.split_seed,
                                      models=args.model or MODELS, settings=settings,
                                      progress=not args.quiet, source=args.data)
    result["data"] = str(args.data)
    out = args.out or str(Path(args.data).with_suffix(".ceiling.json"))
    atomic_write_text(out, json.dumps(result, indent=1) + "\n")
    print(format_ceiling(result))
    print(f"wrote {out}")


def _cmd_emergence(args: argparse.Namespace) -> None:
    from toolkit.studies.emergence import run_job

    run_job(args.job, Path(args.out), Path(args.figures) if args.figures else None)


def add_parsers(sub) -> None:
    p = sub.add_parser("sweep", help="train an architecture x seed grid on totals; one "
                       "results table (resumable; cells shared out under mpirun)")
    p.add_argument("--config", required=True, help="sweep TOML, e.g. sweeps/quick.toml")
    p.add_argument("--out", required=True, help="sweep directory (results.csv, cells/, data/)")
    device_argument(p, default=None)
    p.add_argument("--only", action="append", metavar="FIELD=V1,V2",
                   help="train only these cells (FIELD: system, activation, depth, width, "
                   "n_train); repeat to combine, e.g. --only system=ArKr --only depth=1")
    p.add_argument("--bundle", help="folder of descriptor bundles <system>.npz (`aetk bundle`): "
                   "train from them, without LAMMPS or ASE (overrides [data] bundle)")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_cmd_sweep)

    p = sub.add_parser("report", help="the paper's figures from a sweep's results (PNG, PDF)")
    p.add_argument("--results", required=True, help="sweep directory or results.csv")
    p.add_argument("--out", required=True, help="figure directory")
    p.add_argument("--local-metric", default="local_r2_aligned",
                   choices=["local_r2_aligned", "local_r2", "local_pearson"])
    p.add_argument("--compare", action="append", metavar="LABEL=SWEEP",
                   help="also draw these sweeps' curves on shared axes with a table "
                   "(OUT/comparison.md), e.g. lbfgs=runs/a adam=runs/b; repeat")
    p.set_defaults(func=_cmd_report)

    p = sub.add_parser("transfer", help="pure->mixture and mixture->pure evaluations of every "
                       "sweep member through LAMMPS (works under mpirun)")
    p.add_argument("--results", required=True, help="sweep directory")
    p.add_argument("--config", help="the sweep TOML (checked against the sweep's config)")
    p.add_argument("--out", help="table (default SWEEP/transfer.csv)")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_cmd_transfer)

    p = sub.add_parser("ceiling", help="representability ceiling of a data set's local "
                       "energies: test R2 of direct linear, quadratic and network fits")
    p.add_argument("--data", required=True, help="frames with local_energy (.extxyz)")
    p.add_argument("--spec", help="descriptor spec TOML; default built in")
    p.add_argument("--model", action="append", choices=["linear", "quadratic", "network"],
                   help="repeat to choose; default all three")
    p.add_argument("--split-seed", type=int, default=0)
    p.add_argument("--out", help="JSON (default DATA.ceiling.json)")
    device_argument(p)
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_cmd_ceiling)

    p = sub.add_parser("emergence", help="descriptor spec search by ceiling, and the "
                       "teacher-share emergence map (docs/emergence.md)")
    p.add_argument("job", choices=["search", "ceilings", "map", "report"])
    p.add_argument("--out", default="runs/emergence")
    p.add_argument("--figures", help="report: folder for PNG figures")
    p.set_defaults(func=_cmd_emergence)
