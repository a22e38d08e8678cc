"""The paper's Figs. 1, 5, 6: E_total - E_es against E_es per frame, with the linear fit."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def plot_correlation(panels: dict, stem: str | Path) -> list[Path]:
    """One panel per system; ``panels[name] = (x, y, fit)`` with x = E_es/N and
    y = (E_total - E_es)/N in eV/atom and ``fit`` a ``CorrelationFit``.

    Writes ``<stem>.png`` and ``<stem>.pdf``; returns their paths.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.8), squeeze=False)
    for ax, (name, (x, y, fit)) in zip(axes[0], panels.items(), strict=True):
        x, y = np.asarray(x), np.asarray(y)
        # show offsets from the means: absolute values are ~-10^2..10^3 eV/atom and the
        # interesting spread is meV
        x0, y0 = float(x.mean()), float(y.mean())
        ax.plot((x - x0) * 1e3, (y - y0) * 1e3, "o", ms=4, alpha=0.8, label="frames")
        line = np.linspace(x.min(), x.max(), 50)
        ax.plot((line - x0) * 1e3, (fit.slope * line + fit.intercept - y0) * 1e3, "-", lw=1.5,
                label=f"slope {fit.slope:.4f}\nRMSE {fit.rmse * 1e3:.2f} meV/atom")
        ax.set_xlabel(f"$E_{{es}}/N$ - ({x0:.3f} eV)  [meV/atom]")
        ax.set_ylabel(f"$(E - E_{{es}})/N$ - ({y0:.3f} eV)  [meV/atom]")
        ax.set_title(f"{name} ({fit.n_frames} frames)")
        ax.legend(fontsize=8)
    fig.tight_layout()
    paths = [stem.parent / f"{stem.name}.png", stem.parent / f"{stem.name}.pdf"]
    for path in paths:
        fig.savefig(path, dpi=150)
    plt.close(fig)
    return paths
