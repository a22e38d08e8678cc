"""FitSNAP interoperability: `aetk fitsnap spec|input|convert|check`."""

from __future__ import annotations

import argparse
import json

from toolkit.errors import AetkError


def _cmd_spec(args: argparse.Namespace) -> None:
    from toolkit.data import atomic_write_text
    from toolkit.interop.fitsnap import read_fitsnap_input

    config = read_fitsnap_input(args.input)
    atomic_write_text(args.out, config.spec.to_toml())
    sizes = "" if config.hidden is None else (
        f"; [PYTORCH] hidden widths {list(config.hidden)} (use: aetk fit --fitsnap-input "
        f"{args.input})")
    print(f"wrote descriptor spec {args.out} ({', '.join(config.spec.elements)}, twojmax "
          f"{config.spec.twojmax}, {config.spec.n_descriptors} components){sizes}")
    if config.ignored:
        print("not used by aetk: " + ", ".join(config.ignored))


def _cmd_input(args: argparse.Namespace) -> None:
    from toolkit.descriptors import read_spec
    from toolkit.interop.fitsnap import write_fitsnap_input
    from toolkit.models.networks import Architecture

    if args.potential:
        if args.spec or args.hidden:
            raise AetkError("--potential gives spec and layer sizes; drop --spec/--hidden")
        from toolkit.models.potential import read_potential

        potential = read_potential(args.potential)
        spec, architecture = potential.spec, potential.architecture
    else:
        spec = read_spec(args.spec)
        architecture = Architecture(tuple(args.hidden), args.activation) if args.hidden \
            else None
    path = write_fitsnap_input(args.out, spec, architecture)
    extra = f" and [PYTORCH] layer sizes {list(architecture.hidden)}" if architecture else ""
    print(f"wrote FitSNAP input {path} ([BISPECTRUM] of {', '.join(spec.elements)}{extra})")


def _cmd_convert(args: argparse.Namespace) -> None:
    from toolkit.interop.fitsnap_network import convert_fitsnap_network

    path = convert_fitsnap_network(args.model, args.input, args.out,
                                   activation=args.activation, eshift=args.eshift)
    print(f"wrote potential {path} (native LAMMPS mliap model nn; include {path}/pair.lmp)")


def _cmd_check(args: argparse.Namespace) -> None:
    from toolkit.data import atomic_write_text, file_hash, read_frames
    from toolkit.descriptors import read_spec
    from toolkit.interop.fitsnap import read_fitsnap_input
    from toolkit.interop.fitsnap_descriptors import descriptor_crosscheck

    if args.input and args.spec:
        raise AetkError("give the descriptor spec once: --spec or --input")
    spec = read_fitsnap_input(args.input).spec if args.input else read_spec(args.spec)
    frames = read_frames(args.data)[: args.frames]
    result = {"data": str(args.data), "data_sha256": file_hash(args.data),
              **descriptor_crosscheck(frames, spec).to_dict(), "spec": spec.to_dict()}
    text = json.dumps(result, indent=1)
    if args.out:
        atomic_write_text(args.out, text + "\n")
    print(text)


def add_parsers(sub) -> None:
    p = sub.add_parser("fitsnap", help="FitSNAP interoperability: its input files, its "
                       "PyTorch networks, its descriptors as a cross-check")
    fsub = p.add_subparsers(dest="fitsnap_command", required=True)

    q = fsub.add_parser("spec", help="descriptor spec TOML from a FitSNAP input's [BISPECTRUM]")
    q.add_argument("--input", required=True, help="FitSNAP input file (.in)")
    q.add_argument("--out", required=True, help="spec TOML to write ([descriptor] table)")
    q.set_defaults(func=_cmd_spec)

    q = fsub.add_parser("input", help="FitSNAP input file computing the descriptors of a spec "
                        "(and, with --hidden or --potential, [PYTORCH] layer sizes)")
    q.add_argument("--spec", help="descriptor spec TOML; default built in")
    q.add_argument("--potential", help="take spec and layer sizes from a potential directory")
    q.add_argument("--hidden", type=int, action="append", default=None,
                   help="hidden layer width; repeat for depth")
    q.add_argument("--activation", default="tanh",
                   help="aetk's activation, noted in the file (FitSNAP uses Softplus)")
    q.add_argument("--out", required=True, help="FitSNAP input file to write")
    q.set_defaults(func=_cmd_input)

    q = fsub.add_parser("convert", help="a FitSNAP-trained PyTorch network as a potential "
                        "directory with a native LAMMPS mliap model nn file")
    q.add_argument("--input", required=True, help="the FitSNAP input file it was trained with")
    q.add_argument("--model", required=True,
                   help="FitSNAP's checkpoint ([PYTORCH] save_state_output, default "
                   "FitTorchModel) or a state dict file")
    q.add_argument("--out", required=True, help="potential directory to write")
    q.add_argument("--activation", default="softplus",
                   help="activation FitSNAP used between layers (3.1.0.4: always softplus, "
                   "which LAMMPS nn cannot evaluate and is refused); linear, tanh, sigmoid or "
                   "relu only if your FitSNAP was changed to use it")
    q.add_argument("--eshift", choices=["auto", "subtract", "ignore"], default="auto",
                   help="[ESHIFT] per-atom shifts: subtract them from the network outputs "
                   "(auto: when a JSON/XYZ/VASP scraper added them to the energies)")
    q.set_defaults(func=_cmd_convert)

    q = fsub.add_parser("check", help="descriptors of frames from FitSNAP's own LAMMPS "
                        "calculator against aetk's; prints the largest deviations")
    q.add_argument("--data", required=True, help="frames (.extxyz)")
    q.add_argument("--spec", help="descriptor spec TOML; default built in")
    q.add_argument("--input", help="or take the spec from a FitSNAP input file")
    q.add_argument("--frames", type=int, default=5, help="first N frames (default 5)")
    q.add_argument("--out", help="also write the result as JSON")
    q.set_defaults(func=_cmd_check)
