"""FitSNAP input files in and out: ``[BISPECTRUM]`` as a toolkit :class:`DescriptorSpec`,
``[PYTORCH]`` layer sizes as hidden widths, and an input file from any spec.

The rest of the FitSNAP interoperability: fitsnap_network.py (its PyTorch networks as
native LAMMPS ``mliap model nn`` potentials), fitsnap_descriptors.py (its own descriptor
code as a cross-check), fitsnap_compat.py (the only place that imports and shims fitsnap3).
Everything was read off the fitsnap3 3.1.0.4 source (paths relative to ``fitsnap3lib/``);
docs/fitsnap.md has the user-facing mapping table.

``[BISPECTRUM]`` (io/sections/calculator_sections/bispectrum.py) goes to LAMMPS ``compute
snap`` (calculators/lammps_snap.py, ``_set_computes``), the same computation as the
toolkit's ``compute sna/atom``:

- ``twojmax``: one value per type (FitSNAP indexes it by type); the toolkit needs them equal.
- ``rcutfac``, ``rfac0``, ``radelem``, ``wj`` travel through LAMMPS equal-style variables,
  which keep 15 significant digits; the writer refuses values that would not survive that.
- ``bzeroflag``: FitSNAP's default is 0, LAMMPS's is 1; the writer always writes it.
- ``wselfallflag``: only acts with ``chemflag`` (LAMMPS gives bitwise the same descriptors
  either way, tested), so both values map to the same spec.
- ``bikflag`` and ``dgradflag`` choose FitSNAP's row layout (per-atom rows instead of sums
  divided by the atom count; per-neighbour gradients for force fits), not the values.
- ``chemflag``, ``bnormflag``, ``quadraticflag``, ``switchinnerflag`` change the
  descriptors themselves into something the toolkit does not compute: refused.
"""

from __future__ import annotations

import configparser
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from toolkit import __version__
from toolkit.data import atomic_write_text
from toolkit.descriptor_spec import DescriptorSpec
from toolkit.errors import AetkError
from toolkit.models.networks import Architecture


class FitsnapError(AetkError, ValueError):
    """A FitSNAP file or network the toolkit cannot use; the message says why and what to do."""


# -- [BISPECTRUM]: what FitSNAP accepts, its defaults, and what the toolkit does with it ----
BISPECTRUM_KEYS = ("numTypes", "twojmax", "rcutfac", "rfac0", "rmin0", "wj", "radelem", "type",
                   "wselfallflag", "chemflag", "bzeroflag", "quadraticflag", "bnormflag",
                   "bikflag", "switchinnerflag", "switchflag", "sinner", "dinner", "dgradflag")
FITSNAP_DEFAULTS = {"numTypes": "1", "twojmax": "6", "rcutfac": "4.67637", "rfac0": "0.99363",
                    "rmin0": "0.0", "wj": "1.0", "radelem": "0.5", "type": "H",
                    "bzeroflag": "0", "switchflag": "1"}
# settings that change the descriptor values into something compute sna/atom with the
# toolkit's spec does not produce
REFUSED_FLAGS = {
    "chemflag": "explicit multi-element bispectrum (K^3 blocks per component)",
    "bnormflag": "bispectrum normalised by 2j+1",
    "quadraticflag": "quadratic products of components appended",
    "switchinnerflag": "inner switching function (sinner, dinner)",
}
LAYOUT_FLAGS = ("bikflag", "dgradflag", "wselfallflag")
PYTORCH_KEYS = ("layer_sizes", "learning_rate", "num_epochs", "batch_size", "save_state_output",
                "save_freq", "save_state_input", "output_file", "energy_weight", "force_weight",
                "training_fraction", "multi_element_option", "num_elements",
                "manual_seed_flag", "shuffle_flag")
LAMMPS_VARIABLE_DIGITS = 15  # equal-style variables are substituted with %.15g


@dataclass(frozen=True)
class FitsnapInput:
    """What a FitSNAP input file says that the toolkit can use.

    ``hidden``: hidden widths from ``[PYTORCH] layer_sizes`` (None without that section);
    ``eshift``: eV per atom of each element added to reference energies (None without
    ``[ESHIFT]``); ``ignored``: "SECTION key" settings with no meaning for the toolkit.
    """

    path: str
    spec: DescriptorSpec
    hidden: tuple[int, ...] | None = None
    multi_element_option: int = 1
    eshift: dict[str, float] | None = None
    scraper: str | None = None
    units: str = "metal"
    reference_pair_style: str = "zero 10.0"
    per_atom_scalar: bool = False
    scraper_units: bool = False
    ignored: tuple[str, ...] = field(default=())

    def architecture(self, activation: str) -> Architecture:
        """The ``[PYTORCH]`` layer sizes with an activation LAMMPS ``nn`` evaluates."""
        if self.hidden is None:
            raise FitsnapError(f"{self.path}: no [PYTORCH] section, so no layer sizes")
        return Architecture(self.hidden, activation)


def _parser(path: Path) -> configparser.ConfigParser:
    # exactly how FitSNAP reads its input (io/input.py): '#' comments, case-sensitive keys
    parser = configparser.ConfigParser(inline_comment_prefixes="#")
    parser.optionxform = str
    try:
        with open(path) as handle:
            parser.read_file(handle)
    except (OSError, configparser.Error) as exc:
        raise FitsnapError(f"{path}: unreadable FitSNAP input ({exc})") from None
    return parser


def _flag(where: str, key: str, text: str) -> int:
    from toolkit.interop.fitsnap_compat import strtobool_01

    try:
        return strtobool_01(text)
    except ValueError:
        raise FitsnapError(f"{where}: {key} = {text!r} is not a flag (0/1)") from None


def _number(where: str, key: str, text: str, kind=float):
    try:
        return kind(text)
    except ValueError:
        raise FitsnapError(f"{where}: {key} = {text!r} is not a {kind.__name__}") from None


def read_fitsnap_input(path: str | Path) -> FitsnapInput:
    """Read a FitSNAP input file into a toolkit spec (+ layer sizes, energy shifts).

    Missing keys take FitSNAP's defaults. Refuses keys FitSNAP itself would refuse and
    settings whose descriptors the toolkit does not compute, naming them.
    """
    path = Path(path)
    parser = _parser(path)
    if not parser.has_section("BISPECTRUM"):
        raise FitsnapError(f"{path}: no [BISPECTRUM] section; aetk reads SNAP inputs only")
    where = f"{path} [BISPECTRUM]"
    raw = dict(parser.items("BISPECTRUM"))
    unknown = sorted(set(raw) - set(BISPECTRUM_KEYS))
    if unknown:
        raise FitsnapError(f"{where}: unknown keys {unknown} (FitSNAP refuses them too)")
    refused = [k for k in REFUSED_FLAGS if _flag(where, k, raw.get(k, "0"))]
    if refused:
        raise FitsnapError(
            f"{where}: " + "; ".join(f"{k} = 1 ({REFUSED_FLAGS[k]})" for k in refused)
            + ": aetk computes plain SNAP (compute sna/atom) descriptors only; set "
            + ", ".join(f"{k} = 0" for k in refused))
    for key in LAYOUT_FLAGS:
        _flag(where, key, raw.get(key, "0"))
    value = {k: raw.get(k, FITSNAP_DEFAULTS.get(k)) for k in FITSNAP_DEFAULTS}
    n_types = _number(where, "numTypes", value["numTypes"], int)
    types = value["type"].split()
    radii = [_number(where, "radelem", v) for v in value["radelem"].split()]
    weights = [_number(where, "wj", v) for v in value["wj"].split()]
    twojmax = [_number(where, "twojmax", v, int) for v in value["twojmax"].split()]
    for key, items in (("type", types), ("radelem", radii), ("wj", weights)):
        if len(items) != n_types:
            raise FitsnapError(f"{where}: numTypes = {n_types} but {key} has {len(items)} "
                               "entries; give one per type")
    if len(set(types)) != len(types):
        raise FitsnapError(f"{where}: type lists an element twice: {types}")
    if len(twojmax) not in (1, n_types) or len(set(twojmax)) != 1:
        raise FitsnapError(f"{where}: twojmax = {value['twojmax']!r}: aetk needs one twojmax "
                           "for all types (FitSNAP also takes one per type, all equal)")
    try:
        spec = DescriptorSpec(
            twojmax=twojmax[0],
            rcutfac=_number(where, "rcutfac", value["rcutfac"]),
            rfac0=_number(where, "rfac0", value["rfac0"]),
            rmin0=_number(where, "rmin0", value["rmin0"]),
            elements=tuple(types), radii=tuple(radii), weights=tuple(weights),
            switchflag=_flag(where, "switchflag", value["switchflag"]),
            bzeroflag=_flag(where, "bzeroflag", value["bzeroflag"]),
        )
    except AetkError as exc:
        raise FitsnapError(f"{where}: {exc}") from None
    ignored = [f"BISPECTRUM {k}" for k in ("sinner", "dinner") if k in raw]
    fields: dict = {"path": str(path), "spec": spec}
    if parser.has_section("PYTORCH"):
        fields.update(_read_pytorch(path, dict(parser.items("PYTORCH")), spec, ignored))
    if parser.has_section("ESHIFT"):
        eshift = dict(parser.items("ESHIFT"))
        fields["eshift"] = {e: _number(f"{path} [ESHIFT]", e, eshift.get(e, "0.0"))
                            for e in types}
    if parser.has_section("SCRAPER"):
        fields["scraper"] = parser.get("SCRAPER", "scraper", fallback="JSON").upper()
        fields["scraper_units"] = parser.has_option("SCRAPER", "property_array")
    if parser.has_section("CALCULATOR"):
        calculator = parser.get("CALCULATOR", "calculator", fallback="LAMMPSSNAP")
        if calculator.upper() != "LAMMPSSNAP":
            raise FitsnapError(f"{path} [CALCULATOR]: calculator = {calculator}; aetk uses "
                               "SNAP descriptors (LAMMPSSNAP) only")
        fields["per_atom_scalar"] = bool(_flag(f"{path} [CALCULATOR]", "per_atom_scalar",
                                               parser.get("CALCULATOR", "per_atom_scalar",
                                                          fallback="0")))
    if parser.has_section("REFERENCE"):
        fields["units"] = parser.get("REFERENCE", "units", fallback="metal").lower()
        fields["reference_pair_style"] = parser.get("REFERENCE", "pair_style",
                                                    fallback="zero 10.0").strip()
    ignored += [f"[{s}]" for s in parser.sections()
                if s not in ("BISPECTRUM", "PYTORCH", "ESHIFT", "SCRAPER", "CALCULATOR",
                             "REFERENCE")]
    return FitsnapInput(**fields, ignored=tuple(ignored))


def fit_setup_from_fitsnap(path: str | Path, spec_path: str | None = None,
                           hidden: Sequence[int] | None = None,
                           report=print) -> tuple[DescriptorSpec, tuple[int, ...]]:
    """Spec and hidden widths for `aetk fit --fitsnap-input`; ``report`` gets one line
    naming the FitSNAP settings aetk does not use (it trains with L-BFGS on totals)."""
    if spec_path:
        raise FitsnapError("give the descriptor spec once: --spec or --fitsnap-input")
    config = read_fitsnap_input(path)
    if config.hidden is not None and hidden:
        raise FitsnapError(f"{path} sets [PYTORCH] layer_sizes; drop --hidden or the section")
    widths = tuple(hidden or ()) or config.hidden or (16,)
    notes = list(config.ignored)
    if config.multi_element_option == 1 and len(config.spec.elements) > 1:
        notes.append("PYTORCH multi_element_option = 1 (aetk trains one network per element)")
    if config.reference_pair_style.split()[:1] != ["zero"]:
        notes.append(f"REFERENCE pair_style {config.reference_pair_style} (aetk fits total "
                     "energies, FitSNAP would fit E - E_reference)")
    if notes:
        report(f"{path}: not used by aetk fit: " + "; ".join(notes))
    return config.spec, widths


def _read_pytorch(path: Path, raw: dict, spec: DescriptorSpec, ignored: list) -> dict:
    where = f"{path} [PYTORCH]"
    unknown = sorted(set(raw) - set(PYTORCH_KEYS))
    if unknown:
        raise FitsnapError(f"{where}: unknown keys {unknown} (FitSNAP refuses them too)")
    sizes = raw.get("layer_sizes", "num_desc 512 512 1").split()  # FitSNAP's default
    if len(sizes) < 2:
        raise FitsnapError(f"{where}: layer_sizes needs an input and an output size")
    first = spec.n_descriptors if sizes[0] == "num_desc" else _number(where, "layer_sizes",
                                                                      sizes[0], int)
    if first != spec.n_descriptors:
        raise FitsnapError(f"{where}: layer_sizes starts with {first}, but twojmax "
                           f"{spec.twojmax} gives {spec.n_descriptors} descriptors per atom")
    widths = [_number(where, "layer_sizes", s, int) for s in sizes[1:]]
    if widths[-1] != 1 or any(w < 1 for w in widths):
        raise FitsnapError(f"{where}: layer_sizes must end with 1 (a per-atom energy) and "
                           f"have positive widths, got {' '.join(sizes)}")
    option = _number(where, "multi_element_option", raw.get("multi_element_option", "1"), int)
    if option not in (1, 2):
        raise FitsnapError(f"{where}: multi_element_option = {option}; FitSNAP knows 1 "
                           "(one network for all types) and 2 (one per type)")
    ignored += [f"PYTORCH {k}" for k in raw if k not in ("layer_sizes", "multi_element_option")]
    return {"hidden": tuple(widths[:-1]), "multi_element_option": option}


# -- writing ------------------------------------------------------------------------------------
def _lammps_variable_value(name: str, value: float) -> str:
    """``value`` as FitSNAP should write it, refused if LAMMPS would round it."""
    text = repr(float(value))
    if float(f"{value:.{LAMMPS_VARIABLE_DIGITS}g}") != value:
        raise FitsnapError(
            f"{name} = {text}: FitSNAP passes it through a LAMMPS equal-style variable, which "
            f"keeps {LAMMPS_VARIABLE_DIGITS} significant digits ({value:.15g}), so FitSNAP "
            "would compute other descriptors; round it in the spec")
    return text


def fitsnap_input_text(spec: DescriptorSpec, architecture: Architecture | None = None) -> str:
    """A FitSNAP input file with which FitSNAP computes the descriptors of ``spec``.

    With ``architecture``: the ``[PYTORCH]``/``[SOLVER]`` sections FitSNAP's PyTorch solver
    needs for per-element networks of those widths (its activation stays Softplus, which
    FitSNAP 3.1.0.4 cannot change). Data sections ([SCRAPER], [PATH], [GROUPS]) are the
    user's to add.
    """
    n = len(spec.elements)
    values = {
        "rcutfac": _lammps_variable_value("rcutfac", spec.rcutfac),
        "rfac0": _lammps_variable_value("rfac0", spec.rfac0),
        "radelem": " ".join(_lammps_variable_value(f"radius of {e}", r)
                            for e, r in zip(spec.elements, spec.radii, strict=True)),
        "wj": " ".join(_lammps_variable_value(f"weight of {e}", w)
                       for e, w in zip(spec.elements, spec.weights, strict=True)),
    }
    nonlinear = architecture is not None
    lines = [
        f"# FitSNAP input written by aetk {__version__} from descriptor spec "
        f"{spec.key[:16]}.",
        "# FitSNAP (LAMMPS compute snap) computes the same per-atom SNAP descriptors from it",
        "# as aetk (compute sna/atom); docs/fitsnap.md says how this is checked.",
        "",
        "[BISPECTRUM]",
        f"numTypes = {n}",
        "twojmax = " + " ".join([str(spec.twojmax)] * n),
        f"rcutfac = {values['rcutfac']}",
        f"rfac0 = {values['rfac0']}",
        f"rmin0 = {float(spec.rmin0)!r}",
        f"wj = {values['wj']}",
        f"radelem = {values['radelem']}",
        "type = " + " ".join(spec.elements),
        f"bzeroflag = {spec.bzeroflag}",
        f"switchflag = {spec.switchflag}",
        "wselfallflag = 0",
        "chemflag = 0",
        "bnormflag = 0",
        "quadraticflag = 0",
        "switchinnerflag = 0",
        # per-atom rows with neighbour gradients: the layout FitSNAP's PyTorch solver reads
        f"bikflag = {int(nonlinear)}",
        f"dgradflag = {int(nonlinear)}",
        "",
        "[CALCULATOR]",
        "calculator = LAMMPSSNAP",
        "energy = 1",
        f"per_atom_energy = {int(nonlinear)}",
        "force = 0",
        "stress = 0",
        f"nonlinear = {int(nonlinear)}",
        "",
        "[REFERENCE]",
        "units = metal",
        "atom_style = atomic",
        f"pair_style = zero {max(10.0, math.ceil(spec.cutoff) + 1.0)!r}",
        "pair_coeff = * *",
    ]
    if architecture is not None:
        sizes = " ".join(str(h) for h in architecture.hidden)
        lines += [
            "",
            "[PYTORCH]",
            f"# aetk's networks use {architecture.activation}; FitSNAP 3.1.0.4 always puts "
            "Softplus between these layers",
            f"layer_sizes = num_desc {sizes} 1".replace("  ", " "),
            "multi_element_option = 2",
            "",
            "[SOLVER]",
            "solver = PYTORCH",
        ]
    return "\n".join(lines) + "\n"


def write_fitsnap_input(path: str | Path, spec: DescriptorSpec,
                        architecture: Architecture | None = None) -> Path:
    """Write :func:`fitsnap_input_text` atomically; returns the path."""
    atomic_write_text(path, fitsnap_input_text(spec, architecture))
    return Path(path)
