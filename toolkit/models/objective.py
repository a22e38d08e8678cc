"""The loss on totals and its gradient for a batched ensemble, by hand, in chunks of frames.

Member m's loss is the mean over frames f of (t_f - sum_{i in f} e_i^m)^2 / N_f in
normalised units (:func:`toolkit.models.training.loss` is the same function through
autograd and is the reference for this one in the tests, to 1e-12).

Why by hand (measured on this project's 2-core machine, float64, one thread, see
``make bench`` ``training_speed``): the autograd version of a 5-member tanh-16 step on 210
Ar frames spent its time in ``tanh`` and ``tanh_backward`` on (5, 22,680, 16) tensors
(5-8 ns per element: the tensors do not fit in cache) and in a batched matmul that reads
the descriptors once per member. Here
- the first layer of all M members is one matrix product x (n, D) @ W (D, M H): the
  descriptors are read once for all members;
- frames are processed in chunks whose intermediates (chunk atoms x M x H) stay in cache,
  and the backward pass of a chunk runs right after its forward pass; autograd would keep
  the activations of every atom (3 GB for width 500, 2,000 frames, 5 members) and stream
  them through memory twice;
- per-frame sums are reshapes wherever every frame has the same number of atoms of a
  species (deterministic on a GPU too, where ``index_add_`` adds with atomics);
- networks with linear activations can train on :meth:`PackedFrames.summed` frames: one
  row per frame and species, the mean of its atoms' rows, whose output times the atom count
  is the sum of the atoms' outputs (the same loss and gradient, summed in another order,
  on 54-108x fewer rows for 108-atom frames of one or two species; ``[training]
  linear_sums``).

Members stay independent: member m's value and gradient depend only on theta[m].
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from toolkit.models.networks import EnsembleNetworks

# Chunk size: atoms x widest layer, about this many elements per member (so 2^18 for five
# members: 2 MB of float64 per intermediate, the L2 cache of one core here), but at least
# MIN_CHUNK_ATOMS atoms (each chunk costs ~40 small torch calls, ~0.2 ms). Measured here
# (5-member value and gradient, 210 Ar frames, one thread, process CPU time): 2^17-2^19
# elements in all were fastest at widths 16, 64 and 500; 2^21 (one 1,024-atom chunk at
# width 500) was 5x slower than 2^18, autograd on whole tensors 2-3x slower. The chunks do
# not depend on the number of members, so a member's sums are grouped the same way
# whichever members it is evaluated with. On a GPU chunks are large: their overhead is a
# few kernel launches, and fewer, larger matrix products keep the device busy.
CPU_CHUNK_ELEMENTS = 1 << 16
GPU_CHUNK_ELEMENTS = 1 << 25  # 1.3 GB per intermediate for 5 members: three sweep
# processes of two-layer width-500 networks share an 80 GB GPU
MIN_CHUNK_ATOMS = 128


@dataclass
class PackedSpecies:
    """The atoms of one species, rows grouped by frame in frame order."""

    x: torch.Tensor  # (n, D + 1) standardised descriptors and a column of ones
    frame: torch.Tensor  # (n,) int64, frame of each row
    offsets: np.ndarray  # (F + 1,) first row of each frame; frame f is rows offsets[f]:[f+1]
    per_frame: int | None  # atoms of this species in every frame, if the same in all
    # rows of :meth:`PackedFrames.summed` frames: the atoms each row (a mean) stands for
    count: torch.Tensor | None = None


@dataclass
class PackedFrames:
    """Training frames laid out for :func:`value` and :func:`value_and_grad`."""

    species: list[PackedSpecies | None]
    target: torch.Tensor  # (F,) normalised totals
    n_atoms: torch.Tensor  # (F,) atoms per frame (float), divided by the frame's loss weight
    atoms_per_frame: np.ndarray  # (F,) the same on the host, for chunking

    @property
    def n_frames(self) -> int:
        return int(self.target.shape[0])

    @property
    def device(self) -> torch.device:
        return self.target.device

    @classmethod
    def pack(cls, blocks, target: torch.Tensor, n_atoms: torch.Tensor,
             device: torch.device | str = "cpu",
             weight: torch.Tensor | None = None) -> PackedFrames:
        """From per-species blocks (``x``, ``frame``; see :class:`training.FrameSet`).

        ``weight``: per-frame loss weights w_f. Frame f's term w_f (t_f - E_f)^2 / N_f is
        (t_f - E_f)^2 / (N_f / w_f), so the weights are folded into :attr:`n_atoms`; the
        chunking keeps the true atom counts (:attr:`atoms_per_frame`).
        """
        n_frames = int(target.shape[0])
        species: list[PackedSpecies | None] = []
        for block in blocks:
            if block is None:
                species.append(None)
                continue
            frame = block.frame.cpu().numpy()
            order = np.argsort(frame, kind="stable")
            counts = np.bincount(frame, minlength=n_frames)
            x = _with_ones(block.x.cpu()[torch.from_numpy(order)])
            species.append(_species(x, counts, device))
        counts = n_atoms.cpu().numpy()
        scaled = n_atoms if weight is None else n_atoms / weight.to(n_atoms.dtype)
        return cls(species, target.to(device), scaled.to(device), counts.astype(np.int64))

    def reordered(self, order: np.ndarray) -> PackedFrames:
        """The same frames in the order ``order`` (new frame k is old frame order[k])."""
        order = np.asarray(order, dtype=np.int64)
        index = torch.from_numpy(order).to(self.device)
        species: list[PackedSpecies | None] = []
        for block in self.species:
            if block is None:
                species.append(None)
                continue
            counts = np.diff(block.offsets)[order]
            starts = block.offsets[:-1][order]
            new_starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
            rows = np.repeat(starts - new_starts, counts) + np.arange(int(counts.sum()))
            rows = torch.from_numpy(rows).to(self.device)
            count = None if block.count is None else block.count.index_select(0, rows)
            species.append(_species(block.x.index_select(0, rows), counts, self.device, count))
        return PackedFrames(species, self.target.index_select(0, index),
                            self.n_atoms.index_select(0, index), self.atoms_per_frame[order])

    @property
    def is_summed(self) -> bool:
        return any(b is not None and b.count is not None for b in self.species)

    def summed(self) -> PackedFrames:
        """The same frames with each species' atoms of a frame replaced by one row, their
        mean, standing for their count (:attr:`PackedSpecies.count`).

        For networks with linear activations only: such a network's output is an affine
        function a . x + c of its input row, so count x output(mean of the rows) equals the
        sum of the outputs on the rows, and each frame's total, the loss and its gradient
        are those of the atom rows. Refused by :func:`value` for other activations.
        """
        if self.is_summed:
            return self
        n_frames = self.n_frames
        species: list[PackedSpecies | None] = []
        rows = np.zeros(n_frames, dtype=np.int64)
        for block in self.species:
            if block is None:
                species.append(None)
                continue
            counts = np.diff(block.offsets)
            present = np.flatnonzero(counts > 0)
            # summed on the CPU: a GPU's index_add_ adds with atomics, in no fixed order
            x = block.x.cpu()
            sums = torch.zeros(n_frames, x.shape[1], dtype=x.dtype).index_add_(
                0, block.frame.cpu(), x)
            count = torch.from_numpy(counts[present]).to(x.dtype)
            x = sums[torch.from_numpy(present)] / count.unsqueeze(1)
            species.append(_species(x, (counts > 0).astype(np.int64), self.device, count))
            rows += counts > 0
        return PackedFrames(species, self.target, self.n_atoms, rows)

    def chunks(self, start: int, stop: int, width: int,
               budget: int) -> list[tuple[int, int]]:
        """Frame ranges [a, b) covering [start, stop): about ``budget`` elements of ``width``
        per atom, at least :data:`MIN_CHUNK_ATOMS` atoms, at least one frame."""
        per_frame = int(self.atoms_per_frame[start:stop].max()) if stop > start else 1
        atoms = max(MIN_CHUNK_ATOMS, budget // max(1, width))
        frames = max(1, atoms // max(1, per_frame))
        return [(a, min(a + frames, stop)) for a in range(start, stop, frames)]


def _species(x: torch.Tensor, counts: np.ndarray, device,
             count: torch.Tensor | None = None) -> PackedSpecies:
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    frame = torch.from_numpy(np.repeat(np.arange(len(counts), dtype=np.int64), counts))
    uniform = len(counts) > 0 and counts[0] > 0 and bool(np.all(counts == counts[0]))
    return PackedSpecies(x.contiguous().to(device), frame.to(device), offsets,
                         int(counts[0]) if uniform else None,
                         None if count is None else count.to(device))


def _with_ones(x: torch.Tensor) -> torch.Tensor:
    """(n, D) -> (n, D + 1) with a last column of ones: the first layer's bias is a weight."""
    return torch.cat([x, torch.ones(x.shape[0], 1, dtype=x.dtype, device=x.device)], dim=1)


def chunk_elements(device: torch.device) -> int:
    """Chunk budget per member (see CPU_CHUNK_ELEMENTS)."""
    return GPU_CHUNK_ELEMENTS if device.type == "cuda" else CPU_CHUNK_ELEMENTS


# -- the networks, forward and backward -------------------------------------------------------
# Activations are (n, M, H) tensors, i.e. (n, M H) matrices: member m's units are columns
# m H .. m H + H - 1. Layers from one unit per member (output layers) use a block-diagonal
# (M H, M) weight matrix, so they are one matrix product too (M times the flops of that
# small layer, in exchange for one pass over the activations instead of several).


def _block_diagonal(w: torch.Tensor) -> torch.Tensor:
    """(M, H) rows -> (M H, M) matrix with row block m holding w[m] in column m."""
    m, h = w.shape
    eye = torch.eye(m, dtype=w.dtype, device=w.device)
    return (w.unsqueeze(2) * eye.unsqueeze(1)).reshape(m * h, m)


class Workspace:
    """Buffers reused by every chunk of one evaluation.

    Fresh multi-megabyte tensors per chunk are new pages for the OS to fault in (measured
    here: a 2 MB ``addcmul`` into a fresh tensor took 22 ns per element, in place 1.5 ns), so
    the large per-chunk tensors live in buffers made once per evaluation.
    """

    def __init__(self) -> None:
        self._buffers: dict[tuple, torch.Tensor] = {}

    def get(self, key: tuple, shape: tuple[int, ...], like: torch.Tensor) -> torch.Tensor:
        numel = 1
        for size in shape:
            numel *= size
        buffer = self._buffers.get(key)
        if buffer is None or buffer.numel() < numel:
            buffer = torch.empty(numel, dtype=like.dtype, device=like.device)
            self._buffers[key] = buffer
        return buffer[:numel].view(shape)


def _forward(networks: EnsembleNetworks, layers, x: torch.Tensor, keep: bool,
             work: Workspace, tag: int) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Outputs (n, M) of all members for rows x (n, D + 1; last column ones).

    With ``keep``, the activations of the hidden layers, (n, M, H) each (the activation
    function is applied in place: they are the outputs, not the pre-activations); they sit
    in ``work`` buffers tagged ``tag`` until the next chunk.
    """
    m = layers[0][0].shape[0]
    n = x.shape[0]
    w, b = layers[0]
    n_out = w.shape[1]
    first = torch.cat([w, b.unsqueeze(2)], dim=2).reshape(m * n_out, -1)  # (M H, D + 1)
    h = torch.mm(x, first.t(), out=work.get((tag, 0), (n, m * n_out), x)).view(n, m, n_out)
    kept = []
    activation = networks.architecture.activation
    for index, (w, b) in enumerate(layers[1:], start=1):
        h = _activate(h, activation)
        if keep:
            kept.append(h)
        n_in, n_out = w.shape[2], w.shape[1]
        if n_out == 1:  # one output per member
            h = torch.addmm(b.reshape(1, m), h.view(n, m * n_in), _block_diagonal(w[:, 0, :]))
            h = h.view(n, m, 1)
        else:  # hidden to hidden: one matrix per member, then back to (n, M, K)
            z = torch.baddbmm(b.unsqueeze(1), h.transpose(0, 1), w.transpose(1, 2),
                              out=work.get((tag, index, "t"), (m, n, n_out), x))
            h = work.get((tag, index), (n, m, n_out), x)
            h.copy_(z.transpose(0, 1))
    return h.view(n, m), kept


def _activate(h: torch.Tensor, activation: str) -> torch.Tensor:
    if activation == "tanh":
        return h.tanh_()
    if activation == "sigmoid":
        return h.sigmoid_()
    if activation == "relu":
        return h.relu_()
    return h


def _backward(networks: EnsembleNetworks, layers, grads, x: torch.Tensor,
              kept: list[torch.Tensor], de: torch.Tensor, work: Workspace) -> None:
    """Add d(loss)/d(parameters) of these rows to ``grads`` (views into the gradient).

    ``de`` (n, M): d(loss)/d(atomic output). The kept activations are overwritten.
    """
    n, m = de.shape
    activation = networks.architecture.activation
    upstream = de.view(n, m, 1)  # d(loss)/d(this layer's output), (n, M, n_out)
    for index in range(len(layers) - 1, 0, -1):
        w, _ = layers[index]
        gw, gb = grads[index]
        a = kept[index - 1]  # (n, M, H): this layer's input
        n_out, n_in = w.shape[1], w.shape[2]
        gb.add_(upstream.sum(0))
        da = work.get(("da",), (n, m, n_in), x)
        if n_out == 1:
            # one unit per member: the output layer (upstream is ``de``) or a hidden layer of
            # width 1 (upstream is the ``da`` buffer below, so copied out before it is reused)
            up = upstream.reshape(n, m)
            if index < len(layers) - 1:
                up = work.get(("up",), (n, m), x).copy_(up)
            full = up.t() @ a.view(n, m * n_in)  # (M, M H); member m's block is row m
            gw[:, 0, :].add_(torch.diagonal(full.view(m, m, n_in), dim1=0, dim2=1).t())
            torch.mm(up, _block_diagonal(w[:, 0, :]).t(), out=da.view(n, m * n_in))
        else:
            up = upstream.transpose(0, 1)  # (M, n, K)
            gw.add_(torch.bmm(up.transpose(1, 2), a.transpose(0, 1)))
            da.copy_(torch.bmm(up, w, out=work.get(("da", "t"), (m, n, n_in), x))
                     .transpose(0, 1))
        # the next layer down reads upstream (this buffer) into its own "t" buffer before
        # it overwrites this one, so one da buffer serves every layer
        upstream = _times_derivative(da, a, activation)
    gw, gb = grads[0]
    n_out = gw.shape[1]
    full = upstream.reshape(n, m * n_out).t() @ x  # (M H, D + 1): weights and bias
    full = full.view(m, n_out, -1)
    gw.add_(full[:, :, :-1])
    gb.add_(full[:, :, -1])


def _times_derivative(da: torch.Tensor, a: torch.Tensor, activation: str) -> torch.Tensor:
    """da * f'(z) from the activation a = f(z), in place in ``da``; overwrites a."""
    if activation == "tanh":  # f' = 1 - a^2
        return da.addcmul_(da, a.mul_(a), value=-1.0)
    if activation == "sigmoid":  # f' = a - a^2
        return da.mul_(a.sub_(a * a))
    if activation == "relu":
        return da.mul_(a > 0)
    return da


def _chunk(networks: EnsembleNetworks, theta: torch.Tensor, frames: PackedFrames,
           first: int, last: int, n_total: int, grad: torch.Tensor | None,
           work: Workspace) -> torch.Tensor:
    """Loss contribution (M,) of frames [first, last); adds their gradient to ``grad``."""
    m = theta.shape[0]
    totals = torch.zeros(last - first, m, dtype=theta.dtype, device=theta.device)
    saved = []
    for s, block in enumerate(frames.species):
        if block is None:
            continue
        r0, r1 = int(block.offsets[first]), int(block.offsets[last])
        if r1 == r0:
            continue
        layers = networks.unpack(theta, s)
        x = block.x[r0:r1]
        e, kept = _forward(networks, layers, x, grad is not None, work, s)
        if block.count is not None:  # rows are means: output x atoms = the atoms' sum
            e = e * block.count[r0:r1].unsqueeze(1)
        if block.per_frame is not None:
            totals += e.view(last - first, block.per_frame, m).sum(1)
        else:
            totals.index_add_(0, block.frame[r0:r1] - first, e)
        saved.append((s, block, layers, x, kept, r0, r1))
    target = frames.target[first:last].unsqueeze(1)
    n_atoms = frames.n_atoms[first:last].unsqueeze(1)
    difference = totals - target
    value = (difference * difference / n_atoms).sum(0) / n_total
    if grad is not None:
        residual = 2.0 * difference / (n_atoms * n_total)  # d(loss)/d(total), (F_chunk, M)
        for s, block, layers, x, kept, r0, r1 in saved:
            if block.per_frame is not None:
                de = residual.unsqueeze(1).expand(-1, block.per_frame, -1).reshape(-1, m)
            else:
                de = residual.index_select(0, block.frame[r0:r1] - first)
            if block.count is not None:
                de = de * block.count[r0:r1].unsqueeze(1)
            _backward(networks, layers, networks.unpack(grad, s), x, kept, de, work)
    return value


def value(networks: EnsembleNetworks, theta: torch.Tensor, frames: PackedFrames,
          start: int = 0, stop: int | None = None,
          budget: int | None = None) -> torch.Tensor:
    """Loss (M,) of every member on frames [start, stop) (default all), no gradient."""
    _check_summed(networks, frames)
    stop = frames.n_frames if stop is None else stop
    budget = budget or chunk_elements(theta.device)
    width = _width(networks, theta)
    total = torch.zeros(theta.shape[0], dtype=theta.dtype, device=theta.device)
    work = Workspace()
    with torch.no_grad():
        for first, last in frames.chunks(start, stop, width, budget):
            total += _chunk(networks, theta, frames, first, last, stop - start, None, work)
    return total


def value_and_grad(networks: EnsembleNetworks, theta: torch.Tensor, frames: PackedFrames,
                   start: int = 0, stop: int | None = None,
                   budget: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Loss (M,) and its gradient (M, P) with respect to each member's own parameters."""
    _check_summed(networks, frames)
    stop = frames.n_frames if stop is None else stop
    budget = budget or chunk_elements(theta.device)
    width = _width(networks, theta)
    theta = theta.detach()
    grad = torch.zeros_like(theta)
    total = torch.zeros(theta.shape[0], dtype=theta.dtype, device=theta.device)
    work = Workspace()
    with torch.no_grad():
        for first, last in frames.chunks(start, stop, width, budget):
            total += _chunk(networks, theta, frames, first, last, stop - start, grad, work)
    return total, grad


def _check_summed(networks: EnsembleNetworks, frames: PackedFrames) -> None:
    if frames.is_summed and networks.architecture.activation != "linear":
        raise ValueError("summed frames (one mean row per frame and species) give the atoms' "
                         "totals only for linear activations, not "
                         f"{networks.architecture.activation!r}")


def _width(networks: EnsembleNetworks, theta: torch.Tensor) -> int:
    """Elements per atom and member of a chunk's largest intermediate: the widest layer."""
    return max(n_out for _, n_out in networks.layers)
