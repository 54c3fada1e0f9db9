"""The partitioned iteration (bigeval.reliability.distributed.blocks) against the in-memory engine.

The in-memory engine (itself tested against the literal SAS twin) is the slow, obviously
correct reference here: the blocked driver must equal it bit for bit, for every block size,
animal numbering and Part III fixing, and so must the blockwise own-record ERC.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import random_pedigree
from hypothesis import given, settings
from hypothesis import strategies as st

from bigeval.reliability import FamilyGraph, iterate, kernel
from bigeval.reliability.distributed.blocks import (
    ENTRY_COST,
    block_inputs,
    contributions_to,
    iterate_blocks,
    own_record_erc_blocks,
    partition,
    solve_block,
    solve_rows,
    update_block,
    update_rows,
)
from bigeval.reliability.erc import own_record_erc
from bigeval.reliability.reference import iterate_scalar

ALPHA = 3.0  # h2 = 0.25
ROUNDS = 25


def population(n, seed, p_record=0.6):
    rng = np.random.default_rng(seed)
    sire, dam = random_pedigree(n, rng)
    d0 = rng.gamma(0.5, 1.0, n) * (rng.random(n) < p_record)
    return sire, dam, d0


def renumber(sire, dam, values, perm):
    """The same pedigree with animal ``perm[i]`` renumbered ``i``."""
    inv = np.argsort(perm)
    s, d = sire[perm], dam[perm]
    s = np.where(s >= 0, inv[np.maximum(s, 0)], -1)
    d = np.where(d >= 0, inv[np.maximum(d, 0)], -1)
    return s, d, values[perm]


def in_memory(d0, sire, dam, **kw):
    return iterate(d0, FamilyGraph.from_parents(sire, dam), ALPHA, progress=False, **kw)


def test_partition__mrode_table_2_1_by_hand():
    # Mrode (2014) Table 2.1, animals 1..6 numbered 0..5, blocks {0,1,2} and {3,4,5}
    sire = [-1, -1, 0, 0, 3, 4]
    dam = [-1, -1, 1, -1, 2, 1]
    p = partition(sire, dam, block_size=3)
    assert p.pairs == [(1, 0)]  # only block 1's families have parents in block 0
    b0, b1 = p.blocks
    assert b0.halo_blocks == () and b0.recv_blocks == (1,)
    # block 1 gathers animals 0, 1, 2 (sire of 3; dams of 4 and 5; sire of 5 is 4, local)
    assert b1.halo_index[0].tolist() == [0, 1, 2]
    # local numbering: 3, 4, 5 are 0, 1, 2; the halo 0, 1, 2 follows as 3, 4, 5
    assert b1.sire_loc.tolist() == [3, 0, 1]
    assert b1.dam_loc.tolist() == [-1, 5, 4]
    # block 1 sends r_s(3) (entry 0) and r_m(4), r_m(5) (entries 3 + 1, 3 + 2) to block 0
    assert b1.send_index[0].tolist() == [0, 4, 5]
    # block 0 sums over concat(r_s(0..2), r_m(0..2), received (3)): animal 0 gets r_s(2)
    # (index 2) then r_s(3) (received first: 6); 1 gets r_m(2) (3 + 2) then r_m(5) (8);
    # 2 gets r_m(4) (7)
    assert b0.parent.tolist() == [0, 0, 1, 1, 2]
    assert b0.entry.tolist() == [2, 6, 5, 8, 7]


def test_partition_presum__mrode_table_2_1_by_hand():
    """``presum=True``: block 1 sends block 0 one sum per parent of its halo (0, 1, 2), and
    block 0 adds each sum where its first entry would be."""
    p = partition([-1, -1, 0, 0, 3, 4], [-1, -1, 1, -1, 2, 1], block_size=3, presum=True)
    b0, b1 = p.blocks
    # slot 0 (animal 0): r_s(3) (entry 0); slot 1 (animal 1): r_m(5) (3 + 2); slot 2
    # (animal 2): r_m(4) (3 + 1)
    assert b1.send_index[0].tolist() == [0, 5, 4] and b1.send_slot[0].tolist() == [0, 1, 2]
    assert b0.n_received == 3
    # animal 0: r_s(2) (entry 2) then the sum for slot 0 (received first: 6, its first
    # entry r_s(3) is entry 3); animal 1: r_m(2) (entry N + 2, index 5) then slot 1 (7,
    # first entry N + 5); animal 2: slot 2 (8)
    assert b0.parent.tolist() == [0, 0, 1, 1, 2]
    assert b0.entry.tolist() == [2, 6, 5, 7, 8]
    solved = np.arange(1.0, 10.0)  # r_a, r_s, r_m of block 1's animals 3, 4, 5
    assert contributions_to(b1, solved, 0).tolist() == [4.0, 9.0, 8.0]


@pytest.mark.parametrize("plan", [dict(block_size=7), dict(n_blocks=5), dict(groups=2),
                                  dict(groups=3)])
def test_iterate_blocks__presum_equals_in_memory_to_rounding(plan):
    sire, dam, d0 = population(1500, 4)
    ref = in_memory(d0, sire, dam, rounds=ROUNDS)
    got = iterate_blocks(d0, partition(sire, dam, presum=True, **plan), ALPHA,
                         rounds=ROUNDS, progress=False)
    np.testing.assert_allclose(got.d, ref.d, rtol=0, atol=1e-12)
    np.testing.assert_allclose(got.max_change, ref.max_change, rtol=0, atol=1e-12)


def test_partition__order_and_sizes():
    sire, dam, _ = population(1000, 1)
    p = partition(sire, dam, block_size=300)
    assert p.n_blocks == 4 and np.diff(p.bounds).tolist() == [250, 250, 250, 250]
    assert np.array_equal(p.order, np.arange(1000))  # parents already first
    x = np.arange(1000.0)
    assert np.array_equal(p.join(p.split(x)), x)
    with pytest.raises(ValueError, match="permutation"):
        partition(sire, dam, order=np.zeros(1000, int))


@pytest.mark.parametrize("n,block_size", [(60, 1), (1000, 7), (1000, 333), (1000, 1000),
                                          (1000, 5000)])
def test_iterate_blocks__equals_in_memory_bit_for_bit(n, block_size):
    sire, dam, d0 = population(n, 2)
    ref = in_memory(d0, sire, dam, rounds=ROUNDS)
    got = iterate_blocks(d0, partition(sire, dam, block_size=block_size), ALPHA,
                         rounds=ROUNDS, progress=False)
    assert np.array_equal(got.d, ref.d)
    assert np.array_equal(got.max_change, ref.max_change)
    assert got.rounds == ref.rounds == ROUNDS


@pytest.mark.parametrize("seed", [3, 4])
def test_iterate_blocks__shuffled_animals(seed):
    sire, dam, d0 = population(1500, seed)
    perm = np.random.default_rng(seed).permutation(1500)
    s2, d2, v2 = renumber(sire, dam, d0, perm)
    p = partition(s2, d2, block_size=200)
    assert not np.array_equal(p.order, np.arange(1500))  # sorted parents-first inside
    got = iterate_blocks(v2, p, ALPHA, rounds=ROUNDS, progress=False)
    # same numbering: identical; against the original numbering: equal up to the order of
    # the sums over progeny (rounding only)
    assert np.array_equal(got.d, in_memory(v2, s2, d2, rounds=ROUNDS).d)
    ref = in_memory(d0, sire, dam, rounds=ROUNDS)
    np.testing.assert_allclose(got.d[np.argsort(perm)], ref.d, rtol=0, atol=1e-12)


def test_iterate_blocks__part3_fixed_and_tol():
    sire, dam, d0 = population(1200, 5)
    fixed = np.random.default_rng(5).choice(1200, 60, replace=False)
    fixed_erc = np.linspace(0.5, 8.0, 60)
    kw = dict(rounds=60, tol=1e-4, fixed_animal=fixed, fixed_erc=fixed_erc)
    ref = in_memory(d0, sire, dam, **kw)
    got = iterate_blocks(d0, partition(sire, dam, n_blocks=5), ALPHA, progress=False, **kw)
    assert ref.converged and got.converged and got.rounds == ref.rounds < 60
    assert np.array_equal(got.d, ref.d)
    assert np.array_equal(got.d[fixed], fixed_erc)


@pytest.mark.parametrize("groups", [1, 2, 3, 5])
def test_partition_groups__one_block_per_group_with_classed_rows(groups):
    """``groups=W``: W blocks cut at equal work, each block's rows in class ranges that say
    truly whether an animal has a parent / progeny in another block."""
    sire, dam, d0 = population(2000, 11)
    p = partition(sire, dam, groups=groups)
    assert p.n_blocks == groups and p.group.tolist() == list(range(groups))
    blk = np.empty(2000, int)
    for b in p.blocks:
        blk[b.animals] = b.index
    work = 1 + ENTRY_COST * (np.bincount(sire[sire >= 0], minlength=2000)
                             + np.bincount(dam[dam >= 0], minlength=2000))
    shares = [work[b.animals].sum() / work.sum() for b in p.blocks]
    assert max(shares) - min(shares) < 0.01  # equal work, to an animal's weight
    for b in p.blocks:
        assert b.ranges[0][0] == 0 and b.ranges[-1][1] == b.n
        assert all(x[1] == y[0] for x, y in zip(b.ranges, b.ranges[1:]))
        for lo, hi, cls in b.ranges:
            a = b.animals[lo:hi]
            remote_parent = np.array([any(q >= 0 and blk[q] != b.index for q in (sire[i], dam[i]))
                                      for i in a])
            kids = [np.flatnonzero((sire == i) | (dam == i)) for i in a]
            remote_kid = np.array([bool(np.any(blk[k] != b.index)) for k in kids])
            assert np.all(remote_parent == bool(cls & 1)) and np.all(remote_kid == bool(cls & 2))
    ref = in_memory(d0, sire, dam, rounds=ROUNDS)
    got = iterate_blocks(d0, p, ALPHA, rounds=ROUNDS, progress=False)
    assert np.array_equal(got.d, ref.d)


def test_solve_rows_and_update_rows__range_by_range_equal_the_whole_block():
    """The row-range steps the resident actors run equal solve_block / update_block."""
    sire, dam, d0 = population(1500, 12)
    p = partition(sire, dam, groups=3)
    inputs = block_inputs(p, d0)
    d = [x.d0 * 1.5 for x in inputs]
    halos = {b.index: [d[P][idx] for P, idx in zip(b.halo_blocks, b.halo_index)]
             for b in p.blocks}
    solved = {b.index: solve_block(b, ALPHA, d[b.index], *halos[b.index],
                                   own=inputs[b.index].own) for b in p.blocks}
    for b in p.blocks:
        x = np.concatenate([d[b.index], *halos[b.index]])
        work = {}
        for lo, hi, _ in reversed(b.ranges):  # any order of the ranges
            solve_rows(b, ALPHA, x, lo, hi, work, inputs[b.index].own)
        assert np.array_equal(work["r"][:3 * b.n], solved[b.index])
        recv = [contributions_to(p.blocks[X], solved[X], b.index) for X in b.recv_blocks]
        ref, ref_change = update_block(b, ALPHA, inputs[b.index], d[b.index], solved[b.index],
                                       *recv)
        r = np.concatenate([solved[b.index][b.n:], *recv])
        out, progeny = np.full(b.n, np.nan), np.full(b.n, np.nan)
        changes = [update_rows(b, ALPHA, inputs[b.index], d[b.index], solved[b.index][:b.n], r,
                               lo, hi, progeny, out) for lo, hi, _ in b.ranges]
        assert np.array_equal(out, ref) and max(changes) == ref_change


def test_iterate_blocks__against_sas_twin():
    sire, dam, d0 = population(800, 6)
    got = iterate_blocks(d0, partition(sire, dam, block_size=100), ALPHA, rounds=10,
                         progress=False)
    ref = iterate_scalar(d0, sire, dam, ALPHA, 10, kernel.informative(d0, sire, dam))
    np.testing.assert_allclose(got.d, ref, rtol=0, atol=1e-10)


def test_family_solve__result_does_not_depend_on_blocking():
    # each family goes through the same SIMD code wherever it sits in its block
    rng = np.random.default_rng(7)
    n = 3000
    b = [rng.gamma(0.5, 1.0, n) * (rng.random(n) < 0.7) for _ in range(3)]
    own = (rng.random(n) < 0.8).astype(np.uint8)
    whole = [np.empty(n) for _ in range(3)]
    kernel.family_solve(*b, own, ALPHA, *whole)
    for lo, hi in [(7, 700), (3, 10), (513, 3000)]:
        part = [np.empty(hi - lo) for _ in range(3)]
        kernel.family_solve(*(x[lo:hi].copy() for x in b), own[lo:hi].copy(), ALPHA, *part)
        for w, p in zip(whole, part):
            assert np.array_equal(w[lo:hi], p)


@settings(max_examples=15, deadline=None)
@given(n=st.integers(1, 120), block=st.integers(1, 130), seed=st.integers(0, 10**6))
def test_iterate_blocks__any_pedigree_any_block(n, block, seed):
    sire, dam, d0 = population(n, seed)
    ref = in_memory(d0, sire, dam, rounds=6)
    got = iterate_blocks(d0, partition(sire, dam, block_size=block), ALPHA, rounds=6,
                         progress=False)
    assert np.array_equal(got.d, ref.d)


@pytest.mark.parametrize("sib_adjust,tau", [(False, None), (True, None), (True, 4.0)])
@pytest.mark.parametrize("chunk,cg_blocks,bounds", [(700, 3, None), (5000, 1, [0, 2000]),
                                                     (97, 7, [0, 3, 1000, 2000])])
def test_own_record_erc_blocks__equals_in_memory(sib_adjust, tau, chunk, cg_blocks, bounds):
    rng = np.random.default_rng(8)
    n, n_cg = 2000, 150
    sire, dam = random_pedigree(n, rng)
    rec_animal = rng.integers(0, n, 5000)
    rec_cg = rng.integers(0, n_cg, 5000)
    ref = own_record_erc(n, rec_animal, rec_cg, n_cg, sire=sire, dam=dam,
                         sib_adjust=sib_adjust, tau=tau)
    got = own_record_erc_blocks(n, rec_animal, rec_cg, n_cg, sire=sire, dam=dam,
                                sib_adjust=sib_adjust, tau=tau, record_chunk=chunk,
                                cg_blocks=cg_blocks, animal_bounds=bounds)
    assert np.array_equal(got.compute(scheduler="sync"), ref)


def test_own_record_erc_blocks__shuffled_records():
    rng = np.random.default_rng(9)
    n, n_cg = 1000, 80
    sire, dam = random_pedigree(n, rng)
    rec_animal, rec_cg = rng.integers(0, n, 3000), rng.integers(0, n_cg, 3000)
    o = rng.permutation(3000)
    ref = own_record_erc(n, rec_animal, rec_cg, n_cg, sire=sire, dam=dam, sib_adjust=True)
    got = own_record_erc_blocks(n, rec_animal[o], rec_cg[o], n_cg, sire=sire, dam=dam,
                                sib_adjust=True, record_chunk=400)
    # the record order changes only the order of each animal's (few) additions
    np.testing.assert_allclose(got.compute(scheduler="threads"), ref, rtol=0, atol=1e-12)
