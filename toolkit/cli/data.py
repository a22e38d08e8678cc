"""Reference data and descriptors: `aetk generate`, `aetk descriptors`."""

from __future__ import annotations

import argparse
from pathlib import Path

from toolkit.cli.common import liquid_arguments
from toolkit.errors import AetkError


def _generate_lammps(args: argparse.Namespace) -> None:
    """`aetk generate --reference lammps:FILE`: any LAMMPS potential as the reference."""
    from toolkit.data import write_frames
    from toolkit.reference.lammps_reference import (
        LammpsRun,
        generate_frames,
        parse_reference,
        write_input,
    )

    if args.kr_fraction:
        raise AetkError("--kr-fraction goes with the classical references; name the system by "
                        "counts instead (e.g. --system Ar54Kr54)")
    preset = parse_reference(args.reference).preset
    lattice = args.lattice or (preset.lattice if preset else "fcc")
    atoms = args.atoms or {"diamond": 64, "fcc": 108, "hcp": 108, "bcc": 128, "sc": 125}[lattice]
    run = LammpsRun(
        reference=args.reference, system=args.system, phase=args.phase or "liquid",
        n_frames=args.frames,
        seed=args.seed, natoms=atoms, temperature=args.temperature, lattice=lattice,
        lattice_constant=args.lattice_constant, density=args.density,
        melt_temperature=args.melt_temperature,
        timestep=args.timestep / 1000.0 if args.timestep else None, every=args.every)
    frames = generate_frames(run, progress=not args.quiet)
    out = Path(args.out)
    write_frames(out, frames)
    lmp = out.with_suffix(".lmp")
    write_input(run, lmp, dump_file=lmp.with_suffix(".dump").name)
    print(f"wrote {len(frames)} {run.phase} frames of {run.system} ({run.reference}, "
          f"{run.temperature:g} K, {run.resolved_density:.4g} g/cm^3) to {out}; LAMMPS input "
          f"of the sampling run: {lmp}")


def _cmd_generate(args: argparse.Namespace) -> None:
    from toolkit.data import write_frames
    from toolkit.reference.classical import (
        ClassicalRun,
        generate_frames,
        parse_teacher_reference,
        write_input,
    )
    from toolkit.species import mixture_name

    if args.reference.startswith("lammps:"):
        _generate_lammps(args)
        return
    for option in ("phase", "lattice", "lattice_constant", "density", "melt_temperature",
                   "timestep"):
        if getattr(args, option) not in (None, "liquid"):  # the liquid is what lj samples
            raise AetkError(f"--{option.replace('_', '-')} goes with --reference lammps:...; "
                            "the classical liquids start from fcc at their 120 K density")
    args.atoms = args.atoms or 108
    teacher = parse_teacher_reference(args.reference)
    systems = [args.system]
    if args.kr_fraction:
        if args.system != "ArKr":
            raise AetkError("--kr-fraction goes with --system ArKr")
        systems = [mixture_name({"Ar": 1.0 - x, "Kr": x}, args.atoms) for x in args.kr_fraction]
    if args.frames < len(systems):
        raise AetkError(f"--frames {args.frames}: at least one frame per composition")
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
            from toolkit.studies.teacher import generate_teacher_frames  # PyTorch

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


def _cmd_bundle(args: argparse.Namespace) -> None:
    from toolkit.bundle import bundle_bytes, bundle_meta, describe
    from toolkit.studies.sweep import read_config, write_sweep_bundles

    config = read_config(args.config)
    work = args.work or str(Path("runs") / config.name)
    paths = write_sweep_bundles(config, args.out, work, args.precision,
                                progress=not args.quiet)
    total = 0
    for path in paths:
        size = bundle_bytes(path)["file"]
        total += size
        print(f"wrote {path} ({size / 2**20:.1f} MiB): {describe(bundle_meta(path))}")
    print(f"{len(paths)} bundles, {total / 2**20:.1f} MiB in all; train from them with "
          f"`aetk sweep --config {args.config} --bundle {args.out}`")


def add_parsers(sub) -> None:
    p = sub.add_parser("generate", help="classical reference MD frames (LAMMPS) as extxyz; "
                       "or frames relabelled by a teacher potential")
    liquid_arguments(p)
    p.add_argument("--reference", default="lj",
                   help="lj, lj+atm, teacher:POTENTIAL_DIR (per-atom energies of that "
                   "potential, on frames sampled with --other), or lammps:FILE (any LAMMPS "
                   "potential: a file with its pair_style/pair_coeff lines and a '# elements:' "
                   "line) or a preset, lammps:si-sw / lammps:si-tersoff")
    p.add_argument("--phase", choices=["crystal", "liquid", "amorphous"], default=None,
                   help="lammps: references: thermal crystal, liquid (melted), or amorphous "
                   "(melted and quenched to --temperature); default liquid")
    p.add_argument("--lattice", choices=["sc", "bcc", "fcc", "hcp", "diamond"],
                   help="lammps: references: start lattice (default: the preset's, else fcc)")
    p.add_argument("--lattice-constant", type=float,
                   help="lammps: references: A; sets the (fixed) volume")
    p.add_argument("--density", type=float,
                   help="lammps: references: g/cm^3, instead of --lattice-constant")
    p.add_argument("--melt-temperature", type=float,
                   help="lammps: references, liquid/amorphous: K (default: preset's, else 2.5 T)")
    p.add_argument("--timestep", type=float,
                   help="lammps: references: fs (default: the preset's, else 1 fs)")
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

    p = sub.add_parser("descriptors", help="SNAP descriptors of frames via LAMMPS; summary")
    p.add_argument("--data", required=True)
    p.add_argument("--spec", help="descriptor spec TOML ([descriptor] table); default built in")
    p.add_argument("--write-mliap", help="also write the ML-IAP descriptor file here")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_cmd_descriptors)

    p = sub.add_parser("bundle", help="descriptor bundles of a sweep's systems: everything "
                       "training needs in one file per system, readable without LAMMPS/ASE")
    p.add_argument("--config", required=True, help="sweep TOML whose systems and data to bundle")
    p.add_argument("--out", required=True, help="folder for <system>.npz")
    p.add_argument("--precision", default="float32", choices=["float64", "float32", "fixed16"],
                   help="descriptor storage (training is float64 either way): float32 ~22 MiB "
                   "per 2,000 frames x 108 atoms; fixed16 ~14.4 MiB (error ~1e-4 of a "
                   "component's spread); see docs/paper_regime.md")
    p.add_argument("--work", help="where generated frames are kept (default runs/NAME, as "
                   "`aetk sweep --out runs/NAME` would)")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_cmd_bundle)
