"""`aetk`: the command line. Parses arguments and calls library functions, nothing more."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from toolkit import __version__


class UserError(Exception):
    """An error the user can fix; printed as one line, no traceback."""


WALL_HELP = ("leave out the repulsive ZBL walls that start below each element pair's "
             "closest pair in the data (zero on every data frame; stops MD collapse, see "
             "toolkit/wall.py)")

def _cmd_generate(args: argparse.Namespace) -> None:
    from toolkit.data import write_frames
    from toolkit.reference.classical import ClassicalRun, generate_frames, write_input
    from toolkit.species import mixture_name
    from toolkit.teacher import generate_teacher_frames, parse_teacher_reference

    teacher = parse_teacher_reference(args.reference)
    systems = [args.system]
    if args.kr_fraction:
        if args.system != "ArKr":
            raise ValueError("--kr-fraction goes with --system ArKr")
        systems = [mixture_name({"Ar": 1.0 - x, "Kr": x}, args.atoms) for x in args.kr_fraction]
    if args.frames < len(systems):
        raise ValueError(f"--frames {args.frames}: at least one frame per composition")
    out = Path(args.out)
    frames = []
    for k, system in enumerate(systems):
        # frames shared out as evenly as the count allows; each composition its own MD run
        n_frames = args.frames // len(systems) + (k < args.frames % len(systems))
        run = ClassicalRun(
            system=system,
            # a teacher relabels frames sampled with the classical reference it is mixed with
            reference=args.other if teacher is not None else args.reference,
            n_frames=n_frames,
            seed=args.seed + k,
            natoms=args.atoms,
            temperature=args.temperature,
            every=args.every,
            cutoff_sigma=args.cutoff_sigma,
        )
        if teacher is not None:
            frames += generate_teacher_frames(run, teacher, share=args.share, other=args.other,
                                              progress=not args.quiet)
        else:
            frames += generate_frames(run, progress=not args.quiet)
        lmp = out.with_suffix(".lmp" if len(systems) == 1 else f".{system}.lmp")
        write_input(run, lmp, dump_file=lmp.with_suffix(".dump").name)
    write_frames(out, frames)
    label = (f"{args.share} x teacher {teacher} + {1 - args.share:g} x {args.other}"
             if teacher is not None else args.reference)
    inputs = (out.with_suffix(".lmp") if len(systems) == 1
              else out.with_suffix(".<system>.lmp"))
    print(f"wrote {len(frames)} frames of {', '.join(systems)} ({label}) to {out}; "
          f"LAMMPS input of the sampling run: {inputs}")


def _cmd_ceiling(args: argparse.Namespace) -> None:
    import json

    from toolkit.ceiling import MODELS, format_ceiling, representability_ceiling
    from toolkit.data import atomic_write_text, read_frames
    from toolkit.descriptors import read_spec

    frames = read_frames(args.data)
    result = representability_ceiling(frames, read_spec(args.spec), split_seed=args.split_seed,
                                      models=args.model or MODELS, progress=not args.quiet,
                                      source=args.data)
    result["data"] = str(args.data)
    out = args.out or str(Path(args.data).with_suffix(".ceiling.json"))
    atomic_write_text(out, json.dumps(result, indent=1) + "\n")
    print(format_ceiling(result))
    print(f"wrote {out}")


def _cmd_descriptors(args: argparse.Namespace) -> None:
    from toolkit.data import read_frames
    from toolkit.descriptors import compute_descriptors, read_spec, summary

    spec = read_spec(args.spec)
    frames = read_frames(args.data)
    descriptors = compute_descriptors(frames, spec, source=args.data, progress=not args.quiet)
    print(summary(descriptors))
    if args.write_mliap:
        from toolkit.descriptors import write_mliap_descriptor

        write_mliap_descriptor(spec, args.write_mliap)
        print(f"wrote ML-IAP descriptor file {args.write_mliap}")


def _cmd_fit(args: argparse.Namespace) -> None:
    import json

    from toolkit.descriptors import read_spec
    from toolkit.fitting import fit_potential
    from toolkit.networks import Architecture
    from toolkit.training import TrainingSettings

    settings = TrainingSettings(max_iterations=args.max_iterations, patience=args.patience)
    potential, metrics = fit_potential(
        args.data, args.out, Architecture(tuple(args.hidden), args.activation), seed=args.seed,
        spec=read_spec(args.spec), split_seed=args.split_seed, settings=settings,
        progress=not args.quiet, wall=not args.no_wall)
    summary = {"total_r2": metrics["total"]["r2"],
               "total_rmse_per_atom_meV": 1e3 * metrics["total_per_atom_rmse"]}
    if "local" in metrics:
        summary.update(local_r2=metrics["local"]["r2"],
                       local_r2_aligned=metrics["local_aligned"]["r2"],
                       local_pearson=metrics["local"]["pearson"])
    print(f"wrote potential {potential.directory}")
    print("held-out test frames (PyTorch): " + json.dumps(
        {k: round(v, 4) for k, v in summary.items()}))


def _cmd_evaluate(args: argparse.Namespace) -> None:
    import json

    from toolkit.data import read_frames
    from toolkit.evaluation import evaluate_to_files
    from toolkit.lammps import world_comm
    from toolkit.potential import read_potential

    potential = read_potential(args.potential)
    frames = read_frames(args.data)
    if args.frames == "test":
        frames = [frames[i] for i in potential.test_split(args.data)]
    if args.replicate > 1:
        from toolkit.evaluation import replicate

        frames = [replicate(atoms, args.replicate) for atoms in frames]
    out = args.out or str(Path(args.potential) / "evaluation.json")
    metrics = evaluate_to_files(potential, frames, args.data, out, mode=args.mode,
                                progress=not args.quiet)
    if world_comm().Get_rank() == 0:
        short = {"total_r2": metrics["total"]["r2"]}
        if "local" in metrics:
            short.update(local_r2=metrics["local"]["r2"],
                         local_r2_aligned=metrics["local_aligned"]["r2"])
        print(f"wrote {out} and {Path(out).with_suffix('.atoms.csv')}: "
              + json.dumps({k: round(v, 4) for k, v in short.items()}))


def _cmd_md(args: argparse.Namespace) -> None:
    import json

    from toolkit.lammps import world_comm
    from toolkit.md import compare_with_reference, run_md

    result = run_md(args.potential, args.system, args.atoms, args.temperature, args.ensemble,
                    args.steps, args.seed, args.out, per_atom_energies=args.per_atom,
                    progress=not args.quiet, timestep=args.timestep / 1000.0,
                    melt_steps=args.melt_steps, equilibration_steps=args.equilibration_steps,
                    dump_every=args.dump_every)
    rank0 = world_comm().Get_rank() == 0
    summary = result.summary
    if rank0:
        short = {k: summary[k] for k in ("mean_pe_per_atom", "mean_temperature", "ns_per_day")
                 if k in summary}
        if "nve" in summary:
            short["drift_ev_per_atom_per_ns"] = summary["nve"]["drift_ev_per_atom_per_ns"]
        if "closest_pair_min" in summary:
            short["closest_pair_min_A"] = summary["closest_pair_min"]
        if "wall" in summary:
            short["wall_inside_fraction"] = summary["wall"]["fraction_of_frames_inside"]
        print(f"{result.status}: {summary['production_steps_done']} production steps in "
              f"{result.out_dir} (md.lmp, trajectory.dump, thermo.csv, summary.json): "
              + json.dumps({k: float(f"{v:.5g}") for k, v in short.items()}))
    if args.compare_reference and result.status == "completed":
        comparison = compare_with_reference(result, args.reference, progress=not args.quiet)
        if rank0:
            print(f"vs reference {args.reference}: integrated |g - g_ref| (A) "
                  + json.dumps({k: round(v, 4) for k, v in
                                comparison["rdf_integrated_abs_difference_A"].items()})
                  + f"; {result.out_dir / 'rdf.png'}, {result.out_dir / 'comparison.json'}")


def _cmd_sweep(args: argparse.Namespace) -> None:
    from toolkit.lammps import world_comm
    from toolkit.sweep import read_config, run_sweep

    config = read_config(args.config)
    results = run_sweep(config, args.out, progress=not args.quiet)
    if world_comm().Get_rank() == 0:
        print(f"wrote {results} ({len(config.cells())} cells x {len(config.seeds)} seeds)")


def _cmd_report(args: argparse.Namespace) -> None:
    from toolkit.plots import sweep_figures
    from toolkit.sweep import read_results

    rows = read_results(args.results)
    paths = sweep_figures(rows, args.out, local_metric=args.local_metric)
    transfer = Path(args.results)
    transfer = (transfer if transfer.is_dir() else transfer.parent) / "transfer.csv"
    if transfer.is_file():
        from toolkit.plots import transfer_figures

        paths += transfer_figures(read_results(transfer), args.out,
                                  local_metric=args.local_metric)
    print("wrote " + ", ".join(str(p) for p in paths if p.suffix == ".png"))


def _cmd_export(args: argparse.Namespace) -> None:
    from toolkit.sweep import export_member

    hidden = args.hidden
    if len(set(hidden)) != 1:
        raise ValueError("sweep cells have equal widths in every layer; repeat one --hidden")
    path = export_member(args.sweep, args.system, args.activation, len(hidden), hidden[0],
                         args.seed, args.out, wall=not args.no_wall)
    print(f"wrote potential {path}")


def _cmd_assemble(args: argparse.Namespace) -> None:
    from toolkit.transfer import assemble

    sources = {}
    for item in args.element:
        element, sep, path = item.partition("=")
        if not sep or not path:
            raise ValueError(f"--element {item!r}: write ELEMENT=POTENTIAL_DIR, e.g. Ar=pots/ar")
        sources[element] = path
    potential = assemble(sources, args.out, wall=not args.no_wall)
    print(f"wrote potential {potential.directory} ("
          + ", ".join(f"{e} from {p}" for e, p in sources.items()) + ")")


def _cmd_transfer(args: argparse.Namespace) -> None:
    from toolkit.lammps import world_comm
    from toolkit.sweep import SweepConfigError, read_config
    from toolkit.transfer import run_transfer

    if args.config:
        import json

        stored = json.loads((Path(args.results) / "config.json").read_text())
        if read_config(args.config).to_dict() != stored:
            raise SweepConfigError(f"{args.config} is not the config the sweep in "
                                   f"{args.results} ran with (see its config.json)")
    out = run_transfer(args.results, args.out, progress=not args.quiet)
    if world_comm().Get_rank() == 0:
        print(f"wrote {out}")


def _cmd_dft(args: argparse.Namespace) -> None:
    from toolkit.reference.dft import dft_command

    summary = dft_command(args.data, args.out, cutoff=args.cutoff, np_ranks=args.np,
                          omp_threads=args.omp_threads,
                          vdw=None if args.vdw == "none" else args.vdw,
                          vdw_cutoff=args.vdw_cutoff, keep_cubes=args.keep_cubes,
                          progress=not args.quiet)
    print(summary)


def _cmd_partition(args: argparse.Namespace) -> None:
    from toolkit.reference.local_energy import partition_command

    offsets = None
    if args.species_offset:
        offsets = {}
        for item in args.species_offset:
            element, sep, value = item.partition("=")
            if not sep:
                raise ValueError(f"--species-offset {item!r}: write ELEMENT=EV, e.g. Ar=0.1")
            offsets[element] = float(value)
    fit = partition_command(args.dft, args.out, system=args.system,
                            recompute_basins=args.recompute_basins, species_offsets=offsets)
    print(f"wrote {args.out}: E_total - E_es = {fit.slope:.4f} E_es + {fit.intercept:.4f} "
          f"eV/atom over {fit.n_frames} frames, RMSE {1e3 * fit.rmse:.3f} meV/atom, "
          f"R2 {fit.r2:.4f}")


def _liquid_arguments(p: argparse.ArgumentParser) -> None:
    """The liquid box shared by `generate` and `md`."""
    p.add_argument("--system", required=True,
                   help="Ar, Kr, ArKr (50/50) or atom counts such as Ar24Kr8")
    p.add_argument("--atoms", type=int, default=108, help="4 n^3 atoms (32, 108, 256, 500, ...)")
    p.add_argument("--temperature", type=float, default=120.0, help="K")
    p.add_argument("--seed", type=int, default=1, help="velocities, mixture species, frames")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aetk",
        description="Atomic-energy toolkit: reference data, SNAP descriptors, per-species "
        "networks trained on total energies, native LAMMPS mliap export and evaluation.",
    )
    parser.add_argument("--version", action="version", version=f"aetk {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("generate", help="classical reference MD frames (LAMMPS) as extxyz; "
                       "or frames relabelled by a teacher potential")
    _liquid_arguments(p)
    p.add_argument("--reference", default="lj",
                   help="lj, lj+atm, or teacher:POTENTIAL_DIR (per-atom energies of that "
                   "potential, on frames sampled with --other)")
    p.add_argument("--share", type=float, default=1.0,
                   help="teacher only: labels = share x teacher + (1 - share) x --other")
    p.add_argument("--other", default="lj+atm", choices=["lj", "lj+atm"],
                   help="teacher only: sampling and mixing reference")
    p.add_argument("--frames", type=int, default=100,
                   help="frames in all (shared out over the --kr-fraction compositions)")
    p.add_argument("--kr-fraction", type=float, nargs="+",
                   help="with --system ArKr: Kr mole fraction(s), e.g. 0 0.25 0.5 0.75 1; "
                   "one MD run per fraction (seeds --seed, --seed+1, ...), one file")
    p.add_argument("--every", type=int, default=100, help="MD steps (2 fs) between frames")
    p.add_argument("--cutoff-sigma", type=float, default=1.6,
                   help="reference pair cutoff in units of sigma_ij")
    p.add_argument("--out", required=True, help="output .extxyz")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_cmd_generate)

    p = sub.add_parser("ceiling", help="representability ceiling of a data set's local "
                       "energies: test R2 of direct linear, quadratic and network fits")
    p.add_argument("--data", required=True, help="frames with local_energy (.extxyz)")
    p.add_argument("--spec", help="descriptor spec TOML; default built in")
    p.add_argument("--model", action="append", choices=["linear", "quadratic", "network"],
                   help="repeat to choose; default all three")
    p.add_argument("--split-seed", type=int, default=0)
    p.add_argument("--out", help="JSON (default DATA.ceiling.json)")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_cmd_ceiling)

    p = sub.add_parser("descriptors", help="SNAP descriptors of frames via LAMMPS; summary")
    p.add_argument("--data", required=True)
    p.add_argument("--spec", help="descriptor spec TOML ([descriptor] table); default built in")
    p.add_argument("--write-mliap", help="also write the ML-IAP descriptor file here")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_cmd_descriptors)

    p = sub.add_parser("fit", help="train per-species networks on total energies; export a "
                       "LAMMPS mliap potential directory")
    p.add_argument("--data", required=True, help="training frames (.extxyz)")
    p.add_argument("--hidden", type=int, action="append", default=None,
                   help="hidden layer width; repeat for depth (default: one layer of 16)")
    p.add_argument("--activation", default="tanh",
                   help="linear, tanh, sigmoid or relu (what LAMMPS mliap nn evaluates)")
    p.add_argument("--seed", type=int, default=0, help="initialisation seed")
    p.add_argument("--split-seed", type=int, default=0,
                   help="seed of the 70/10/20 train/validation/test split by frame")
    p.add_argument("--spec", help="descriptor spec TOML; default built in")
    p.add_argument("--max-iterations", type=int, default=1000)
    p.add_argument("--patience", type=int, default=50)
    p.add_argument("--out", required=True, help="potential directory to write")
    p.add_argument("--no-wall", action="store_true", help=WALL_HELP)
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_cmd_fit)

    p = sub.add_parser("evaluate", help="per-atom and total energies through LAMMPS "
                       "(works under mpirun); metrics JSON + per-atom CSV")
    p.add_argument("--potential", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--frames", choices=["all", "test"], default="all",
                   help="'test': only the potential's held-out test frames of its own data")
    p.add_argument("--mode", choices=["frames", "domain"], default="frames",
                   help="under mpirun: share frames over ranks, or decompose each frame")
    p.add_argument("--replicate", type=int, default=1,
                   help="evaluate each frame repeated N x N x N (large-box path)")
    p.add_argument("--out", help="metrics JSON (default POTENTIAL/evaluation.json)")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_cmd_evaluate)
    p = sub.add_parser("md", help="MD of the liquid with a potential in LAMMPS (works under "
                       "mpirun); thermo, trajectory, summary; optional reference comparison")
    p.add_argument("--potential", required=True,
                   help="potential directory, or reference:lj / reference:lj+atm")
    _liquid_arguments(p)
    p.add_argument("--ensemble", choices=["nvt", "nve"], default="nvt")
    p.add_argument("--steps", type=int, required=True, help="production steps")
    p.add_argument("--timestep", type=float, default=2.0, help="fs")
    p.add_argument("--melt-steps", type=int, default=2500,
                   help="steps of LJ melt from the fcc start (2.5 T -> T)")
    p.add_argument("--equilibration-steps", type=int, default=2500,
                   help="NVT steps with the potential before production")
    p.add_argument("--dump-every", type=int, default=100, help="steps between frames")
    p.add_argument("--per-atom", action="store_true",
                   help="per-atom energies (compute pe/atom) in the trajectory")
    p.add_argument("--compare-reference", action="store_true",
                   help="repeat the run with the classical reference; g(r) plot and numbers")
    p.add_argument("--reference", choices=["lj", "lj+atm"], default="lj",
                   help="reference for --compare-reference")
    p.add_argument("--out", required=True, help="output folder, e.g. runs/NAME")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_cmd_md)
    p = sub.add_parser("sweep", help="train an architecture x seed grid on totals; one "
                       "results table (resumable; cells shared out under mpirun)")
    p.add_argument("--config", required=True, help="sweep TOML, e.g. sweeps/quick.toml")
    p.add_argument("--out", required=True, help="sweep directory (results.csv, cells/, data/)")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_cmd_sweep)

    p = sub.add_parser("report", help="the paper's figures from a sweep's results (PNG, PDF)")
    p.add_argument("--results", required=True, help="sweep directory or results.csv")
    p.add_argument("--out", required=True, help="figure directory")
    p.add_argument("--local-metric", default="local_r2_aligned",
                   choices=["local_r2_aligned", "local_r2", "local_pearson"])
    p.set_defaults(func=_cmd_report)

    p = sub.add_parser("export", help="write one sweep member as a potential directory")
    p.add_argument("--sweep", required=True)
    p.add_argument("--system", required=True,
                   help="Ar, Kr, ArKr (50/50) or atom counts such as Ar24Kr8")
    p.add_argument("--activation", required=True)
    p.add_argument("--hidden", type=int, action="append", required=True)
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--no-wall", action="store_true", help=WALL_HELP)
    p.set_defaults(func=_cmd_export)
    p = sub.add_parser("assemble", help="one LAMMPS potential from per-element networks of "
                       "different potentials (e.g. pure Ar + pure Kr for the mixture)")
    p.add_argument("--element", action="append", required=True,
                   help="ELEMENT=POTENTIAL_DIR; repeat per element")
    p.add_argument("--out", required=True)
    p.add_argument("--no-wall", action="store_true",
                   help="drop the sources' repulsive walls (default: merge them)")
    p.set_defaults(func=_cmd_assemble)

    p = sub.add_parser("transfer", help="pure->mixture and mixture->pure evaluations of every "
                       "sweep member through LAMMPS (works under mpirun)")
    p.add_argument("--results", required=True, help="sweep directory")
    p.add_argument("--config", help="the sweep TOML (checked against the sweep's config)")
    p.add_argument("--out", help="table (default SWEEP/transfer.csv)")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_cmd_transfer)
    p = sub.add_parser("dft", help="CP2K single points of frames (resumable frame by frame): "
                       "energies, forces, density and Hartree cubes, Bader basins")
    p.add_argument("--data", required=True, help="frames (.extxyz), e.g. from aetk generate")
    p.add_argument("--out", required=True, help="DFT work directory, e.g. dft/NAME")
    p.add_argument("--cutoff", type=float, default=600.0, help="plane-wave cutoff, Ry")
    p.add_argument("--np", type=int, default=1, help="MPI ranks of cp2k.psmp (Open MPI)")
    p.add_argument("--omp-threads", type=int, default=1)
    p.add_argument("--vdw", default="rVV10", choices=["rVV10", "none"])
    p.add_argument("--vdw-cutoff", type=float, help="rVV10 grid cutoff, Ry (default: full)")
    p.add_argument("--keep-cubes", action="store_true", help="keep the cube files")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_cmd_dft)

    p = sub.add_parser("partition", help="Bader electrostatic partition + linear fit -> "
                       "local DFT energies as extxyz (and the paper's Fig. 1/5/6)")
    p.add_argument("--dft", required=True, help="directory made by aetk dft")
    p.add_argument("--out", required=True, help="frames with local_energy (.extxyz)")
    p.add_argument("--system", help="label written into the frames (default: composition)")
    p.add_argument("--recompute-basins", action="store_true")
    p.add_argument("--species-offset", action="append",
                   help="ELEMENT=EV: move local energy between species of a mixture "
                   "(frame sums unchanged); repeat per element")
    p.set_defaults(func=_cmd_partition)
    return parser


def main(argv: list[str] | None = None) -> int:
    from toolkit.errors import user_errors

    args = build_parser().parse_args(argv)
    if getattr(args, "hidden", "unset") is None:
        args.hidden = [16]
    try:
        args.func(args)
    except KeyboardInterrupt:
        print("aetk: interrupted", file=sys.stderr)
        return 130
    except user_errors() as exc:
        print(f"aetk {args.command}: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
