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
    fig, axes = plt.subplots(2, len(panels), figsize=(4.2 * len(panels), 7.2), squeeze=False)
    for column, (name, (x, y, fit)) in enumerate(panels.items()):
        x, y = np.asarray(x), np.asarray(y)
        # show offsets from the means: absolute values are ~-10^2..10^3 eV/atom and the
        # interesting spread is meV
        x0, y0 = float(x.mean()), float(y.mean())
        ax = axes[0, column]
        ax.plot((x - x0) * 1e3, (y - y0) * 1e3, "o", ms=4, alpha=0.8, label="frames")
        line = np.linspace(x.min(), x.max(), 50)
        ax.plot((line - x0) * 1e3, (fit.slope * line + fit.intercept - y0) * 1e3, "-", lw=1.5,
                label=f"slope {fit.slope:.4f}, R2 {fit.r2:.4f}\n"
                      f"RMSE {fit.rmse * 1e3:.2f} meV/atom")
        ax.set_xlabel(f"$E_{{es}}/N$ - ({x0:.3f} eV)  [meV/atom]")
        ax.set_ylabel(f"$(E - E_{{es}})/N$ - ({y0:.3f} eV)  [meV/atom]")
        ax.set_title(f"{name} ({fit.n_frames} frames): the paper's axes", fontsize=9)
        ax.legend(fontsize=8)
        # the same data without E_es on both axes: the total against E_es
        total = y + x
        t0 = float(total.mean())
        honest = np.polyfit(x, total, 1)
        residual = total - np.polyval(honest, x)
        r2 = 1.0 - float(residual @ residual) / float(np.sum((total - t0) ** 2))
        ax = axes[1, column]
        ax.plot((x - x0) * 1e3, (total - t0) * 1e3, "o", ms=4, alpha=0.8, color="tab:orange")
        ax.plot((line - x0) * 1e3, (np.polyval(honest, line) - t0) * 1e3, "-", lw=1.5,
                color="tab:red", label=f"R2 {r2:.4f}\nRMSE "
                f"{np.sqrt(np.mean(residual**2)) * 1e3:.2f} meV/atom")
        ax.set_xlabel(f"$E_{{es}}/N$ - ({x0:.3f} eV)  [meV/atom]")
        ax.set_ylabel(f"$E/N$ - ({t0:.3f} eV)  [meV/atom]")
        ax.set_title("total energy against E_es (no shared variable)", fontsize=9)
        ax.legend(fontsize=8)
    fig.tight_layout()
    paths = [stem.parent / f"{stem.name}.png", stem.parent / f"{stem.name}.pdf"]
    for path in paths:
        fig.savefig(path, dpi=150)
    plt.close(fig)
    return paths
