"""Scores: R2, Pearson, alignment; each with a case that must fail."""

from __future__ import annotations

import numpy as np

from toolkit.metrics import align_per_species, energy_metrics, r2, r2_within_species


def test_r2_perfect_constant_and_negative():
    y = np.array([1.0, 2.0, 3.0, 4.0])
    assert r2(y, y) == 1.0
    assert r2(y, np.full(4, y.mean())) == 0.0
    assert r2(y, y[::-1]) < 0


def test_alignment_removes_species_offsets_only():
    rng = np.random.default_rng(0)
    species = np.array([0] * 50 + [1] * 50)
    reference = rng.normal(size=100) + np.where(species == 0, -1.0, -3.0)
    predicted = reference + np.where(species == 0, 0.7, -0.7)  # an offset swap between species
    aligned = align_per_species(reference, predicted, species)
    np.testing.assert_allclose(aligned, reference, atol=1e-12)
    noisy = predicted + rng.normal(size=100)
    assert r2_within_species(reference, align_per_species(reference, noisy, species),
                             species) < 0.5


def test_aligned_r2_is_not_inflated_by_species_means():
    """Species means 10 apart, predictions that only know the species: aligned R2 ~ 0."""
    rng = np.random.default_rng(1)
    species = np.array([0] * 200 + [1] * 200)
    reference = rng.normal(size=400) + 10.0 * species
    predicted = 10.0 * species + 0.3  # right means up to an offset, no atomic detail
    metrics = energy_metrics(np.zeros(2), np.zeros(2), reference, predicted, species,
                             ["Ar", "Kr"], np.array([200.0, 200.0]))
    assert abs(metrics["local_aligned"]["r2"]) < 0.02
    assert metrics["local"]["r2"] > 0.9  # the raw score is fooled by the species means


def test_aligned_pearson_is_not_inflated_by_species_means():
    """Species means 73 apart (Ar and Kr in a DFT mixture), predictions unrelated to the
    reference within each species: the aligned Pearson r is ~0, the pooled one ~1."""
    rng = np.random.default_rng(2)
    species = np.array([0] * 300 + [1] * 300)
    reference = rng.normal(size=600) + 73.0 * species
    predicted = rng.normal(size=600) + 73.0 * species - 5.0
    metrics = energy_metrics(np.zeros(2), np.zeros(2), reference, predicted, species,
                             ["Ar", "Kr"], np.array([300.0, 300.0]))
    assert abs(metrics["local_aligned"]["pearson"]) < 0.1
    assert metrics["local"]["pearson"] > 0.99  # pooled over species: the means line it up
    # and where the atomic detail is right, the aligned r sees it
    close = reference + 0.1 * rng.normal(size=600) + 3.0 * species
    metrics = energy_metrics(np.zeros(2), np.zeros(2), reference, close, species,
                             ["Ar", "Kr"], np.array([300.0, 300.0]))
    assert metrics["local_aligned"]["pearson"] > 0.99
