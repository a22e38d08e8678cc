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

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from toolkit.studies.sweep import summarise  # noqa: E402

SYSTEM_STYLE = {"Ar": ("Ar", "tab:blue"), "Kr": ("Kr", "tab:red"), "ArKr": ("Mx", "tab:green")}
ARCHITECTURES = [("tanh", 1), ("linear", 1), ("tanh", 2), ("linear", 2)]


def _curves(ax, rows, metric: str, activation: str, depth: int,
            ceilings: dict[str, float] | None = None) -> None:
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
    ax.set_xscale("log")
    if "r2" in metric:
        low = ax.get_ylim()[0]
        # transferred totals can be off by a constant: R2 of -50 says "failed" as well as -1
        ax.set_ylim(max(low, -1.0), 1.02)
        if low < -1.0:
            ax.text(0.02, 0.02, "R2 < -1 clipped", transform=ax.transAxes, fontsize=7)
    ax.set_xlabel("layer width")
    ax.set_title(f"{activation}, {depth} hidden layer{'s' if depth > 1 else ''}", fontsize=9)
    ax.grid(alpha=0.3)


def _save(fig, out: Path, name: str) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"{name}.png", out / f"{name}.pdf"]
    for path in paths:
        fig.savefig(path, dpi=150, bbox_inches="tight")
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
        _curves(ax, rows, metric, activation, depth, ceilings)
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
    return paths


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
        ax.set_xscale("log")
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
