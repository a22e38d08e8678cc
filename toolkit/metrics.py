"""Agreement between predicted and reference energies: R2, Pearson r, RMSE, offset-aligned.

R2 is the paper's "correlation score": 1 - sum (y - yhat)^2 / sum (y - mean y)^2; it can
be negative. Atomic energies learned from totals are fixed only up to a constant per
species (for a fixed composition a constant moved from Ar to Kr leaves every total
unchanged), so local energies are also scored after removing each species' mean
difference ("aligned"). The aligned R2 is measured against each species' own mean
(pooled within-species variance), and the aligned Pearson r correlates the deviations from
each species' mean: otherwise the difference between the Ar and Kr means, which the
alignment reproduces by construction, would inflate both for mixtures.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def r2(reference: np.ndarray, predicted: np.ndarray) -> float:
    reference, predicted = np.asarray(reference, float), np.asarray(predicted, float)
    total = np.sum((reference - reference.mean()) ** 2)
    if total == 0:
        return float("nan")
    return float(1.0 - np.sum((reference - predicted) ** 2) / total)


def pearson(reference: np.ndarray, predicted: np.ndarray) -> float:
    reference, predicted = np.asarray(reference, float), np.asarray(predicted, float)
    if reference.std() == 0 or predicted.std() == 0:
        return float("nan")
    return float(np.corrcoef(reference, predicted)[0, 1])


def rmse(reference: np.ndarray, predicted: np.ndarray) -> float:
    return float(np.sqrt(np.mean((np.asarray(reference) - np.asarray(predicted)) ** 2)))


def align_per_species(reference: np.ndarray, predicted: np.ndarray,
                      species: np.ndarray) -> np.ndarray:
    """``predicted`` shifted by each species' mean difference to ``reference``."""
    aligned = np.array(predicted, dtype=float)
    for s in np.unique(species):
        mask = species == s
        aligned[mask] += np.mean(reference[mask] - predicted[mask])
    return aligned


def centre_per_species(values: np.ndarray, species: np.ndarray) -> np.ndarray:
    """``values`` less each species' own mean (a copy)."""
    centred = np.array(values, dtype=float)
    for s in np.unique(species):
        mask = species == s
        centred[mask] -= centred[mask].mean()
    return centred


def r2_within_species(reference: np.ndarray, predicted: np.ndarray,
                      species: np.ndarray) -> float:
    """R2 against each species' own mean: how much within-species variation is explained."""
    reference, predicted = np.asarray(reference, float), np.asarray(predicted, float)
    centred = centre_per_species(reference, species)
    total = sum(np.sum(centred[species == s] ** 2) for s in np.unique(species))  # per species
    if total == 0:
        return float("nan")
    return float(1.0 - np.sum((reference - predicted) ** 2) / total)


def pearson_within_species(reference: np.ndarray, predicted: np.ndarray,
                           species: np.ndarray) -> float:
    """Pearson r of both after removing each species' own mean from each: like
    :func:`r2_within_species`, blind to the difference between the species' means."""
    return pearson(centre_per_species(reference, species),
                   centre_per_species(predicted, species))


def scores(reference: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    return {"r2": r2(reference, predicted), "pearson": pearson(reference, predicted),
            "rmse": rmse(reference, predicted), "n": int(len(reference))}


def energy_metrics(
    total_reference: np.ndarray,
    total_predicted: np.ndarray,
    local_reference: np.ndarray | None,
    local_predicted: np.ndarray,
    species: np.ndarray,
    species_names: Sequence[str],
    atoms_per_frame: np.ndarray,
) -> dict:
    """Totals (also per atom) and local energies, overall and per species, raw and aligned."""
    out = {
        "total": scores(total_reference, total_predicted),
        "total_per_atom_rmse": rmse(total_reference / atoms_per_frame,
                                    total_predicted / atoms_per_frame),
    }
    if local_reference is None:
        return out
    aligned = align_per_species(local_reference, local_predicted, species)
    out["local"] = scores(local_reference, local_predicted)
    out["local_aligned"] = {**scores(local_reference, aligned),
                            "r2": r2_within_species(local_reference, aligned, species),
                            "pearson": pearson_within_species(local_reference, aligned,
                                                              species)}
    out["per_species"] = {}
    for s in np.unique(species):
        mask = species == s
        out["per_species"][species_names[int(s)]] = {
            "local": scores(local_reference[mask], local_predicted[mask]),
            "local_aligned": scores(local_reference[mask], aligned[mask]),
            "offset": float(np.mean(local_predicted[mask] - local_reference[mask])),
        }
    return out
