"""Training internals of issue 14: the hand-written chunked gradient, the compact L-BFGS
direction, the Adam protocol (members independent in a batch), and device selection.

Synthetic descriptors (random rows, frames of unequal size and composition) keep these
fast; training on real LAMMPS descriptors is covered by test_potential.py and the sweeps.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from toolkit.descriptor_spec import Descriptors, DescriptorSpec
from toolkit.models import objective
from toolkit.models.networks import Architecture, EnsembleNetworks
from toolkit.models.training import (
    TrainingSettings,
    TrainingSettingsError,
    _value_and_grad,
    fit_normalisation,
    frame_set,
    lbfgs_direction,
    learning_rate,
    loss,
    resolve_device,
    train_ensemble,
)

CUDA = torch.cuda.is_available()


def _synthetic(n_frames: int = 24, seed: int = 0, uniform: bool = False):
    """Descriptors of frames with 5-9 atoms of two species, and energies of a smooth model."""
    rng = np.random.default_rng(seed)
    sizes = np.full(n_frames, 8) if uniform else rng.integers(5, 10, n_frames)
    frame_index = np.repeat(np.arange(n_frames), sizes)
    species = (np.tile([0, 1], len(frame_index))[:len(frame_index)] if uniform
               else rng.integers(0, 2, len(frame_index)))
    values = rng.normal(size=(len(frame_index), 30)) + species[:, None]
    local = np.tanh(values[:, :3].sum(1)) * 0.01 - 0.05 - 0.02 * species
    energies = np.bincount(frame_index, weights=local)
    return Descriptors(values, frame_index, species.astype(np.int64), DescriptorSpec()), energies


def _packed(descriptors, energies, frames):
    sub = descriptors.select_frames(frames)
    norm = fit_normalisation(sub, energies[frames])
    fs = frame_set(sub, energies[frames], norm)
    return fs, objective.PackedFrames.pack(fs.blocks, fs.target, fs.n_atoms)


# (1, 1), (5, 1) and (2, 1, 3): hidden layers of one unit below the output, whose gradient
# once took the output layer's path (wrong by O(1), found on the paper grid's width-1 cells)
ARCHITECTURES = [Architecture((3,), "tanh"), Architecture((4, 5), "sigmoid"),
                 Architecture((), "linear"), Architecture((6, 6), "relu"),
                 Architecture((7,), "linear"), Architecture((1,), "tanh"),
                 Architecture((1, 1), "tanh"), Architecture((5, 1), "linear"),
                 Architecture((2, 1, 3), "sigmoid"), Architecture((1, 4), "tanh")]


@pytest.mark.parametrize("uniform", [False, True])
@pytest.mark.parametrize("architecture", ARCHITECTURES, ids=lambda a: a.label)
def test_hand_gradient_equals_autograd_over_many_chunks(architecture, uniform, monkeypatch):
    """Value and gradient of the chunked hand-written loss equal autograd's to 1e-12."""
    monkeypatch.setattr(objective, "MIN_CHUNK_ATOMS", 1)  # chunks of a few frames
    descriptors, energies = _synthetic(uniform=uniform)
    fs, packed = _packed(descriptors, energies, list(range(20)))
    networks = EnsembleNetworks(architecture, 2, 30)
    theta = networks.initial_theta([0, 1, 2]) * 1.3
    reference_value, reference_grad = _value_and_grad(lambda t: loss(networks, t, fs), theta)
    assert len(packed.chunks(0, 20, objective._width(networks, theta), budget=60)) >= 3
    value, grad = objective.value_and_grad(networks, theta, packed, budget=60)
    torch.testing.assert_close(value, reference_value, rtol=1e-12, atol=0)
    torch.testing.assert_close(grad, reference_grad, rtol=1e-11, atol=1e-14)
    torch.testing.assert_close(objective.value(networks, theta, packed, budget=60), value,
                               rtol=1e-13, atol=0)
    # negative control: another member's parameters give another gradient
    _, other = objective.value_and_grad(networks, theta.flip(0), packed, budget=60)
    assert not torch.allclose(other, grad, rtol=1e-6)


def test_frame_weights_and_weight_decay_in_the_hand_written_objective():
    """Frame weights (anchors) fold into the packed frames: equal to the autograd loss with
    weights; a weight of 1 changes nothing. Weight decay: training with it equals training on
    the autograd objective loss + decay mean(theta^2) (the gradient is added by hand)."""
    descriptors, energies = _synthetic()
    frames = list(range(20))
    sub = descriptors.select_frames(frames)
    norm = fit_normalisation(sub, energies[frames])
    weights = np.linspace(0.5, 3.0, 20)
    fs = frame_set(sub, energies[frames], norm, weights)
    packed = objective.PackedFrames.pack(fs.blocks, fs.target, fs.n_atoms, weight=fs.weight)
    networks = EnsembleNetworks(Architecture((4,), "tanh"), 2, 30)
    theta = networks.initial_theta([0, 1])
    reference_value, reference_grad = _value_and_grad(lambda t: loss(networks, t, fs), theta)
    value, grad = objective.value_and_grad(networks, theta, packed)
    torch.testing.assert_close(value, reference_value, rtol=1e-12, atol=0)
    torch.testing.assert_close(grad, reference_grad, rtol=1e-11, atol=1e-14)
    unweighted = _packed(descriptors, energies, frames)[1]
    assert not torch.allclose(objective.value(networks, theta, unweighted), value, rtol=1e-6)
    ones = objective.PackedFrames.pack(fs.blocks, fs.target, fs.n_atoms,
                                       weight=torch.ones(20, dtype=torch.float64))
    torch.testing.assert_close(objective.value(networks, theta, ones),
                               objective.value(networks, theta, unweighted), rtol=1e-14, atol=0)
    # weight decay: the decayed objective's optimum is smaller in norm than the plain one's
    settings = dict(max_iterations=40, patience=1000)
    plain = train_ensemble(Architecture((4,), "tanh"), descriptors, energies, frames,
                           list(range(20, 24)), [0], TrainingSettings(**settings),
                           progress=False)
    decayed = train_ensemble(Architecture((4,), "tanh"), descriptors, energies, frames,
                             list(range(20, 24)), [0],
                             TrainingSettings(**settings, weight_decay=1.0), progress=False)
    assert decayed.theta.norm() < 0.9 * plain.theta.norm()
    with pytest.raises(TrainingSettingsError, match="weight_decay"):
        TrainingSettings(optimizer="adam", weight_decay=0.1)


def test_hand_gradient_matches_finite_differences():
    descriptors, energies = _synthetic()
    _, packed = _packed(descriptors, energies, list(range(20)))
    networks = EnsembleNetworks(Architecture((5, 4), "tanh"), 2, 30)
    theta = networks.initial_theta([3, 4])
    direction = torch.randn(theta.shape, dtype=torch.float64,
                            generator=torch.Generator().manual_seed(1))
    _, grad = objective.value_and_grad(networks, theta, packed)
    h = 1e-6
    slope = (objective.value(networks, theta + h * direction, packed)
             - objective.value(networks, theta - h * direction, packed)) / (2 * h)
    torch.testing.assert_close(slope, (grad * direction).sum(1), rtol=1e-6, atol=1e-12)


def test_mini_batch_of_reordered_frames_is_the_loss_of_those_frames(monkeypatch):
    monkeypatch.setattr(objective, "MIN_CHUNK_ATOMS", 1)
    descriptors, energies = _synthetic()
    frames = list(range(20))
    sub = descriptors.select_frames(frames)
    norm = fit_normalisation(sub, energies[frames])
    fs = frame_set(sub, energies[frames], norm)
    packed = objective.PackedFrames.pack(fs.blocks, fs.target, fs.n_atoms)
    order = np.random.default_rng(3).permutation(20)
    batch = [int(f) for f in order[4:13]]
    alone = frame_set(descriptors.select_frames(batch), energies[batch], norm)
    networks = EnsembleNetworks(Architecture((4,), "tanh"), 2, 30)
    theta = networks.initial_theta([0, 1])
    reference = _value_and_grad(lambda t: loss(networks, t, alone), theta)
    value, grad = objective.value_and_grad(networks, theta, packed.reordered(order), 4, 13,
                                           budget=50)
    torch.testing.assert_close(value, reference[0], rtol=1e-12, atol=0)
    torch.testing.assert_close(grad, reference[1], rtol=1e-11, atol=1e-14)


def _two_loop(grad, s_hist, y_hist, rho, gamma, slot):
    """The textbook two-loop recursion (Nocedal and Wright, Alg. 7.4), per member."""
    h = s_hist.shape[1]
    q = grad.clone()
    order = [(slot - 1 - k) % h for k in range(h)]
    alphas = {}
    for i in order:
        alphas[i] = rho[:, i] * (s_hist[:, i] * q).sum(1)
        q -= alphas[i].unsqueeze(1) * y_hist[:, i]
    r = gamma.unsqueeze(1) * q
    for i in reversed(order):
        beta = rho[:, i] * (y_hist[:, i] * r).sum(1)
        r += s_hist[:, i] * (alphas[i] - beta).unsqueeze(1)
    return -r


@pytest.mark.parametrize("slot", [0, 3, 5])
def test_compact_lbfgs_direction_equals_two_loop_recursion(slot):
    generator = torch.Generator().manual_seed(slot)
    m, h, p = 4, 6, 40
    s = torch.randn(m, h, p, dtype=torch.float64, generator=generator)
    y = s + 0.3 * torch.randn(m, h, p, dtype=torch.float64, generator=generator)
    rho = 1.0 / (s * y).sum(2)
    empty = torch.rand(m, h, generator=generator) < 0.3  # empty or rejected slots
    empty[0] = True  # a member without history: steepest descent scaled by gamma
    s[empty], y[empty], rho[empty] = 0.0, 0.0, 0.0
    gamma = torch.rand(m, dtype=torch.float64, generator=generator) + 0.5
    grad = torch.randn(m, p, dtype=torch.float64, generator=generator)
    direction = lbfgs_direction(grad, s, y, rho, gamma, slot)
    torch.testing.assert_close(direction, _two_loop(grad, s, y, rho, gamma, slot),
                               rtol=1e-10, atol=1e-13)
    torch.testing.assert_close(direction[0], -gamma[0] * grad[0], rtol=1e-15, atol=0)
    # negative control: the order of the pairs matters
    assert not torch.allclose(lbfgs_direction(grad, s, y, rho, gamma, (slot + 2) % h),
                              direction, rtol=1e-6)


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("architecture", [Architecture((), "linear"),
                                          Architecture((7,), "linear"),
                                          Architecture((5, 1), "linear"),
                                          Architecture((6, 4), "linear"),
                                          Architecture((2, 1, 3), "linear")],
                         ids=lambda a: a.label)
def test_summed_frames_give_the_atoms_loss_and_gradient_for_linear_networks(architecture,
                                                                            weighted,
                                                                            monkeypatch):
    """One mean row per frame and species times its atom count: the atoms' value (1e-12)
    and gradient (1e-11) for frames of 5-9 atoms, a species absent from some frames, with
    and without frame weights, also reordered and in a mini-batch, with biases in every
    layer; a tanh network on summed frames is refused."""
    monkeypatch.setattr(objective, "MIN_CHUNK_ATOMS", 1)
    descriptors, energies = _synthetic(seed=2)
    descriptors.species_index[descriptors.frame_index == 3] = 0  # frame 3: one species only
    fs, packed = _packed(descriptors, energies, list(range(20)))
    if weighted:
        weight = torch.linspace(0.5, 3.0, 20, dtype=torch.float64)
        packed = objective.PackedFrames.pack(fs.blocks, fs.target, fs.n_atoms, weight=weight)
    counts = [np.diff(b.offsets) for b in packed.species]
    assert any((c == 0).any() for c in counts)  # the test covers a missing species
    summed = packed.summed()
    assert summed.is_summed and not packed.is_summed and summed.summed() is summed
    assert sum(b.x.shape[0] for b in summed.species) == sum(int((c > 0).sum()) for c in counts)
    networks = EnsembleNetworks(architecture, 2, 30)
    # random parameters, biases of every layer included (they start at zero)
    theta = torch.randn(networks.initial_theta([0, 1, 2]).shape, dtype=torch.float64,
                        generator=torch.Generator().manual_seed(5)) * 0.3
    value, grad = objective.value_and_grad(networks, theta, packed, budget=60)
    s_value, s_grad = objective.value_and_grad(networks, theta, summed, budget=8)
    torch.testing.assert_close(s_value, value, rtol=1e-12, atol=0)
    torch.testing.assert_close(s_grad, grad, rtol=1e-11, atol=1e-14)
    torch.testing.assert_close(objective.value(networks, theta, summed), value, rtol=1e-12,
                               atol=0)
    order = np.random.default_rng(3).permutation(20)
    batch = objective.value_and_grad(networks, theta, packed.reordered(order), 4, 13)
    s_batch = objective.value_and_grad(networks, theta, summed.reordered(order), 4, 13)
    torch.testing.assert_close(s_batch[0], batch[0], rtol=1e-12, atol=0)
    torch.testing.assert_close(s_batch[1], batch[1], rtol=1e-11, atol=1e-14)
    # negative control: the means without their counts are another loss
    for block in summed.species:
        block.count = torch.ones_like(block.count)
    assert not torch.allclose(objective.value(networks, theta, summed), value, rtol=1e-3)
    tanh = EnsembleNetworks(Architecture((7,), "tanh"), 2, 30)
    with pytest.raises(ValueError, match="only for linear activations"):
        objective.value(tanh, tanh.initial_theta([0]), summed)


def test_linear_sums_train_the_same_members():
    """train_ensemble with linear_sums: the same members as on atom rows (L-BFGS with early
    stopping and Adam) to 1e-6; tanh networks ignore the setting (bit-identical)."""
    descriptors, energies = _synthetic(30, seed=4)
    train, validation = list(range(22)), list(range(22, 26))
    for settings in (TrainingSettings(max_iterations=60, patience=10),
                     TrainingSettings(optimizer="adam", epochs=5, batch_size=6,
                                      learning_rate=3e-3)):
        summed = dataclasses.replace(settings, linear_sums=True)
        for architecture in (Architecture((6, 3), "linear"), Architecture((3,), "tanh")):
            atoms = train_ensemble(architecture, descriptors, energies, train, validation,
                                   [0, 1], settings=settings, progress=False)
            sums = train_ensemble(architecture, descriptors, energies, train, validation,
                                  [0, 1], settings=summed, progress=False)
            assert sums.iterations == atoms.iterations
            if architecture.activation == "tanh":
                assert torch.equal(sums.theta, atoms.theta)
            else:  # equal to rounding, but not bit for bit: the summed rows were used
                torch.testing.assert_close(sums.theta, atoms.theta, rtol=1e-6, atol=1e-9)
                assert not torch.equal(sums.theta, atoms.theta)
                assert sums.validation_loss == pytest.approx(atoms.validation_loss, rel=1e-8)
    with pytest.raises(TrainingSettingsError, match="linear_sums"):
        TrainingSettings(linear_sums="yes")


ADAM = TrainingSettings(optimizer="adam", epochs=6, batch_size=5, learning_rate=3e-3)


def test_adam_members_in_a_batch_equal_members_trained_alone():
    descriptors, energies = _synthetic(30)
    train, validation = list(range(22)), list(range(22, 26))
    architecture = Architecture((4,), "tanh")
    batch = train_ensemble(architecture, descriptors, energies, train, validation, [5, 6, 7],
                           settings=ADAM, progress=False)
    assert batch.iterations == [6, 6, 6]  # no early stopping: every member runs all epochs
    for m, seed in enumerate([5, 6, 7]):
        alone = train_ensemble(architecture, descriptors, energies, train, validation, [seed],
                               settings=ADAM, progress=False)
        torch.testing.assert_close(batch.theta[m], alone.theta[0], rtol=1e-10, atol=1e-12)
        assert batch.validation_loss[m] == pytest.approx(alone.validation_loss[0], rel=1e-10)
    # negative controls: another batch order, or another batch size, gives another member
    for other in (TrainingSettings(**{**ADAM.to_dict(), "shuffle_seed": 1}),
                  TrainingSettings(**{**ADAM.to_dict(), "batch_size": 4})):
        changed = train_ensemble(architecture, descriptors, energies, train, validation, [5],
                                 settings=other, progress=False)
        assert not torch.allclose(changed.theta[0], batch.theta[0], rtol=1e-6)


def test_adam_lowers_the_loss_and_keeps_the_last_epoch():
    descriptors, energies = _synthetic(30)
    settings = TrainingSettings(optimizer="adam", epochs=40, batch_size=8, learning_rate=1e-2)
    ensemble = train_ensemble(Architecture((4,), "tanh"), descriptors, energies,
                              list(range(22)), list(range(22, 26)), [0], settings=settings,
                              progress=False)
    first, last = ensemble.history[0], ensemble.history[-1]
    assert last["iteration"] == 40 and last["train"][0] < 0.5 * first["train"][0]
    assert last["validation"][0] == pytest.approx(ensemble.validation_loss[0], rel=1e-12)


def test_lbfgs_without_early_stopping_keeps_the_last_parameters():
    descriptors, energies = _synthetic(30)
    common = dict(max_iterations=12, patience=1, gradient_tolerance=0.0, min_improvement=0.5)
    train, validation = list(range(22)), list(range(22, 26))
    architecture = Architecture((5,), "tanh")
    stopped = train_ensemble(architecture, descriptors, energies, train, validation, [0, 1],
                             settings=TrainingSettings(**common), progress=False)
    assert max(stopped.iterations) < 12  # patience 1 with a 50 % gain demanded: stops early
    last = train_ensemble(architecture, descriptors, energies, train, validation, [0, 1],
                          settings=TrainingSettings(**common, keep="last"), progress=False)
    assert last.iterations == [12, 12]
    assert last.validation_loss == pytest.approx(last.history[-1]["validation"], rel=1e-12)
    assert last.train_loss == pytest.approx(last.history[-1]["train"], rel=1e-12)
    assert not torch.allclose(last.theta, stopped.theta)
    alone = train_ensemble(architecture, descriptors, energies, train, validation, [1],
                           settings=TrainingSettings(**common, keep="last"), progress=False)
    torch.testing.assert_close(alone.theta[0], last.theta[1], rtol=1e-10, atol=1e-12)


def test_learning_rate_schedules():
    base = dict(optimizer="adam", learning_rate=0.01, lr_final=0.1)
    cosine = TrainingSettings(**base, lr_schedule="cosine")
    assert learning_rate(cosine, 0, 11) == pytest.approx(0.01)
    assert learning_rate(cosine, 5, 11) == pytest.approx(0.0055)
    assert learning_rate(cosine, 10, 11) == pytest.approx(0.001)
    exponential = TrainingSettings(**base, lr_schedule="exponential")
    assert learning_rate(exponential, 5, 11) == pytest.approx(0.01 * 0.1 ** 0.5)
    assert learning_rate(TrainingSettings(**base, lr_schedule="constant"), 7, 11) == 0.01


@pytest.mark.parametrize("bad", [{"optimizer": "sgd"}, {"lr_schedule": "linear"},
                                 {"keep": "first"},
                                 {"device": "gpu"}, {"batch_size": -1}, {"epochs": 0},
                                 {"learning_rate": 0.0}, {"lr_final": 2.0}])
def test_impossible_protocol_settings_are_refused_by_name(bad):
    with pytest.raises(TrainingSettingsError, match=next(iter(bad))):
        TrainingSettings(**bad)


@pytest.mark.skipif(CUDA, reason="this machine has a GPU: the refusal cannot happen here")
def test_cuda_without_a_gpu_is_refused_in_one_line(tmp_path, capsys):
    with pytest.raises(TrainingSettingsError, match="no CUDA GPU"):
        resolve_device("cuda")
    descriptors, energies = _synthetic()
    with pytest.raises(TrainingSettingsError, match="use --device cpu"):
        train_ensemble(Architecture((2,), "tanh"), descriptors, energies, [0, 1, 2], [3], [0],
                       settings=TrainingSettings(device="cuda"), progress=False)
    from toolkit.cli import main

    # refused before the (missing) data file is even looked at
    assert main(["fit", "--data", str(tmp_path / "missing.extxyz"), "--out",
                 str(tmp_path / "p"), "--device", "cuda"]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "no CUDA GPU" in error


@pytest.mark.skipif(not CUDA, reason="needs a CUDA GPU (torch.cuda.is_available() is False "
                    "here); scripts/gpu_sweep.sh runs it first on a GPU machine")
@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
def test_cuda_results_equal_cpu_results(optimizer):
    descriptors, energies = _synthetic(30)
    common = dict(max_iterations=25, patience=25, optimizer=optimizer, epochs=5, batch_size=6)
    runs = {device: train_ensemble(Architecture((6, 5), "tanh"), descriptors, energies,
                                   list(range(22)), list(range(22, 26)), [0, 1],
                                   settings=TrainingSettings(device=device, **common),
                                   progress=False)
            for device in ("cpu", "cuda")}
    assert runs["cuda"].theta.device.type == "cpu"
    torch.testing.assert_close(runs["cuda"].theta, runs["cpu"].theta, rtol=0, atol=1e-8)
    assert runs["cuda"].iterations == runs["cpu"].iterations
    np.testing.assert_allclose(runs["cuda"].validation_loss, runs["cpu"].validation_loss,
                               rtol=1e-8)


@pytest.mark.skipif(not CUDA, reason="needs a CUDA GPU (torch.cuda.is_available() is False "
                    "here); scripts/gpu_sweep.sh runs it first on a GPU machine")
def test_cuda_linear_sums_equal_cpu_results():
    """Linear networks on summed frames (built on the CPU, then moved) train the same
    members on cuda as on the CPU, to 1e-8."""
    descriptors, energies = _synthetic(30)
    runs = {device: train_ensemble(Architecture((6, 5), "linear"), descriptors, energies,
                                   list(range(22)), list(range(22, 26)), [0, 1],
                                   settings=TrainingSettings(device=device, max_iterations=25,
                                                             patience=25, linear_sums=True),
                                   progress=False)
            for device in ("cpu", "cuda")}
    torch.testing.assert_close(runs["cuda"].theta, runs["cpu"].theta, rtol=0, atol=1e-8)
    assert runs["cuda"].iterations == runs["cpu"].iterations
