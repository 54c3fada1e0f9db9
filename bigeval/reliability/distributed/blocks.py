"""The pedigree partitioned into blocks: the Part I/III iteration as block-sparse operations.

The scheme
----------
Animals are put in an order where parents come before their progeny (the renumbering of
:func:`bigeval.prepare.prepare`, by generation then ID, already is one; any other numbering is
sorted by :func:`bigeval.pedigree.topological_order`), and that order is cut into ``B``
contiguous blocks of about ``block_size`` animals. Parents and progeny then mostly fall in
the same or nearby blocks.

One round of the iteration (:mod:`bigeval.reliability.kernel`: gather → family solve →
scatter → damp) becomes, per block:

1. **gather** — block X needs the current ERC of its animals' parents. Those in another block
   P form the *halo* of X from P: ``d_P[halo_index(P→X)]``. With ``S_XP`` the 0/1 matrix
   "child in X, sire in P" (and ``M_XP`` for dams), the gather is the block-sparse product
   ``b_s[X] = Σ_P S_XP d[P]``, with a term only for the non-empty pairs (X, P).
2. **family solve** — the 10-step family solve for the families whose child is in X (each
   family is solved exactly once, in its child's block), giving ``r_a``, ``r_s``, ``r_m``.
3. **scatter** — block P adds up the contributions to its parents,
   ``progeny[P] = Σ_X S_XPᵀ r_s[X] + M_XPᵀ r_m[X]``: the transposed product over the same
   non-empty pairs. Block X sends P only the contributions of the entries whose parent is in P
   (``send_index(X→P)``).
4. **damp** — ``d ← (d + d⁰ + r_a + progeny)/2`` for the block's animals, and the block's
   largest change of reliability.

The (child block, parent block) pairs that have at least one entry are the only exchanges;
with generation-ordered blocks a block's parents lie in itself and a few older blocks.

Exactness. The per-block steps are the in-memory engine's own numba kernels run on the
block's local arrays, so the arithmetic per family is the same. The one place where order
matters is the sum over a parent's progeny: the in-memory engine adds a parent's entries
sorted by the entry number (``c`` for the sire share of child ``c``, ``N + c`` for the dam
share, in the caller's numbering); each parent block sorts its own and the received entries
the same way before summing, so the blocked iteration gives **bit-identical** results to
:func:`bigeval.reliability.engine.iterate`, for every block size, animal numbering and
scheduler (no sum depends on how many blocks or workers there are). With
``partition(presum=True)`` a block sends instead one sum per parent (the combiner of a
distributed sparse product: 4–5× fewer values between workers); the sum over a parent's
progeny is then associated by block, and the results equal the in-memory engine's to
rounding (≤ 1e-12), the same for every scheduler and worker count given the partition.

The own-record ERC of the start vector is computed blockwise as well
(:func:`own_record_erc_blocks`): records in chunks, contemporary-group sizes as a sum of
per-chunk counts, the Tier & Meyer relatives counted per block of contemporary groups, and
each animal block summing its records' contributions in record order (so again equal to the
in-memory :func:`bigeval.reliability.erc.own_record_erc` bit for bit).

This module holds the plan (:func:`partition`), the per-block steps (:func:`solve_block`,
:func:`update_block`) and the in-memory driver (:func:`iterate_blocks`);
:mod:`bigeval.reliability.distributed.dask_engine` runs the same steps as a Dask graph.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field

import numba
import numpy as np

from bigeval.defaults import ROUNDS
from bigeval.errors import InputError
from bigeval.reliability import kernel

#: Default animals per block: large blocks keep the per-round overhead of a distributed run
#: small (a round of 1 M animals is ~20 ms of arithmetic).
DEFAULT_BLOCK_SIZE = 500_000
#: Entry ranges per block for the multi-threaded scatter (cut where the parent changes).
SCATTER_CHUNKS = 64


@dataclass(frozen=True)
class BlockPlan:
    """What one block needs for its share of a round, in the block's local numbering.

    Attributes
    ----------
    index
        Block number X.
    animals
        The block's animals in the caller's numbering (length n_X), in block order.
    halo_blocks
        Blocks P ≠ X holding parents of X's animals, ascending; X receives their halo values
        and sends them contributions, in this order.
    halo_index
        Per halo block: positions within P of the parents X needs, ascending.
    sire_loc, dam_loc
        Per animal of X, its sire's (dam's) index into ``concat(d_X, halo_1, halo_2, …)``;
        -1 unknown (length n_X).
    send_index
        Per halo block P: indices into X's ``r = concat(r_s, r_m)`` (length 2 n_X) of the
        entries whose parent is in P, ascending.
    recv_blocks
        Blocks X ≠ P that send contributions to this block's parents, ascending.
    parent, entry, bounds
        The scatter of :func:`bigeval.reliability.kernel.sum_contributions` over
        ``concat(r_P, received_1, received_2, …)``: entries sorted by parent, then by the
        global entry number (the in-memory engine's order).
    n_received
        Contributions received from other blocks per round (the length of ``received_*``).
    ranges
        ``((lo, hi, class), …)``: the block's animals ``lo..hi-1`` (local numbering) by class,
        1 = has a parent in another block, 2 = has progeny in another block, 3 = both, 0 =
        neither (``partition(groups=…)``); empty: one range of the whole block.
    send_slot, send_bounds
        With ``partition(presum=True)``: per halo block P, the slot of each entry of
        ``send_index`` (its parent's position in ``halo_index``; sorted, then by entry
        number) and the entry ranges of the threads: X sends P one sum per parent instead of
        each contribution. Empty: each contribution is sent.
    """

    index: int
    animals: np.ndarray
    halo_blocks: tuple[int, ...]
    halo_index: tuple[np.ndarray, ...] = field(repr=False)
    sire_loc: np.ndarray = field(repr=False)
    dam_loc: np.ndarray = field(repr=False)
    send_index: tuple[np.ndarray, ...] = field(repr=False)
    recv_blocks: tuple[int, ...] = ()
    parent: np.ndarray = field(default=None, repr=False)
    entry: np.ndarray = field(default=None, repr=False)
    bounds: np.ndarray = field(default=None, repr=False)
    n_received: int = 0
    ranges: tuple[tuple[int, int, int], ...] = ()
    send_slot: tuple[np.ndarray, ...] = field(default=(), repr=False)
    send_bounds: tuple[np.ndarray, ...] = field(default=(), repr=False)

    @property
    def n(self) -> int:
        return len(self.animals)

    def send_plan(self, i: int) -> tuple:
        """What :func:`send_values` needs for the contributions to ``halo_blocks[i]``."""
        if self.send_slot:
            return (self.send_index[i], self.send_slot[i], self.send_bounds[i],
                    len(self.halo_index[i]))
        return (self.send_index[i],)

    def row_ranges(self) -> tuple[tuple[int, int, int], ...]:
        """``ranges``, or the whole block as one range whose class says whether it has halo
        blocks (1) and receives contributions (2)."""
        if self.ranges:
            return self.ranges
        return ((0, self.n, int(bool(self.halo_blocks)) + 2 * int(bool(self.recv_blocks))),)

    @property
    def nbytes(self) -> int:
        arrays = (self.animals, self.sire_loc, self.dam_loc, self.parent, self.entry,
                  self.bounds, *self.halo_index, *self.send_index, *self.send_slot,
                  *self.send_bounds)
        return int(sum(a.nbytes for a in arrays))


@dataclass(frozen=True)
class Partition:
    """The pedigree cut into blocks, with every block's plan.

    Attributes
    ----------
    n_animals
        N.
    bounds
        Block X holds the animals ``order[bounds[X]:bounds[X+1]]`` (length B + 1).
    order
        The block order: ``order[k]`` is the caller's number of the k-th animal (length N).
    blocks
        One :class:`BlockPlan` per block.
    group
        With ``partition(..., groups=W)``: the group (worker) of each block; else None.
    sire, dam
        The pedigree in the caller's numbering (for
        :func:`bigeval.reliability.kernel.informative`).
    """

    n_animals: int
    bounds: np.ndarray
    order: np.ndarray = field(repr=False)
    blocks: tuple[BlockPlan, ...] = field(repr=False)
    group: np.ndarray | None = field(default=None, repr=False)
    sire: np.ndarray | None = field(default=None, repr=False)
    dam: np.ndarray | None = field(default=None, repr=False)

    @property
    def n_blocks(self) -> int:
        return len(self.blocks)

    @property
    def pairs(self) -> list[tuple[int, int]]:
        """The non-empty (child block, parent block) pairs with child block ≠ parent block."""
        return [(b.index, p) for b in self.blocks for p in b.halo_blocks]

    def worker_of_blocks(self, n_workers: int) -> list[int]:
        """The worker (0..W-1, W = min(n_workers, groups or blocks)) of each block: the
        planned groups (``partition(groups=…)``) spread over the workers, else contiguous
        runs of blocks.

        Examples
        --------
        >>> part = partition([-1, -1, 0, 0, 3, 4], [-1, -1, 1, -1, 2, 1], n_blocks=3)
        >>> part.worker_of_blocks(2), part.worker_of_blocks(8)
        ([0, 0, 1], [0, 1, 2])
        """
        if self.group is not None:
            ng = int(max(self.group)) + 1
            nw = max(1, min(n_workers, ng))
            return [int(g) * nw // ng for g in self.group]
        nb = self.n_blocks
        nw = max(1, min(n_workers, nb))
        return [x * nw // nb for x in range(nb)]

    def split(self, values) -> list[np.ndarray]:
        """Per-animal values (caller's numbering, length N) cut into the blocks' pieces."""
        values = np.asarray(values)
        if len(values) != self.n_animals:
            raise ValueError(f"expected {self.n_animals} values, got {len(values)}")
        return [values[b.animals] for b in self.blocks]

    def join(self, pieces, dtype=np.float64) -> np.ndarray:
        """The inverse of :meth:`split`: one array in the caller's numbering."""
        out = np.empty(self.n_animals, dtype=dtype)
        for b, piece in zip(self.blocks, pieces):
            out[b.animals] = piece
        return out

    def describe(self) -> str:
        sizes = np.diff(self.bounds)
        halo = sum(len(h) for b in self.blocks for h in b.halo_index)
        sent = sum(len(s) for b in self.blocks for s in b.send_index)
        presum = any(b.send_slot for b in self.blocks)
        text = (f"{self.n_blocks} blocks of {sizes.min():,}–{sizes.max():,} animals, "
                f"{len(self.pairs)} non-empty block pairs; per round {halo:,} parent values "
                f"and {sent:,} contributions cross blocks"
                + (f" (as {halo:,} sums per parent)" if presum else ""))
        if self.group is not None:
            g = np.asarray(self.group)
            ng = int(g.max()) + 1
            if ng == self.n_blocks:
                return text + "; one block per worker, its rows by what crosses workers"
            cross = sum(len(h) for b in self.blocks for P, h in zip(b.halo_blocks, b.halo_index)
                        if g[P] != g[b.index])
            text += (f"; {ng} groups (one per worker), {cross:,} parent values cross "
                     "groups")
        return text


def _block_bounds(n: int, block_size: int | None, n_blocks: int | None) -> np.ndarray:
    if n_blocks is None:
        size = DEFAULT_BLOCK_SIZE if block_size is None else int(block_size)
        if size < 1:
            raise InputError("block size must be at least 1", value=block_size,
                             remedy="give a block size ≥ 1 (e.g. 500000)")
        n_blocks = max(1, -(-n // size))
    elif block_size is not None:
        raise ValueError("give block_size or n_blocks, not both")
    n_blocks = int(min(max(n_blocks, 1), max(n, 1)))
    return np.linspace(0, n, n_blocks + 1).round().astype(np.int64)


def _thread_bounds(parent: np.ndarray, n_chunks: int) -> np.ndarray:
    """Entry ranges cut only where the parent changes (as kernel.contribution_index)."""
    e = len(parent)
    if e == 0:
        return np.zeros(1, np.int64)
    want = np.linspace(0, e, n_chunks + 1).astype(np.int64)[1:-1]
    starts = np.searchsorted(parent, parent[np.minimum(want, e - 1)], side="left")
    return np.unique(np.concatenate([[0], starts, [e]])).astype(np.int64)


#: The cost of adding one contribution to its parent, relative to an animal's gather, family
#: solve and damping (measured at 1 M animals on one thread: 4.5 ns per entry against 20 ns
#: per animal); :func:`partition` weighs the groups of workers by it.
ENTRY_COST = 0.23


def _group_order(sire, dam, order, groups: int, presum: bool = False):
    """Groups for ``groups`` workers: the order cut into contiguous groups of equal work
    (an animal weighs 1 + :data:`ENTRY_COST` × its progeny entries: the solve of its family
    and the sums of its progeny; with ``presum`` the entries from another group are summed
    by the child's group, and weigh there), each group's animals then put in classes by
    whether they have a parent in another group ("import", 1) and progeny in another group
    ("export", 2).

    Returns (order, group bounds, per group its class ranges ``((lo, hi, class), …)`` in the
    group's local numbering). Within a group the classes come in the order interior, import,
    export, both; the original order is kept inside a class.
    """
    n = len(order)
    rank = np.empty(n, np.int64)
    rank[order] = np.arange(n, dtype=np.int64)
    par = np.concatenate([sire, dam])
    known = np.flatnonzero(par >= 0)
    kid = known % n if n else known
    par = par[known]

    def cut(weight):
        cum = np.cumsum(weight[order])
        total = float(cum[-1]) if n else 0.0
        cuts = np.searchsorted(cum, total * np.arange(1, groups) / groups, side="left") + 1
        return np.unique(np.concatenate([[0], np.clip(cuts, 1, max(n, 1)), [n]])).astype(
            np.int64)

    weight = 1.0 + ENTRY_COST * np.bincount(par, minlength=n)
    gb = cut(weight)
    for _ in range(2 if presum else 0):  # the cross entries' work moves to the child
        g = np.searchsorted(gb, rank, side="right") - 1
        cross = g[kid] != g[par]
        weight = (1.0 + ENTRY_COST * np.bincount(par[~cross], minlength=n)
                  + ENTRY_COST * np.bincount(kid[cross], minlength=n))
        gb = cut(weight)
    if n == 0:
        gb = np.zeros(2, np.int64)
    grp = np.searchsorted(gb, rank, side="right") - 1
    cross = grp[kid] != grp[par]
    remote_parent = np.zeros(n, bool)
    remote_progeny = np.zeros(n, bool)
    remote_parent[kid[cross]] = True
    remote_progeny[par[cross]] = True
    cls = remote_parent.astype(np.int64) + 2 * remote_progeny
    new = np.lexsort((rank, cls, grp)).astype(np.int64)
    ranges = []
    for g in range(len(gb) - 1):
        c = cls[new[gb[g]:gb[g + 1]]]
        starts = np.flatnonzero(np.concatenate([[True], c[1:] != c[:-1]])) if len(c) else \
            np.zeros(0, np.int64)
        ends = np.concatenate([starts[1:], [len(c)]])
        ranges.append(tuple((int(lo), int(hi), int(c[lo])) for lo, hi in zip(starts, ends)))
    return new, gb, ranges


def partition(sire, dam, *, block_size: int | None = None, n_blocks: int | None = None,
              order: np.ndarray | None = None, groups: int | None = None,
              presum: bool = False) -> Partition:
    """Cut a pedigree into blocks of contiguous, parents-first animals and plan each block.

    Parameters
    ----------
    sire, dam
        Parents of each animal (length N, any numbering, -1 unknown); array-likes (numpy,
        Zarr, …) are read into memory.
    block_size, n_blocks
        Animals per block (default :data:`DEFAULT_BLOCK_SIZE`), or the number of blocks.
    order
        The block order (a permutation of 0..N-1 with parents first). Default: the caller's
        numbering when parents already come first (as after :func:`bigeval.prepare.prepare`),
        else :func:`bigeval.pedigree.topological_order`.
    groups
        Plan for this many workers instead of ``block_size``/``n_blocks``: one block per
        worker, the order cut where the work (:data:`ENTRY_COST`) is split evenly, and each
        block's animals put in up to four row ranges (``BlockPlan.ranges``) by whether they
        have a parent in another block and progeny in another block. A worker holding a
        block can then solve the families that need no other worker first, and update first
        the animals no other worker sends to (:mod:`bigeval.reliability.distributed.resident`),
        all in
        one block's arrays (no copies between blocks of the same worker).
    presum
        A block sends each other block the sum of its contributions per parent (one value
        per parent of its halo) instead of every contribution: at 1 M animals in 2 blocks,
        116 836 values a round instead of 566 195. A parent then adds the sums of other
        blocks where their first entry would be, so the result equals the in-memory
        engine's to rounding (the sum over a parent's progeny is associated differently),
        not bit for bit.

    Returns
    -------
    Partition

    Examples
    --------
    Mrode (2014) Table 2.1 (animals 0..5) in blocks of 3: block 1's animals 3..5 have parents
    0, 1 and 2 in block 0.

    >>> p = partition([-1, -1, 0, 0, 3, 4], [-1, -1, 1, -1, 2, 1], block_size=3)
    >>> p.pairs, [int(i) for i in p.blocks[1].halo_index[0]]
    ([(1, 0)], [0, 1, 2])
    """
    sire = np.asarray(sire, dtype=np.int64)
    dam = np.asarray(dam, dtype=np.int64)
    n = len(sire)
    if len(dam) != n:
        raise ValueError("sire and dam differ in length")
    ar = np.arange(n, dtype=np.int64)
    if order is None:
        from bigeval.pedigree import parents_first_order

        order = parents_first_order(sire, dam)
    order = np.asarray(order, dtype=np.int64)
    if len(order) != n or not np.array_equal(np.sort(order), ar):
        raise ValueError("order must be a permutation of 0..N-1")
    group_of_block = None
    ranges = None
    if groups is not None:
        if block_size is not None or n_blocks is not None:
            raise ValueError("give groups, or block_size / n_blocks, not both")
        order, bounds, ranges = _group_order(sire, dam, order, max(1, int(groups)), presum)
        group_of_block = np.arange(len(bounds) - 1, dtype=np.int64)
    else:
        bounds = _block_bounds(n, block_size, n_blocks)
    nb = len(bounds) - 1
    size = np.diff(bounds)
    rank = np.empty(n, np.int64)
    rank[order] = ar
    blk = np.repeat(np.arange(nb, dtype=np.int64), size)[rank]
    pos = rank - bounds[blk]

    # entries e in [0, 2N): the sire share of child e (e < N) or the dam share of child e - N
    par = np.concatenate([sire, dam])
    e = np.flatnonzero(par >= 0)
    child = np.where(e < n, e, e - n)
    p = par[e]
    cb, pb = blk[child], blk[p]
    jloc = pos[child] + np.where(e < n, 0, size[cb])  # index into the child block's r
    cross = cb != pb
    stride = int(size.max()) + 1

    # halo: distinct (child block, parent block, parent position) of the cross entries
    hkey = (cb[cross] * nb + pb[cross]) * stride + pos[p[cross]]
    ukey = np.unique(hkey)
    u_cb = ukey // stride // nb
    u_pb = ukey // stride % nb
    u_pos = ukey % stride
    ploc = pos[p].copy()  # the parent's local index in the child block's gather vector
    first_of_cb = np.searchsorted(u_cb, np.arange(nb + 1))
    hpos = np.searchsorted(ukey, hkey)  # each cross entry's halo key
    ploc[cross] = size[cb[cross]] + hpos - first_of_cb[cb[cross]]
    sire_loc = np.full(n, -1, np.int64)
    dam_loc = np.full(n, -1, np.int64)
    is_s = e < n
    sire_loc[child[is_s]] = ploc[is_s]
    dam_loc[child[~is_s]] = ploc[~is_s]

    ce = np.flatnonzero(cross)  # the cross entries, ascending entry number
    ce_pair = cb[ce] * nb + pb[ce]
    if presum:
        # X sends P one value per parent of its halo from P (the same order): the sum of the
        # contributions of X's children to it, in entry order
        u_pair = u_cb * nb + u_pb
        upairs, hstart, pcount = np.unique(u_pair, return_index=True, return_counts=True)
        slot = hpos - hstart[np.searchsorted(upairs, ce_pair)]
        so_send = np.lexsort((e[ce], slot, ce_pair))
        send_slot = slot[so_send]
    else:
        # X sends P each contribution: cross entries by (child block, parent block, jloc)
        upairs, pcount = np.unique(ce_pair, return_counts=True)
        so_send = np.lexsort((jloc[ce], ce_pair))
        send_slot = None
    send_pair = ce_pair[so_send]
    send_jloc = jloc[ce[so_send]]
    send_start = np.searchsorted(send_pair, upairs)
    send_end = np.searchsorted(send_pair, upairs, side="right")
    # received by P: the pieces of its senders X ascending, after its own r (length 2 n_P)
    up_cb, up_pb = upairs // nb, upairs % nb
    offset = np.zeros(len(upairs), np.int64)
    for P in range(nb):
        sel = np.flatnonzero(up_pb == P)
        offset[sel] = 2 * size[P] + np.concatenate([[0], np.cumsum(pcount[sel])[:-1]])

    # what each parent block sums: (parent block, parent position, order key, index into
    # concat(r_P, received…)), summed by parent position then order key
    local = np.flatnonzero(~cross)
    if presum:
        first = np.unique(hpos, return_index=True)[1]  # a sum sits where its first entry would
        r_pb = np.concatenate([pb[local], u_pb])
        r_pos = np.concatenate([pos[p[local]], u_pos])
        r_key = np.concatenate([e[local], e[ce[first]]])
        pair_of_u = np.searchsorted(upairs, u_pair)
        r_idx = np.concatenate([jloc[local], offset[pair_of_u] + np.arange(len(ukey))
                                - hstart[pair_of_u]])
    else:
        idx_in = jloc.copy()
        order_in_pair = np.empty(len(ce), np.int64)
        order_in_pair[so_send] = np.arange(len(ce)) - send_start[np.searchsorted(upairs,
                                                                                 send_pair)]
        idx_in[ce] = offset[np.searchsorted(upairs, ce_pair)] + order_in_pair
        r_pb, r_pos, r_key, r_idx = pb, pos[p], e, idx_in
    so = np.lexsort((r_key, r_pos, r_pb))
    pstart = np.searchsorted(r_pb[so], np.arange(nb + 1))

    blocks = []
    for X in range(nb):
        lo, hi = bounds[X], bounds[X + 1]
        animals = order[lo:hi]
        sx = slice(first_of_cb[X], first_of_cb[X + 1])
        hb = np.unique(u_pb[sx])
        h_index = tuple(u_pos[sx][u_pb[sx] == P] for P in hb)
        send, slots = [], []
        for P in hb:
            k = np.searchsorted(upairs, X * nb + P)
            send.append(send_jloc[send_start[k]:send_end[k]])
            if presum:
                slots.append(send_slot[send_start[k]:send_end[k]])
        assert np.array_equal(up_pb[up_cb == X], hb)
        recv = tuple(int(x) for x in up_cb[up_pb == X])
        rows = so[pstart[X]:pstart[X + 1]]
        parent = r_pos[rows]
        n_in = 2 * size[X] + int(pcount[up_pb == X].sum())
        itype = kernel.index_dtype(max(n_in, hi - lo + sum(len(h) for h in h_index)) + 1)
        blocks.append(BlockPlan(
            index=X, animals=animals, halo_blocks=tuple(int(h) for h in hb),
            halo_index=tuple(h.astype(itype) for h in h_index),
            sire_loc=sire_loc[animals].astype(itype), dam_loc=dam_loc[animals].astype(itype),
            send_index=tuple(s.astype(itype) for s in send), recv_blocks=recv,
            parent=parent.astype(itype), entry=r_idx[rows].astype(itype),
            bounds=_thread_bounds(parent, SCATTER_CHUNKS), n_received=n_in - 2 * (hi - lo),
            ranges=ranges[X] if ranges is not None else (),
            send_slot=tuple(x.astype(itype) for x in slots),
            send_bounds=tuple(_thread_bounds(x, SCATTER_CHUNKS) for x in slots)))
    ptype = kernel.index_dtype(n + 1)
    return Partition(n_animals=n, bounds=bounds, order=order, blocks=tuple(blocks),
                     group=group_of_block, sire=sire.astype(ptype), dam=dam.astype(ptype))


# --------------------------------------------------------------------------------------
# the per-block steps of a round (pure: they never modify their inputs)
# --------------------------------------------------------------------------------------


@contextlib.contextmanager
def numba_threads(n: int | None):
    """Run numba's parallel kernels with ``n`` threads in this thread (None: unchanged)."""
    if n is None:
        yield
        return
    old = numba.get_num_threads()
    numba.set_num_threads(max(1, min(int(n), numba.config.NUMBA_NUM_THREADS)))
    try:
        yield
    finally:
        numba.set_num_threads(old)


@dataclass(frozen=True)
class BlockInput:
    """A block's start vector d⁰ and the Part III fixed values (block order).

    ``d0`` already holds the fixed values of the fixed animals, as the iteration starts there.
    """

    d0: np.ndarray
    fixed: np.ndarray
    fixed_erc: np.ndarray
    #: :func:`bigeval.reliability.kernel.informative` of the block's animals
    own: np.ndarray


def block_inputs(part: Partition, d0, fixed_animal=None, fixed_erc=None) -> list[BlockInput]:
    """Cut d⁰ and the fixed animals (Part III) into the blocks (caller's numbering in)."""
    n = part.n_animals
    d0 = np.array(d0, dtype=np.float64)
    if d0.shape != (n,):
        raise ValueError(f"d0 must have length {n}")
    fixed, fixed_val = kernel.fix_animals(d0, fixed_animal, fixed_erc)
    own = kernel.informative(d0, part.sire, part.dam)
    return [BlockInput(d0[b.animals], fixed[b.animals], fixed_val[b.animals], own[b.animals])
            for b in part.blocks]


def halo_values(d: np.ndarray, index: np.ndarray) -> np.ndarray:
    """The values block P sends block X for the gather: ``d_P[halo_index(P→X)]``."""
    return d[index]


def _buffer(work: dict, name: str, size: int) -> np.ndarray:
    """A float64 work array of ``size`` kept in ``work`` and reused (rounds of a long-lived
    driver allocate nothing; see :mod:`bigeval.reliability.distributed.resident`)."""
    buf = work.get(name)
    if buf is None or len(buf) != size:
        buf = work[name] = np.empty(size)
    return buf


def solve_block(plan: BlockPlan, alpha: float, d: np.ndarray, *halos: np.ndarray,
                own: np.ndarray) -> np.ndarray:
    """Gather and family solve for the families of one block (children in the block).

    Parameters
    ----------
    plan
        The block's plan.
    d
        Current ERC of the block's animals (length n_X).
    halos
        The halo values from ``plan.halo_blocks``, in that order.
    own
        :func:`bigeval.reliability.kernel.informative` of the block's animals
        (``BlockInput.own``).

    Returns
    -------
    ``concat(r_a, r_s, r_m)`` (length 3 n_X): contributions of each family to its animal,
    sire and dam.
    """
    n = plan.n
    x = np.concatenate((d, *halos)) if halos else d
    out = np.empty(3 * n)
    solve_rows(plan, alpha, x, 0, n, {"r": out}, own)
    return out


def solve_rows(plan: BlockPlan, alpha: float, x: np.ndarray, lo: int, hi: int, work: dict,
               own: np.ndarray):
    """Gather and family solve of the families whose child is one of the block's animals
    ``lo..hi-1``: :func:`solve_block` for a range of rows.

    ``x`` is ``concat(d, halos)`` (only ``d`` is read when no row of the range has a parent
    in another block). The solve goes to ``work["r"]`` (length ≥ 3 n, made when missing):
    rows ``lo..hi-1`` of its r_a, r_s and r_m thirds.
    """
    n = plan.n
    bs, bd = _buffer(work, "bs", n)[lo:hi], _buffer(work, "bd", n)[lo:hi]
    r = work.get("r")
    if r is None or len(r) < 3 * n:
        r = work["r"] = np.empty(3 * n + plan.n_received)
    kernel.gather(x, plan.sire_loc[lo:hi], plan.dam_loc[lo:hi], bs, bd)
    kernel.family_solve(x[lo:hi], bs, bd, own[lo:hi], alpha, r[lo:hi], r[n + lo:n + hi],
                        r[2 * n + lo:2 * n + hi])


def send_values(solved: np.ndarray, n: int, index: np.ndarray, slot=None, bounds=None,
                size: int = 0) -> np.ndarray:
    """The contributions block X sends block P: ``r_X[send_index(X→P)]``, or with ``slot``
    (``partition(presum=True)``) their sums per parent, ``size`` values (see
    :meth:`BlockPlan.send_plan`)."""
    r = solved[n:]
    if slot is None:
        return r[index]
    out = np.zeros(size)
    kernel.sum_contributions(slot, index, r, bounds, out)
    return out


def contributions_to(plan: BlockPlan, solved: np.ndarray, P: int) -> np.ndarray:
    """:func:`send_values` from block ``plan`` (X, solved as ``solved``) to its halo block P."""
    return send_values(solved, plan.n, *plan.send_plan(plan.halo_blocks.index(P)))


def update_block(plan: BlockPlan, alpha: float, inputs: BlockInput, d: np.ndarray,
                 solved: np.ndarray, *received: np.ndarray) -> tuple[np.ndarray, float]:
    """Scatter (sum of contributions to the block's parents) and damping for one block.

    Parameters
    ----------
    plan, inputs
        The block's plan and its d⁰ / fixed values.
    d
        Current ERC of the block's animals.
    solved
        The block's own :func:`solve_block` output.
    received
        Contributions from ``plan.recv_blocks``, in that order.

    Returns
    -------
    (d_new, change): the damped ERC (length n_X) and the block's largest change of
    reliability.
    """
    n = plan.n
    r = np.concatenate((solved[n:], *received)) if received else solved[n:]
    out = np.empty(n)
    change = update_rows(plan, alpha, inputs, d, solved[:n], r, 0, n, np.empty(n), out,
                         (0, len(plan.parent), plan.bounds))
    return out, change


def scatter_rows(plan: BlockPlan, lo: int, hi: int) -> tuple[int, int, np.ndarray]:
    """The entries of the block's parents ``lo..hi-1`` for :func:`update_rows`: (first, end,
    entry ranges of the threads within them)."""
    k0, k1 = (int(k) for k in np.searchsorted(plan.parent, [lo, hi]))
    return k0, k1, _thread_bounds(plan.parent[k0:k1], SCATTER_CHUNKS)


def update_rows(plan: BlockPlan, alpha: float, inputs: BlockInput, d: np.ndarray,
                ra: np.ndarray, r: np.ndarray, lo: int, hi: int, progeny: np.ndarray,
                out: np.ndarray, scatter: tuple | None = None) -> float:
    """Scatter and damping of the block's animals ``lo..hi-1``: :func:`update_block` for a
    range of rows.

    ``ra`` is the block's r_a, ``r`` = ``concat(r_s, r_m, received…)`` (what ``plan.entry``
    indexes; only the block's own part is read when no animal of the range has progeny in
    another block), ``progeny`` a work array of length n, ``out`` the array for d_new (rows
    ``lo..hi-1`` are written) and ``scatter`` :func:`scatter_rows` of the range (None: found
    here). Returns the range's largest change of reliability.
    """
    k0, k1, tb = scatter_rows(plan, lo, hi) if scatter is None else scatter
    progeny[lo:hi] = 0.0
    kernel.sum_contributions(plan.parent[k0:k1], plan.entry[k0:k1], r, tb, progeny)
    return float(kernel.damp(d[lo:hi], inputs.d0[lo:hi], ra[lo:hi], progeny[lo:hi],
                             inputs.fixed[lo:hi], inputs.fixed_erc[lo:hi], alpha, out[lo:hi]))


def iterate_blocks(d0, part: Partition, alpha: float, *, rounds: int = ROUNDS,
                   tol: float | None = None, fixed_animal=None, fixed_erc=None,
                   label: str = "Part I", progress: bool | None = None, threads: int = 1):
    """The in-memory driver of the per-block steps: every block in turn, round by round.

    Same parameters and result as :func:`bigeval.reliability.engine.iterate` (caller's
    numbering), with the pedigree given as a :class:`Partition`. Equal to it bit for bit. It
    is the single-process twin of the Dask driver, not a fast path (``iterate`` is): the
    kernels run with ``threads`` numba threads (None: numba's setting).
    """
    from bigeval.reliability.engine import IterationResult, _Progress

    t0 = time.perf_counter()
    inputs = block_inputs(part, d0, fixed_animal, fixed_erc)
    d = [x.d0 for x in inputs]
    changes = []
    prog = _Progress(rounds, label, progress)
    converged = False
    k = 0
    with numba_threads(threads):
        for k in range(1, rounds + 1):
            solved = []
            for b in part.blocks:
                halos = [halo_values(d[P], idx) for P, idx in zip(b.halo_blocks, b.halo_index)]
                solved.append(solve_block(b, alpha, d[b.index], *halos,
                                          own=inputs[b.index].own))
            new, change = [], 0.0
            for b in part.blocks:
                recv = [contributions_to(part.blocks[X], solved[X], b.index)
                        for X in b.recv_blocks]
                dn, c = update_block(b, alpha, inputs[b.index], d[b.index], solved[b.index],
                                     *recv)
                new.append(dn)
                change = max(change, c)
            d = new
            changes.append(change)
            prog.update(k, change)
            if tol is not None and change <= tol:
                converged = True
                break
    prog.close()
    return IterationResult(d=part.join(d), rounds=k, max_change=np.array(changes),
                           converged=converged, seconds=time.perf_counter() - t0)


# --------------------------------------------------------------------------------------
# the own-record ERC (start vector), blockwise
# --------------------------------------------------------------------------------------


@numba.njit(cache=True, nogil=True)
def _relatives_of_records(cg, animal, sire, dam):  # pragma: no cover - numba
    """q per record (records sorted by group): the twin of erc._relatives_in_cg, with each
    record's animal and parents given per record instead of looked up in the pedigree."""
    n = len(cg)
    q = np.zeros(n, dtype=np.int64)
    lo = 0
    while lo < n:
        hi = lo
        while hi < n and cg[hi] == cg[lo]:
            hi += 1
        for a in range(lo, hi):
            i, si, di = animal[a], sire[a], dam[a]
            x = 0
            for b in range(lo, hi):
                j = animal[b]
                if j == i:
                    continue
                sj, dj = sire[b], dam[b]
                if (i == sj or i == dj or si == j or di == j
                        or (si == sj and sj >= 0) or (di == dj and dj >= 0)):
                    x += 1
            q[a] = x
        lo = hi
    return q


def _erc_chunk_counts(cg, n_cg):
    return np.bincount(np.asarray(cg, dtype=np.int64), minlength=n_cg)


def _erc_sum_counts(*counts):
    out = counts[0].copy()
    for c in counts[1:]:
        out += c
    return out


def _erc_split(first, animal, cg, sire, dam, cg_bounds):
    """One record chunk's records cut by block of contemporary groups: per group block,
    (record number, animal, cg, animal's sire, animal's dam)."""
    animal = np.asarray(animal, dtype=np.int64)
    cg = np.asarray(cg, dtype=np.int64)
    rec = first + np.arange(len(animal), dtype=np.int64)
    gb = np.searchsorted(cg_bounds, cg, side="right") - 1
    s = sire[animal] if sire is not None else np.full(len(animal), -1)
    d = dam[animal] if dam is not None else np.full(len(animal), -1)
    return [tuple(a[gb == g] for a in (rec, animal, cg, s, d))
            for g in range(len(cg_bounds) - 1)]


def _erc_groups(counts, sib_adjust, g, *splits):
    """Contributions of the records of one block of groups: (record number, animal, value)."""
    parts = [s[g] for s in splits]
    rec, animal, cg, s, d = (np.concatenate([p[i] for p in parts]) for i in range(5))
    nk = counts[cg].astype(np.float64)
    if sib_adjust:  # Tier & Meyer (2004): w = sqrt((n_k - q)/n_k)
        o = np.argsort(cg, kind="stable")
        q = np.empty(len(cg), np.int64)
        q[o] = _relatives_of_records(cg[o], animal[o], s[o], d[o])
        contrib = 1.0 - 1.0 / (nk * np.sqrt((nk - q) / nk))
    else:  # Misztal et al. (1993): 1 − 1/n_k
        contrib = 1.0 - 1.0 / nk
    return rec, animal, contrib


def _erc_animals(lo, hi, tau, *groups):
    """ERC of the animals lo..hi-1: their records' contributions summed in record order."""
    rec = np.concatenate([g[0] for g in groups])
    animal = np.concatenate([g[1] for g in groups])
    contrib = np.concatenate([g[2] for g in groups])
    keep = (animal >= lo) & (animal < hi)
    rec, animal, contrib = rec[keep], animal[keep], contrib[keep]
    o = np.argsort(rec, kind="stable")  # np.bincount adds in record order
    z = np.bincount(animal[o] - lo, weights=contrib[o], minlength=hi - lo)
    if tau is not None:  # Misztal et al. (1991) repeated records
        z = tau * z / (tau + z)
    return z


def own_record_erc_blocks(n_animals: int, rec_animal, rec_cg, n_cg: int, *, sire=None,
                          dam=None, sib_adjust: bool = False, tau: float | None = None,
                          record_chunk: int = 1_000_000, cg_blocks: int = 4,
                          animal_bounds=None):
    """The own-record ERC as a Dask array: :func:`bigeval.reliability.erc.own_record_erc`
    computed blockwise, equal to it bit for bit.

    Records are read in chunks of ``record_chunk`` (numpy, Zarr or Dask arrays); the group
    sizes n_k are a sum of per-chunk counts; the records are then cut into ``cg_blocks``
    blocks of contemporary groups (the Tier & Meyer relatives are counted within a group);
    each animal block (``animal_bounds``, default one chunk per ``record_chunk`` animals) adds
    up its records' contributions in record order.

    Returns
    -------
    dask.array.Array of length ``n_animals``, chunked by ``animal_bounds``.

    Examples
    --------
    >>> own_record_erc_blocks(2, np.array([0, 1, 0]), np.array([0, 0, 1]), 2,
    ...                       record_chunk=2).compute(scheduler="sync")
    array([0.5, 0.5])
    """
    import dask.array as da
    from dask.base import tokenize
    from dask.highlevelgraph import HighLevelGraph

    if sib_adjust and (sire is None or dam is None):
        raise ValueError("sib_adjust needs sire and dam")
    if tau is not None and not tau > 0:
        raise InputError("tau must be positive", value=tau, expected="σe²/σpe² > 0",
                         remedy="give --tau > 0 or leave it out")
    n_rec = len(rec_animal)
    rchunk = max(1, int(record_chunk))
    ra = da.from_array(rec_animal, chunks=rchunk) if not isinstance(rec_animal, da.Array) \
        else rec_animal.rechunk(rchunk)
    rc = da.from_array(rec_cg, chunks=rchunk) if not isinstance(rec_cg, da.Array) \
        else rec_cg.rechunk(rchunk)
    firsts = np.concatenate([[0], np.cumsum(ra.chunks[0])[:-1]]) if n_rec else []
    if animal_bounds is None:
        nb = max(1, -(-n_animals // rchunk))
        animal_bounds = np.linspace(0, n_animals, nb + 1).round().astype(np.int64)
    animal_bounds = np.asarray(animal_bounds, dtype=np.int64)
    cg_bounds = np.linspace(0, n_cg, max(1, min(cg_blocks, max(n_cg, 1))) + 1
                            ).round().astype(np.int64)
    sire = None if sire is None else np.asarray(sire, dtype=np.int64)
    dam = None if dam is None else np.asarray(dam, dtype=np.int64)
    tok = tokenize(ra, rc, n_animals, n_cg, sib_adjust, tau, cg_bounds,
                             animal_bounds, sire, dam)
    name = f"bigeval-erc-{tok}"
    dsk: dict = {(f"{name}-ped", 0): (sire, dam)}
    counts = []
    splits = []
    for i, first in enumerate(firsts):
        dsk[(f"{name}-count", i)] = (_erc_chunk_counts, (rc.name, i), n_cg)
        counts.append((f"{name}-count", i))
        dsk[(f"{name}-split", i)] = (_erc_split_ped, int(first), (ra.name, i), (rc.name, i),
                                     (f"{name}-ped", 0), cg_bounds)
        splits.append((f"{name}-split", i))
    dsk[(f"{name}-nk", 0)] = (_erc_sum_counts, *counts) if counts else \
        (np.zeros, n_cg, np.int64)
    groups = []
    for g in range(len(cg_bounds) - 1):
        dsk[(f"{name}-groups", g)] = (_erc_groups, (f"{name}-nk", 0), sib_adjust, g, *splits) \
            if splits else (_erc_empty,)
        groups.append((f"{name}-groups", g))
    for b in range(len(animal_bounds) - 1):
        dsk[(name, b)] = (_erc_animals, int(animal_bounds[b]), int(animal_bounds[b + 1]), tau,
                          *groups)
    graph = HighLevelGraph.from_collections(name, dsk, dependencies=[ra, rc])
    return da.Array(graph, name, chunks=(tuple(np.diff(animal_bounds).tolist()),),
                    dtype=np.float64)


def _erc_split_ped(first, animal, cg, ped, cg_bounds):
    return _erc_split(first, animal, cg, ped[0], ped[1], cg_bounds)


def _erc_empty():
    z = np.zeros(0, np.int64)
    return z, z, np.zeros(0)
