"""Studies over models: `aetk sweep`, `report`, `transfer`, `ceiling`, `emergence`,
`invariant`."""

from __future__ import annotations

import argparse
import signal
from pathlib import Path

from toolkit.cli.common import device_argument


def _cmd_sweep(args: argparse.Namespace) -> None:
    import dataclasses
    import sys
    import time

    from toolkit.parallel import world
    from toolkit.studies.sweep import (
        SweepConfigError,
        finished_cells,
        parse_only,
        parse_part,
        read_config,
        run_sweep,
    )

    if args.fill_gauge:
        from toolkit.studies.sweep import fill_gauge_columns

        filled = fill_gauge_columns(args.out, bundle=args.bundle, progress=not args.quiet)
        print(f"filled the gauge columns of {len(filled)} cells of {args.out}"
              + (f" ({', '.join(filled)})" if filled else ""))
        return
    if not args.config:
        raise SweepConfigError("aetk sweep needs --config (a sweep TOML, e.g. sweeps/quick.toml)")
    config = read_config(args.config)
    if args.device:
        config = dataclasses.replace(config, training=dataclasses.replace(config.training,
                                                                          device=args.device))
    if args.bundle:
        config = dataclasses.replace(config, data=dataclasses.replace(config.data,
                                                                      bundle=args.bundle))
    if args.linear_sums:
        config = dataclasses.replace(config, training=dataclasses.replace(config.training,
                                                                          linear_sums=True))
    from toolkit.studies.regime import code_version, run_record

    comm = world()
    started, before = time.time(), len(finished_cells(Path(args.out)))
    code = code_version() if comm.Get_rank() == 0 else {}  # the code this run imported
    part = parse_part(args.part)
    if part is not None and args.force_new:
        raise SweepConfigError("--force-new with --part: every process would clear the folder "
                               "the others write to; clear it once (--force-new without "
                               "--part, or a new --out), then start the parts")
    stopped = None
    # a time limit (timeout, a batch system) ends a one-process call with SIGTERM: keep its
    # run record, then exit 143 as the signal would. Under mpirun the default stays (a rank
    # waiting in a barrier would never see the flag, and the job would hang).
    catch = comm.Get_size() == 1
    previous = signal.signal(signal.SIGTERM, _raise_stopped) if catch else None
    try:
        try:
            results = run_sweep(config, args.out, progress=not args.quiet, comm=comm,
                                only=parse_only(args.only), part=part,
                                force_new=args.force_new)
        except _Stopped as exc:
            stopped = str(exc)
    finally:
        if catch:
            signal.signal(signal.SIGTERM, previous)
    if comm.Get_rank() == 0:  # a finished or stopped call, not one that failed
        run_record(args.out, started, code, before, len(finished_cells(Path(args.out))),
                   comm.Get_size(), config.training.device,
                   # the command as typed, without the machine's path to the executable
                   " ".join(["aetk", *sys.argv[1:]]), stopped=stopped)
    if stopped:
        print(f"aetk sweep: stopped by {stopped}; the finished cells are kept in {args.out}, "
              "run the same command again to go on", file=sys.stderr)
        raise SystemExit(128 + signal.SIGTERM)
    if comm.Get_rank() == 0:
        print(f"wrote {results} ({len(config.cells())} cells x {len(config.seeds)} seeds)")


class _Stopped(BaseException):
    """A stop signal, as KeyboardInterrupt: not caught by handlers of Exception."""


def _raise_stopped(signum, frame) -> None:
    raise _Stopped(signal.Signals(signum).name)


def _cmd_report(args: argparse.Namespace) -> None:
    from toolkit.plots import gauge_figure, rigidity_figure, sweep_figures, training_figure
    from toolkit.studies.sweep import read_results

    rows = read_results(args.results)
    sweep_dir = Path(args.results)
    sweep_dir = sweep_dir if sweep_dir.is_dir() else sweep_dir.parent
    if (sweep_dir / "config.json").is_file():  # say which cells the table lacks
        from toolkit.studies.sweep import describe_missing, missing_cells, stored_config

        config = stored_config(sweep_dir)
        print(describe_missing(config, missing_cells(config, sweep_dir)))
    from toolkit.studies.regime import data_size_axis

    sizes = data_size_axis(rows)
    label = {"local_r2_aligned": "local R2 (aligned)",
             "local_r2_gauge": "local R2 (gauge-projected)"}.get(args.local_metric, "local R2")
    paths = []
    if sizes:  # one line per size; the paper's figures at the largest
        from toolkit.plots import data_size_figure
        from toolkit.studies.regime import data_size_table

        # the totals too: with few frames the totals are fitted worse, which the local
        # scores must be read against
        for metric, ylabel in ((args.local_metric, label), ("total_r2", "total R2")):
            for activation, depth in sorted({(r["activation"], r["depth"]) for r in rows}):
                name = f"data_size_{metric}_{activation}_d{depth}"
                paths += data_size_figure(rows, metric, ylabel, args.out, name, activation,
                                          depth)
                text = "".join(f"\n{system}, {activation}, depth {depth}:\n\n"
                               + data_size_table(rows, metric, system, activation, depth)
                               for system in sorted({r["system"] for r in rows}))
                Path(args.out, f"{name}.md").write_text(text)
        rows = [row for row in rows if int(row["n_train"]) == sizes[-1]]
    paths += sweep_figures(rows, args.out, local_metric=args.local_metric)
    paths += gauge_figure(rows, args.out)
    paths += rigidity_figure(rows, args.out, "local_r2_aligned")
    paths += rigidity_figure(rows, args.out, "local_r2_gauge")
    for system in sorted({r["system"] for r in rows}):
        paths += training_figure(sweep_dir, args.out, system)
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
    from toolkit.studies.regime import data_size_axis, paired_table, width_table
    from toolkit.studies.sweep import read_results

    tables, notes = {}, ""
    for item in args.compare:
        name, sep, path = item.partition("=")
        if not sep or not path:
            raise AetkError(f"--compare {item!r}: write LABEL=SWEEP_DIR, e.g. adam=runs/adam")
        tables[name] = read_results(path)
        sizes = data_size_axis(tables[name])
        if sizes:  # as in the sweep's own figures: its largest training set
            tables[name] = [r for r in tables[name] if int(r["n_train"]) == sizes[-1]]
            notes += (f"{name}: a data-size axis ({', '.join(map(str, sizes))} training "
                      f"frames); compared at {sizes[-1]}.\n")
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
    Path(args.out, "comparison.md").write_text(notes + text)
    return paths


def _cmd_transfer(args: argparse.Namespace) -> None:
    from toolkit.parallel import is_rank0, world
    from toolkit.studies.sweep import read_config, refuse_changed_config
    from toolkit.studies.transfer import run_transfer

    if args.config:
        refuse_changed_config(read_config(args.config), args.results,
                              what=f", not to {args.config}")
    out = run_transfer(args.results, args.out, progress=not args.quiet)
    if is_rank0(world()):
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
    from toolkit.descriptor_spec import read_spec
    from toolkit.studies.emergence import run_job

    run_job(args.job, Path(args.out), Path(args.figures) if args.figures else None,
            read_spec(args.spec) if args.spec else None)


def _cmd_gauge(args: argparse.Namespace) -> None:
    import json

    from toolkit.studies.identifiability import gauge_command

    transfer = None if args.transfer == "auto" else args.transfer == "yes"
    result = gauge_command(args.potential, args.data, out=args.out, frames=args.frames,
                           transfer=transfer, n_knots=args.knots, spec_path=args.spec,
                           train_data=args.train_data, regulariser=args.regulariser,
                           progress=not args.quiet)
    keys = ("r2", "r2_aligned", "r2_gauge", "r2_frame_centred", "share_constants",
            "share_transfer", "share_rest", "share_symmetric_control")
    short = {k: round(result[k], 4) for k in keys}
    if result.get("rigidity"):
        short["mean_lpr"] = {k: float(f"{v:.4g}") for k, v in
                             result["rigidity"]["mean_lpr"].items()}
    print(f"wrote {result['out']} (report.json, psi.csv, psi.png): " + json.dumps(short))


def add_parsers(sub) -> None:
    p = sub.add_parser("sweep", help="train an architecture x seed grid on totals; one "
                       "results table (resumable; cells shared out under mpirun)")
    p.add_argument("--config", help="sweep TOML, e.g. sweeps/quick.toml (required unless "
                   "--fill-gauge)")
    p.add_argument("--out", required=True, help="sweep directory (results.csv, cells/, data/)")
    p.add_argument("--fill-gauge", action="store_true",
                   help="train nothing: compute the gauge columns of finished cells that hold "
                   "NaN there (cells trained from bundles before 2026-11-26) from their saved "
                   "parameters, with the data of the sweep or of --bundle")
    p.add_argument("--force-new", action="store_true",
                   help="discard the finished cells in --out and start over (a resume under "
                   "another config is refused otherwise)")
    device_argument(p, default=None)
    p.add_argument("--only", action="append", metavar="FIELD=V1,V2",
                   help="train only these cells (FIELD: system, activation, depth, width, "
                   "n_train); repeat to combine, e.g. --only system=ArKr --only depth=1")
    p.add_argument("--part", metavar="J/N",
                   help="train every N-th selected cell from the J-th on (largest first): N "
                   "processes sharing one --out and one GPU (scripts/gpu_sweep.sh)")
    p.add_argument("--bundle", help="folder of descriptor bundles <system>.npz (`aetk bundle`): "
                   "train from them, without LAMMPS or ASE (overrides [data] bundle)")
    p.add_argument("--linear-sums", action="store_true",
                   help="linear cells train on each frame's mean descriptor row per species "
                   "times its atom count: the same loss and gradient, 50-100x cheaper "
                   "([training] linear_sums = true)")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_cmd_sweep)

    p = sub.add_parser("report", help="the paper's figures from a sweep's results (PNG, PDF)")
    p.add_argument("--results", required=True, help="sweep directory or results.csv")
    p.add_argument("--out", required=True, help="figure directory")
    p.add_argument("--local-metric", default="local_r2_aligned",
                   choices=["local_r2_aligned", "local_r2_gauge", "local_r2", "local_pearson"])
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
    p.add_argument("--spec", help="descriptor spec TOML ([descriptor] table): ceilings at that "
                   "spec only (default: three specs, the toolkit's default, rcutfac 1.6 and "
                   "twojmax 8), or the map's spec (default: the toolkit's default; one --out "
                   "per spec)")
    p.set_defaults(func=_cmd_emergence)

    p = sub.add_parser("gauge", help="which part of a potential's local-energy error totals "
                       "cannot see: species constants, cross-pair transfers (psi(r)), rest; "
                       "gauge-projected R2 and local prediction rigidity")
    p.add_argument("--potential", required=True)
    p.add_argument("--data", required=True, help="frames with local_energy (.extxyz)")
    p.add_argument("--frames", choices=["all", "test"], default="all",
                   help="'test': the potential's held-out frames of its own training file")
    p.add_argument("--transfer", choices=["auto", "yes", "no"], default="auto",
                   help="decompose cross-pair transfers (auto: when the frames are a mixture)")
    p.add_argument("--knots", type=int, default=12, help="radial hat functions per pair type")
    p.add_argument("--spec", help="descriptor spec TOML; must equal the potential's")
    p.add_argument("--train-data", help="training frames for the rigidity (default: the "
                   "potential's own training frames when --data is its training file)")
    p.add_argument("--regulariser", type=float,
                   help="LPR regulariser relative to tr(H)/p (default 1e-6)")
    p.add_argument("--out", help="output folder (default POTENTIAL/gauge-DATA)")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_cmd_gauge)

    p = sub.add_parser("invariant", help="invariant points (Yoo et al. 2019): crystals and the "
                       "isolated atom, where every atom's energy is E/N; a potential's error "
                       "there and how far each lies from the training descriptors")
    p.add_argument("--potential", help="potential directory (without: reference points only)")
    p.add_argument("--data", help="training frames: neighbour-distance grid and descriptor "
                   "distances (their training split if the potential was trained on them)")
    p.add_argument("--reference", help="lj, lj+atm or lammps:FILE (default: what --data "
                   "records)")
    p.add_argument("--dft", action="store_true",
                   help="exact E/N from one CP2K single point per structure instead")
    p.add_argument("--cutoff", type=float, default=600.0, help="--dft: plane-wave cutoff, Ry")
    p.add_argument("--np", type=int, default=1, help="--dft: MPI ranks for CP2K")
    p.add_argument("--spec", help="descriptor spec TOML (default: the potential's, else "
                   "built in)")
    p.add_argument("--structures", nargs="+",
                   default=["fcc", "hcp", "bcc", "sc", "diamond", "isolated", "cscl"],
                   help="from fcc hcp bcc sc diamond isolated cscl (cscl: two-element "
                   "potentials; only e_A + e_B is fixed there)")
    p.add_argument("--points", type=int, default=5, help="lattice constants per structure")
    p.add_argument("--nn-range", type=float, nargs=2, metavar=("LOW", "HIGH"),
                   help="nearest-neighbour distances (A) to span (default: the training "
                   "data's 1st-99th percentile)")
    p.add_argument("--write-frames", help="also write the labelled structures (extxyz), e.g. "
                   "as training anchors (aetk fit --anchors)")
    p.add_argument("--anchor-max-ratio", type=float, default=float("inf"),
                   help="--write-frames: only points with an nn ratio at most this (1: inside "
                   "the training descriptors)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_cmd_invariant)


def _cmd_invariant(args: argparse.Namespace) -> None:
    from toolkit.descriptors import read_spec
    from toolkit.studies.invariant import format_table, run_invariant

    dft = None
    if args.dft:
        from toolkit.reference.dft.cp2k import DftSettings, Launcher

        dft = {"workdir": Path(args.out) / "dft", "settings": DftSettings(cutoff=args.cutoff),
               "launcher": Launcher(np=args.np)}
    summary = run_invariant(
        args.out, potential=args.potential, data=args.data, reference=args.reference,
        spec=read_spec(args.spec) if args.spec else None, structures=args.structures,
        points=args.points, nn_range=tuple(args.nn_range) if args.nn_range else None,
        write_frames=args.write_frames, dft=dft, progress=not args.quiet,
        anchor_max_ratio=args.anchor_max_ratio)
    print(format_table(summary["rows"]))
    if "scores" in summary:
        scores = summary["scores"]
        print("RMSE over single-element points {:.1f} meV (inside the data: {:.1f} meV, near "
              "it: {:.1f} meV); isolated atom {:+.1f} meV; pair sums {:.1f} meV".format(
                  *(1e3 * scores[k] for k in ("invariant_rmse", "invariant_inside_rmse",
                                               "invariant_near_rmse",
                                               "invariant_isolated_error",
                                               "invariant_pair_rmse"))))
    if "note" in summary:
        print(summary["note"])
    print(f"wrote {Path(args.out) / 'invariant.csv'}, invariant.json"
          + (", invariant.png" if "figure" in summary else "")
          + (f"; {summary['anchors_written']} structures with reference labels: "
             f"{args.write_frames}" if args.write_frames else ""))
