"""Local prediction rigidity (LPR): how firmly the training totals pin down each atomic energy.

Chong et al., J. Chem. Theory Comput. 19, 8020 (2023) define, for a model linear in its
parameters w (atomic energy e_i = w . f_i) trained on frame totals E_f = w . F_f with
F_f = sum_{i in f} f_i, the rigidity of atom i's prediction

    LPR_i = 1 / ( f_i^T (H + s^2 I)^{-1} f_i ),   H = sum_f c_f F_f F_f^T,

where c_f is the weight of frame f in the loss. A large LPR means the data fix e_i (changing
it costs loss); a small LPR means e_i can move with little effect on the fit: along a gauge
direction (a combination of parameters that moves atomic energies but no total) the
regulariser s^2 alone holds it. For a network, the last-layer approximation of Bigi et al.
(2024) (metatrain's LLPR) takes f_i as the atom's features in the last hidden layer (for a
network without hidden layers, its standardised descriptors), with the earlier layers frozen
at their trained values.

Choices here (documented, like the paper's regulariser):
- per-species networks: f_i lives in its species' block of the feature vector (the other
  blocks are zero), so H couples species only through the frames;
- c_f = 1 / N_f, the toolkit's loss weight (mean over frames of (E - sum e)^2 / N);
- the output *biases* are left out of f: they are the per-species constants, a gauge
  direction at fixed composition that the aligned score already removes; with them, every
  atom of a fixed-composition mixture would have an LPR set by s alone. LPR here is the
  rigidity of an atomic energy *up to its species constant*;
- s^2 = ``regulariser`` x tr(H) / p (relative, so LPR does not depend on the units of the
  features), default 1e-6. LPR is dimensionless (frame-weighted effective observations);
  compare it between models trained on the same frames.

It needs no local labels: a user with only DFT totals can compute it.
"""

from __future__ import annotations

import numpy as np
import torch

from toolkit.models.networks import SpeciesNetworks, _activation

REGULARISER = 1e-6  # s^2 relative to the mean eigenvalue tr(H) / p


def last_layer_features(model: SpeciesNetworks, values: np.ndarray,
                        species_index: np.ndarray) -> np.ndarray:
    """(n_atoms, S x H): each atom's last-hidden-layer output in its species' block.

    H is the last hidden width (the descriptor count for a network without hidden layers);
    the inputs are standardised with the model's own normalisation.
    """
    layout = model.layout
    width = model.architecture.hidden[-1] if model.architecture.hidden else layout.n_descriptors
    n_species = len(model.spec.elements)
    out = np.zeros((len(values), n_species * width))
    act = _activation(model.architecture.activation)
    theta = model.theta.reshape(1, -1)
    with torch.no_grad():
        for s in range(n_species):
            mask = species_index == s
            if not mask.any():
                continue
            h = torch.from_numpy(model.normalisation.standardise(values[mask], s))
            for w, b in layout.unpack(theta, s)[:-1]:
                h = act(h @ w[0].T + b[0])
            out[mask, s * width:(s + 1) * width] = h.numpy()
    return out


def frame_sums(features: np.ndarray, frame_index: np.ndarray, n_frames: int) -> np.ndarray:
    """(n_frames, p): sum of the atoms' features per frame."""
    sums = np.zeros((n_frames, features.shape[1]))
    np.add.at(sums, frame_index, features)
    return sums


def rigidity(train_features: np.ndarray, train_frame_index: np.ndarray,
             query_features: np.ndarray, regulariser: float = REGULARISER) -> np.ndarray:
    """LPR of every query atom (see module doc) from the training atoms' features.

    ``train_frame_index`` gives each training atom's frame (0..F-1); frame weights are
    1 / atoms per frame. Returns (n_query,) LPR values.
    """
    n_frames = int(train_frame_index.max()) + 1
    counts = np.bincount(train_frame_index, minlength=n_frames).astype(float)
    sums = frame_sums(train_features, train_frame_index, n_frames) / np.sqrt(counts)[:, None]
    hessian = sums.T @ sums
    p = hessian.shape[0]
    shift = regulariser * max(float(np.trace(hessian)) / p, np.finfo(float).tiny)
    factor = np.linalg.cholesky(hessian + shift * np.eye(p))
    solved = np.linalg.solve(factor, query_features.T)  # L^{-1} f
    with np.errstate(divide="ignore"):  # all-zero features: the bias alone, infinitely rigid
        return 1.0 / np.sum(solved**2, axis=0)


def model_rigidity(model: SpeciesNetworks, train_values: np.ndarray,
                   train_species: np.ndarray, train_frame_index: np.ndarray,
                   query_values: np.ndarray, query_species: np.ndarray,
                   regulariser: float = REGULARISER) -> np.ndarray:
    """LPR of the query atoms under ``model``, rigidity from its training frames."""
    train = last_layer_features(model, train_values, train_species)
    query = last_layer_features(model, query_values, query_species)
    return rigidity(train, train_frame_index, query, regulariser)


def species_means(lpr: np.ndarray, species_index: np.ndarray,
                  elements: tuple[str, ...]) -> dict[str, float]:
    """Mean LPR per species present (arithmetic mean over the query atoms)."""
    return {elements[s]: float(lpr[species_index == s].mean())
            for s in np.unique(species_index)}
