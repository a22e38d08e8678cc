"""Reference points off the atoms (CEMT): `aetk points {descriptors,search,lj,dft-cubes,dft,
cost,report}` (docs/reference_points.md)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def _point_spec(args: argparse.Namespace):
    from dataclasses import replace

    from toolkit.descriptors import read_spec
    from toolkit.points.placement import bond_types, grid_type

    spec = read_spec(args.spec)
    points = ()
    if args.kind in ("bonds", "both"):
        points += bond_types(spec, args.reach, args.bond_cutoff_factor)
    if args.kind in ("grid", "both"):
        points += (grid_type(spec, args.spacing, args.grid_radius),)
    return replace(spec, points=points)


def _cmd_descriptors(args: argparse.Namespace) -> None:
    import numpy as np

    from toolkit.data import read_frames
    from toolkit.points.descriptors import compute_point_descriptors

    spec = _point_spec(args)
    data = compute_point_descriptors(read_frames(args.data), spec, with_atoms=args.with_atoms,
                                     source=args.data, progress=not args.quiet)
    for s, name in enumerate(spec.species):
        n = int(np.sum(data.species_index == s))
        if n:
            print(f"{name}: {n} rows ({n / data.n_frames:.1f} per frame)")
    if args.out:
        np.savez(args.out, values=data.descriptors.values, frame_index=data.frame_index,
                 species_index=data.species_index, is_point=data.is_point,
                 positions=data.positions, bond_atoms=data.bond_atoms,
                 bond_length=data.bond_length, species=np.array(spec.species))
        Path(args.out).with_suffix(".spec.toml").write_text(spec.to_toml())
        print(f"wrote {args.out} (+ .spec.toml)")


def _cmd_search(args: argparse.Namespace) -> None:
    from toolkit.data import atomic_write_text, read_frames
    from toolkit.descriptors import read_spec
    from toolkit.studies.reference_points import bond_spec_search

    frames = read_frames(args.data)[: args.frames]
    rows = bond_spec_search(frames, read_spec(args.spec), tuple(args.factors),
                            tuple(args.reaches), progress=not args.quiet)
    for row in rows:
        d, t = row["direct"], row["totals"]
        print(f"cutoff {row['bond_cutoff_factor']} sigma, reach {row['reach']}: direct bond R2 "
              f"{d['bond_r2']:.5f} ({d['bond_rmse_meV']:.3f} meV); from totals: bond R2 "
              f"{t['bond_r2']:.5f}, total R2 {t['total_r2']:.5f}, local R2 aligned "
              f"{t['local_r2_aligned']:.4f}")
    atomic_write_text(args.out, json.dumps({"data": args.data, "frames": len(frames),
                                            "rows": rows}, indent=1) + "\n")
    print(f"wrote {args.out}")


def _cmd_lj(args: argparse.Namespace) -> None:
    from toolkit.studies.reference_points import (
        PointsConfigError,
        read_lj_config,
        rescore_lj_study,
        run_lj_study,
    )

    if args.rescore:
        path = rescore_lj_study(args.out, progress=not args.quiet)
    elif args.config is None:
        raise PointsConfigError("--config is required (or --rescore an existing --out)")
    else:
        path = run_lj_study(read_lj_config(args.config), args.out, progress=not args.quiet)
    print(f"wrote {path}")


def _cmd_dft_cubes(args: argparse.Namespace) -> None:
    from toolkit.points.dft_cubes import compute_cubes

    manifest = compute_cubes(args.data, args.frames, args.out, progress=not args.quiet)
    print(f"wrote {args.out}/manifest.json ({len(manifest['frames'])} frames, "
          f"{len(manifest['free_atoms'])} free atoms)")


def _cmd_dft(args: argparse.Namespace) -> None:
    from toolkit.descriptors import read_spec
    from toolkit.studies.reference_points import GridStudyConfig, run_dft_grid_study

    config = GridStudyConfig(systems=tuple(args.systems), dataset=args.dataset,
                             cubes=args.cubes, points_per_edge=args.points_per_edge,
                             radius=args.grid_radius, widths=tuple(args.widths),
                             seeds=tuple(args.seeds), spec=read_spec(args.spec))
    summary = run_dft_grid_study(config, args.out, progress=not args.quiet)
    for system, entry in summary["systems"].items():
        print(f"{system}: grid {entry['grid_shape']}, linear ceiling (leave one frame out) "
              f"R2 {entry['linear_ceiling_deformation']['r2']:.3f}")
    print(f"wrote {args.out}/grid_results.csv, {args.out}/grid.json")


def _cmd_cost(args: argparse.Namespace) -> None:
    from toolkit.data import atomic_write_text, read_frames
    from toolkit.studies.reference_points import point_costs

    spec = _point_spec(args)
    result = point_costs(read_frames(args.data)[: args.frames], spec, repeats=args.repeats)
    print(json.dumps(result, indent=1))
    if args.out:
        atomic_write_text(args.out, json.dumps(result, indent=1) + "\n")


def _cmd_report(args: argparse.Namespace) -> None:
    from toolkit.data import atomic_write_text
    from toolkit.studies import reference_points as study

    paths, tables = [], []
    if args.lj:
        rows = study.read_table(Path(args.lj) / "results.csv")
        tables += ["## LJ study: mean +- std over seeds, test frames", study.lj_markdown(rows)]
        paths += study.lj_width_figure(rows, args.out)
        paths += study.lj_bond_figure(args.lj, args.out, width=args.bond_width)
    if args.search:
        tables += ["## Bond points: linear fits", study.search_markdown(
            json.loads(Path(args.search).read_text()))]
    if args.dft:
        tables += ["## DFT grid study", study.grid_markdown(
            study.read_table(Path(args.dft) / "grid_results.csv"),
            json.loads((Path(args.dft) / "grid.json").read_text()))]
        paths += study.dft_grid_figure(args.dft, args.out, width=args.grid_width)
    if args.cost:
        tables += ["## Cost per frame", study.cost_markdown(
            json.loads(Path(args.cost).read_text()))]
    text = "\n".join(tables)
    print(text)
    if text:
        atomic_write_text(Path(args.out) / "points_tables.md", text)
    print("wrote " + ", ".join(str(p) for p in paths if p.suffix == ".png"))


def _point_arguments(p: argparse.ArgumentParser, kind_default: str) -> None:
    p.add_argument("--kind", choices=["bonds", "grid", "both"], default=kind_default)
    p.add_argument("--spec", help="descriptor spec TOML of the atoms; default built in")
    p.add_argument("--reach", type=float, default=1.05,
                   help="bond points see their bond's ends a factor reach inside their cutoff")
    p.add_argument("--bond-cutoff-factor", type=float, default=None,
                   help="bonds below f (R_a + R_b) A (1.6 = the LJ reference cutoff); "
                   "default the spec's rcutfac")
    p.add_argument("--spacing", type=float, default=2.0, help="grid spacing, A")
    p.add_argument("--grid-radius", type=float, default=None,
                   help="grid point SNAP radius, A (default: mean element radius)")


def add_parsers(sub) -> None:
    group = sub.add_parser("points", help="reference points off the atoms (bond centres, "
                           "grids): descriptors, studies, figures (docs/reference_points.md)")
    jobs = group.add_subparsers(dest="job", required=True)

    p = jobs.add_parser("descriptors", help="SNAP descriptors of bond centres or grid points "
                        "(pseudo-atoms of SNAP weight 0 in LAMMPS)")
    p.add_argument("--data", required=True, help="frames (.extxyz)")
    _point_arguments(p, "bonds")
    p.add_argument("--with-atoms", action="store_true", help="also the atoms' rows")
    p.add_argument("--out", help=".npz with every row (and SPEC next to it)")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_cmd_descriptors)

    p = jobs.add_parser("search", help="linear bond models by least squares: direct fit of "
                        "exact LJ pair energies (the limit) and fit on totals")
    p.add_argument("--data", required=True, help="classical LJ frames (.extxyz)")
    p.add_argument("--frames", type=int, default=300, help="first N frames")
    p.add_argument("--factors", type=float, nargs="+", default=[1.45, 1.6])
    p.add_argument("--reaches", type=float, nargs="+", default=[1.02, 1.05, 1.1, 1.2])
    p.add_argument("--spec", help="descriptor spec TOML of the atoms; default built in")
    p.add_argument("--out", required=True, help="JSON")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_cmd_search)

    p = jobs.add_parser("lj", help="atom-, bond-centred and combined networks of every width "
                        "on LJ totals; bond and atomic energies against the exact partition")
    p.add_argument("--config", help="study TOML, e.g. sweeps/points_lj.toml")
    p.add_argument("--out", required=True, help="study directory (results.csv, cells/)")
    p.add_argument("--rescore", action="store_true", help="score the finished cells of --out "
                   "again from their saved ensembles (OUT/config.json; no training)")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_cmd_lj)

    p = jobs.add_parser("dft-cubes", help="CP2K single points keeping their cubes (shipped "
                        "settings), and the free atoms the energy density needs")
    p.add_argument("--data", required=True, help="e.g. datasets/dft/Ar32.extxyz (read only)")
    p.add_argument("--frames", type=int, nargs="+", required=True, help="frame indices")
    p.add_argument("--out", required=True)
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_cmd_dft_cubes)

    p = jobs.add_parser("dft", help="grid-centred networks on the shipped DFT totals against "
                        "the coarse-grained electrostatic energy density")
    p.add_argument("--systems", nargs="+", default=["Ar32", "Ar16Kr16"])
    p.add_argument("--dataset", default="datasets/dft")
    p.add_argument("--cubes", default="runs/points/dft", help="`dft-cubes` outputs, per system")
    p.add_argument("--points-per-edge", type=int, default=8)
    p.add_argument("--grid-radius", type=float, default=None)
    p.add_argument("--widths", type=int, nargs="+", default=[0, 1, 4, 16],
                   help="0 = linear (no hidden layer)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--spec", help="descriptor spec TOML of the atoms; default built in")
    p.add_argument("--out", required=True)
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_cmd_dft)

    p = jobs.add_parser("cost", help="descriptor seconds per frame: atoms alone, bonds, grid")
    p.add_argument("--data", required=True)
    p.add_argument("--frames", type=int, default=20)
    p.add_argument("--repeats", type=int, default=1)
    _point_arguments(p, "both")
    p.add_argument("--out", help="JSON")
    p.set_defaults(func=_cmd_cost)

    p = jobs.add_parser("report", help="figures of the LJ and DFT studies (PNG, PDF)")
    p.add_argument("--lj", help="LJ study directory")
    p.add_argument("--bond-width", type=int, default=8, help="bond model shown in detail")
    p.add_argument("--dft", help="DFT grid study directory")
    p.add_argument("--grid-width", type=int, default=0, help="grid model shown (0: linear)")
    p.add_argument("--search", help="`points search` JSON")
    p.add_argument("--cost", help="`points cost` JSON")
    p.add_argument("--out", required=True, help="figure directory")
    p.set_defaults(func=_cmd_report)
