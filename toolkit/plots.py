"""The paper's figures, drawn from this toolkit's own results tables (PNG and PDF).

Each curve is the mean over seeds with a band of one standard deviation. Widths span
orders of magnitude, so the width axis is logarithmic. Local-energy R2 is plotted after
removing each species' mean offset (``local_r2_aligned``) by default: totals cannot fix
how a constant is shared between Ar and Kr in a mixture of fixed composition, so the raw
R2 mixes that arbitrary choice into the score (both are in the table).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from toolkit.studies.sweep import summarise  # noqa: E402

SYSTEM_STYLE = {"Ar": ("Ar", "tab:blue"), "Kr": ("Kr", "tab:red"), "ArKr": ("Mx", "tab:green")}
ARCHITECTURES = [("tanh", 1), ("linear", 1), ("tanh", 2), ("linear", 2)]


def _curves(ax, rows, metric: str, activation: str, depth: int,
            ceilings: dict[str, float] | None = None, shared: bool = False) -> None:
    """One panel; ``shared``: its x axis is shared with other panels, so it is labelled at
    every width of ``rows`` (the last panel's labels are every panel's, empty ones too)."""
    summary = summarise(rows, metric)
    for system, (label, colour) in SYSTEM_STYLE.items():
        key = (system, activation, depth)
        if key not in summary:
            continue
        widths, mean, std = summary[key]
        ax.plot(widths, mean, "o-", color=colour, label=label, ms=3)
        ax.fill_between(widths, mean - std, mean + std, color=colour, alpha=0.2, lw=0)
        if ceilings and system in ceilings:
            ax.axhline(ceilings[system], color=colour, ls=":", lw=1)
    _width_axis(ax, [r["width"] for r in rows if shared or (r["activation"] == activation
                                                            and r["depth"] == depth)])
    if "r2" in metric:
        low = ax.get_ylim()[0]
        # transferred totals can be off by a constant: R2 of -50 says "failed" as well as -1
        ax.set_ylim(max(low, -1.0), 1.02)
        if low < -1.0:
            ax.text(0.02, 0.02, "R2 < -1 clipped", transform=ax.transAxes, fontsize=7)
    ax.set_xlabel("layer width")
    ax.set_title(f"{activation}, {depth} hidden layer{'s' if depth > 1 else ''}", fontsize=9)
    ax.grid(alpha=0.3)


def width_labels(widths, axis_inches: float, fontsize: float = 10.0) -> list[str]:
    """Tick labels for a log axis ``axis_inches`` long with a tick at every width: plain
    numbers, left empty where a label would overlap the one before (a digit taken as 0.6 of
    the font size wide, 0.08 in between labels), so that a grid like 1-500 with 16 widths
    stays legible in a narrow panel; the first and the last width are always labelled (the
    last wins over a too-close one before it)."""
    ticks = sorted({int(w) for w in widths})
    if len(ticks) < 2:
        return [str(t) for t in ticks]
    where = (np.log(ticks) - np.log(ticks[0])) / np.log(ticks[-1] / ticks[0]) * axis_inches
    digit = 0.6 * fontsize / 72

    def apart(i: int, j: int) -> bool:
        room = (len(str(ticks[i])) + len(str(ticks[j]))) / 2 * digit + 0.08
        return where[j] - where[i] >= room

    shown = [0]
    for i in range(1, len(ticks) - 1):
        if apart(shown[-1], i):
            shown.append(i)
    while len(shown) > 1 and not apart(shown[-1], len(ticks) - 1):
        shown.pop()
    shown.append(len(ticks) - 1)
    return [str(t) if i in shown else "" for i, t in enumerate(ticks)]


def _width_axis(ax, widths) -> None:
    """Log width axis with a tick at every width that ran, labelled as ``width_labels`` says
    (plain numbers, no 2x10^0)."""
    from matplotlib.ticker import NullFormatter, NullLocator

    ax.set_xscale("log")
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_minor_formatter(NullFormatter())
    ticks = sorted({int(w) for w in widths})
    # the ticks span the axis less its margins on both sides
    inches = ax.get_position().width * ax.figure.get_figwidth() / (1 + 2 * ax.margins()[0])
    size = matplotlib.font_manager.FontProperties(size=plt.rcParams["xtick.labelsize"])
    ax.set_xticks(ticks, width_labels(ticks, inches, size.get_size_in_points()))


def _save(fig, out: Path, name: str, tight: bool = True) -> list[Path]:
    """``OUT/NAME.png`` and ``.pdf`` at 150 dpi (cropped to the drawing with ``tight``)."""
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"{name}.png", out / f"{name}.pdf"]
    # the tight box measured once for both files ("tight" would draw the figure once more per
    # file to measure it: a third of a report's time)
    box = fig.get_tightbbox(fig.canvas.get_renderer()).padded(0.1) if tight else None
    for path in paths:
        fig.savefig(path, dpi=150, bbox_inches=box)
    plt.close(fig)
    return paths


def width_figure(rows, metric: str, ylabel: str, out: Path, name: str,
                 activation: str = "tanh", depth: int = 1,
                 ceilings: dict[str, float] | None = None) -> list[Path]:
    """One panel: ``metric`` vs width, one line per system (the paper's Fig. 2, 3, 4)."""
    fig, ax = plt.subplots(figsize=(4.2, 3.2))
    _curves(ax, rows, metric, activation, depth, ceilings)
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=8)
    return _save(fig, out, name)


def architectures_figure(rows, metric: str, ylabel: str, out: Path, name: str,
                         ceilings: dict[str, float] | None = None) -> list[Path]:
    """Four panels, tanh/linear x 1/2 hidden layers (the paper's Fig. 7, 8, 9, 10)."""
    fig, axes = plt.subplots(2, 2, figsize=(7.5, 5.6), sharex=True, sharey=True)
    for ax, (activation, depth) in zip(axes.flat, ARCHITECTURES, strict=True):
        _curves(ax, rows, metric, activation, depth, ceilings, shared=True)
    for ax in axes[:, 0]:
        ax.set_ylabel(ylabel)
    axes[0, 0].legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, out, name)


def sweep_figures(rows, out: str | Path, local_metric: str = "local_r2_aligned",
                  ceilings: dict[str, float] | None = None) -> list[Path]:
    """Fig. 2 (local R2, tanh, 1 layer), Fig. 7 (total R2), Fig. 8 (local R2), all archs."""
    out = Path(out)
    label = "local R2" + (" (aligned)" if "aligned" in local_metric else "")
    paths = width_figure(rows, local_metric, label, out, "fig2_local_r2_tanh", ceilings=ceilings)
    paths += architectures_figure(rows, "total_r2", "total-energy R2", out, "fig7_total_r2")
    paths += architectures_figure(rows, local_metric, label, out, "fig8_local_r2",
                                  ceilings=ceilings)
    return paths


def transfer_figures(rows, out: str | Path,
                     local_metric: str = "local_r2_aligned") -> list[Path]:
    """Fig. 3/4 (transferred total/local R2, tanh, 1 layer) and Fig. 9/10 (all archs).

    Lines Ar and Kr: mixture-trained networks on the pure liquids; Mx: pure-trained
    networks combined per element on the mixture.
    """
    out = Path(out)
    label = "local R2" + (" (aligned)" if "aligned" in local_metric else "")
    paths = width_figure(rows, "total_r2", "transferred total R2", out,
                         "fig3_transfer_total_r2_tanh")
    paths += width_figure(rows, local_metric, "transferred " + label, out,
                          "fig4_transfer_local_r2_tanh")
    paths += architectures_figure(rows, "total_r2", "transferred total R2", out,
                                  "fig9_transfer_total_r2")
    paths += architectures_figure(rows, local_metric, "transferred " + label, out,
                                  "fig10_transfer_local_r2")
    if any(_finite(r.get("local_r2_gauge")) for r in rows):
        paths += width_figure(rows, "local_r2_gauge", "transferred local R2 (gauge-projected)",
                              out, "fig4_transfer_local_r2_gauge_tanh")
    return paths


# -- identifiability (toolkit/studies/identifiability.py, rigidity.py) --------------------------
def gauge_figure(rows, out: str | Path, activation: str = "tanh", depth: int = 1) -> list[Path]:
    """Local R2 vs width: aligned (dashed) next to gauge-projected (solid), per system."""
    if not any(_finite(r.get("local_r2_gauge")) for r in rows):
        return []
    fig, ax = plt.subplots(figsize=(4.6, 3.4))
    aligned = summarise(rows, "local_r2_aligned")
    gauge = summarise(rows, "local_r2_gauge")
    for system, (label, colour) in SYSTEM_STYLE.items():
        key = (system, activation, depth)
        if key not in gauge:
            continue
        widths, mean, std = gauge[key]
        ax.plot(widths, mean, "o-", color=colour, ms=3, label=f"{label} gauge-projected")
        ax.fill_between(widths, mean - std, mean + std, color=colour, alpha=0.2, lw=0)
        widths, mean, _ = aligned[key]
        ax.plot(widths, mean, "s--", color=colour, ms=3, lw=1, label=f"{label} aligned")
    _width_axis(ax, [r["width"] for r in rows if r["activation"] == activation
                     and r["depth"] == depth])
    ax.set_xlabel("layer width")
    ax.set_ylabel("local R2")
    ax.set_title(f"{activation}, {depth} hidden layer{'s' if depth > 1 else ''}", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return _save(fig, Path(out), f"gauge_local_r2_{activation}")


def _finite(value) -> bool:
    try:
        return value is not None and value == value and abs(float(value)) != float("inf")
    except (TypeError, ValueError):
        return False


def rigidity_figure(rows, out: str | Path, metric: str = "local_r2_aligned") -> list[Path]:
    """Mean LPR of each member (log scale) against its local R2, one colour per system and
    one marker per width (LPR falls with width, so a correlation across all members mixes
    width in), with the Spearman rank correlation across the members of each system. Members
    without the metric (tables from before it existed) are left out; none: no figure."""
    from matplotlib.lines import Line2D
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter
    from scipy.stats import spearmanr

    markers = "osD^vPX*"
    widths = sorted({int(r["width"]) for r in rows})
    marker = {w: markers[k % len(markers)] for k, w in enumerate(widths)}
    fig, ax = plt.subplots(figsize=(4.6, 3.4))
    handles, drawn = [], []
    for system, (label, colour) in SYSTEM_STYLE.items():
        points = [(_member_lpr(r), r.get(metric), int(r["width"])) for r in rows
                  if r["system"] == system]
        points = [(x, y, w) for x, y, w in points if _finite(x) and _finite(y) and x > 0]
        if len(points) < 3:
            continue
        x, y, w = (list(v) for v in zip(*points, strict=True))
        rho = spearmanr(x, y).statistic
        for width in sorted(set(w)):
            ax.scatter([a for a, b in zip(x, w, strict=True) if b == width],
                       [a for a, b in zip(y, w, strict=True) if b == width], s=14,
                       color=colour, alpha=0.7, marker=marker[width])
        handles.append(Line2D([], [], ls="", marker="o", color=colour,
                              label=f"{label} (rho {rho:+.2f})"))
        drawn += x
    if not drawn:
        plt.close(fig)
        return []
    handles += [Line2D([], [], ls="", marker=marker[w], color="grey", label=f"width {w}")
                for w in widths]
    ax.set_xscale("log")
    ax.xaxis.set_minor_formatter(NullFormatter())  # 2x10^0, 3x10^0, ... overlap
    if max(drawn) / min(drawn) < 100:  # within two decades: label 1, 2, 5 x 10^k plainly
        ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.set_xlabel("mean local prediction rigidity (test atoms)")
    ax.set_ylabel(metric.replace("_", " "))
    ax.grid(alpha=0.3)
    ax.legend(handles=handles, fontsize=7)
    return _save(fig, Path(out), f"lpr_vs_{metric}")


def _member_lpr(row: dict) -> float:
    """A member's mean LPR over its system's species (the lpr_<element> columns present)."""
    values = [float(v) for k, v in row.items() if k.startswith("lpr_") and _finite(v)]
    return sum(values) / len(values) if values else float("nan")


def training_figure(sweep_dir: str | Path, out: str | Path, system: str = "ArKr",
                    activation: str = "tanh", depth: int = 1) -> list[Path]:
    """Test local R2 (aligned dashed, gauge-projected solid) against L-BFGS iteration for the
    narrowest and widest recorded cells of ``system``; the marker is where early stopping
    took the member (its best validation iteration)."""
    import json

    pattern = f"{system}_{activation}_d{depth}_w*.monitor.json"
    cells = sorted(Path(sweep_dir, "cells").glob(pattern),
                   key=lambda p: int(p.name.split("_w")[1].split(".")[0]))
    if not cells:
        return []
    chosen = [cells[0]] if len(cells) == 1 else [cells[0], cells[-1]]
    fig, ax = plt.subplots(figsize=(5.0, 3.4))
    for path, colour in zip(chosen, ("tab:blue", "tab:red"), strict=False):
        data = json.loads(path.read_text())
        width = path.name.split("_w")[1].split(".")[0]
        iterations = [r["iteration"] for r in data["records"]]
        for m in range(len(data["seeds"])):
            gauge = [r["members"][m]["local_r2_gauge"] for r in data["records"]]
            aligned = [r["members"][m]["local_r2_aligned"] for r in data["records"]]
            ax.plot(iterations, gauge, "-", color=colour, lw=1,
                    label=f"width {width} gauge-projected" if m == 0 else None)
            ax.plot(iterations, aligned, "--", color=colour, lw=0.8,
                    label=f"width {width} aligned" if m == 0 else None)
            best = data["best_iteration"][m]
            at = min(range(len(iterations)), key=lambda k: abs(iterations[k] - best))
            ax.plot(iterations[at], gauge[at], "o", color=colour, ms=4)
    ax.set_xscale("symlog", linthresh=10)
    ax.set_ylim(max(ax.get_ylim()[0], -0.2), 1.0)
    ax.set_xlabel("L-BFGS iteration")
    ax.set_ylabel("test local R2")
    ax.set_title(f"{system}, {activation}, depth {depth} (dots: early-stopping choice)",
                 fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return _save(fig, Path(out), f"local_r2_along_training_{system}")


# -- the paper's regime (docs/paper_regime.md) ------------------------------------------------
def _grouped_panels(panels: dict[str, dict[str, tuple]], ylabel: str, out: Path, name: str,
                    title: str) -> list[Path]:
    """One panel per system; in each, one line (mean, +-1 std band) per label."""
    fig, axes = plt.subplots(1, len(panels), figsize=(3.6 * len(panels), 3.2), squeeze=False,
                             sharey=True)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, (system, lines) in zip(axes[0], panels.items(), strict=True):
        for index, (label, (widths, mean, std)) in enumerate(lines.items()):
            colour = colours[index % len(colours)]
            ax.plot(widths, mean, "o-", color=colour, label=label, ms=3)
            ax.fill_between(widths, mean - std, mean + std, color=colour, alpha=0.2, lw=0)
        _width_axis(ax, [w for widths, _, _ in lines.values() for w in widths])
        ax.set_xlabel("layer width")
        ax.set_title(f"{SYSTEM_STYLE.get(system, (system,))[0]}, {title}", fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    axes[0, 0].set_ylabel(ylabel)
    fig.tight_layout()
    return _save(fig, out, name)


def _series(by_width: dict) -> tuple:
    import numpy as np

    widths = np.array(sorted(by_width))
    values = [by_width[w] for w in widths]
    return widths, np.array([v.mean() for v in values]), np.array([v.std() for v in values])


def comparison_figure(tables: dict[str, list[dict]], metric: str, ylabel: str,
                      out: str | Path, name: str, activation: str = "tanh",
                      depth: int = 1) -> list[Path]:
    """``metric`` vs width of several sweeps on one grid (e.g. L-BFGS vs Adam), per system."""
    from toolkit.studies.regime import group_metric

    panels: dict[str, dict[str, tuple]] = {}
    for label, rows in tables.items():
        chosen = [r for r in rows if r["activation"] == activation and int(r["depth"]) == depth]
        for (system,), by_width in group_metric(chosen, metric, ["system"]).items():
            panels.setdefault(system, {})[label] = _series(by_width)
    order = [s for s in SYSTEM_STYLE if s in panels] + [s for s in panels
                                                        if s not in SYSTEM_STYLE]
    return _grouped_panels({s: panels[s] for s in order}, ylabel, Path(out), name,
                           f"{activation}, depth {depth}")


def data_size_figure(rows: list[dict], metric: str, ylabel: str, out: str | Path, name: str,
                     activation: str = "tanh", depth: int = 1) -> list[Path]:
    """``metric`` vs width, one line per number of training frames, one panel per system."""
    from toolkit.studies.regime import group_metric

    chosen = [r for r in rows if r["activation"] == activation and int(r["depth"]) == depth]
    panels: dict[str, dict[str, tuple]] = {}
    for (system, n_train), by_width in sorted(group_metric(chosen, metric,
                                                           ["system", "n_train"]).items(),
                                              key=lambda item: (item[0][0], item[0][1])):
        panels.setdefault(system, {})[f"{n_train} frames"] = _series(by_width)
    order = [s for s in SYSTEM_STYLE if s in panels]
    return _grouped_panels({s: panels[s] for s in order}, ylabel, Path(out), name,
                           f"{activation}, depth {depth}")
