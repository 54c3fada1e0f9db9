"""Properties that hold on every small pedigree (hypothesis).

* renumbering invariance: any permutation of the rows and any renaming of the IDs gives the
  same per-animal results (through ``prepare`` and ``reliability``, Parts I with records,
  repeated records, τ and the Tier & Meyer adjustment drawn at random);
* every reliability is in [0, 1);
* A·A⁻¹ = I (``a_matrix_dense`` against ``ainv_sparse``, any numbering of the animals);
* G from random genotypes (``vanraden_g``, with missing calls) is symmetric positive
  semi-definite;
* adding an unrelated founder without records changes nobody else's result.

The tolerance 1e-12 (relative) of the invariance test is for sums taken in another order:
renaming IDs changes the internal order of animals within a generation, hence the order in
which progeny contributions to a parent are added.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from bigeval.errors import InputError
from bigeval.genomic import vanraden_g
from bigeval.pedigree import a_matrix_dense, ainv_sparse
from bigeval.prepare import prepare
from bigeval.reliability.engine import ReliabilityOptions, reliability, result_table

SETTINGS = settings(max_examples=30, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])
# prepare + reliability per example: fewer examples keep the file well under half a minute
RUNS = settings(SETTINGS, max_examples=25)


@pytest.fixture(autouse=True)
def one_numba_thread():
    """Tiny pedigrees: threads only cost (on a busy machine a parallel region waits for all
    of them); results do not depend on the number of threads."""
    import numba

    before = numba.get_num_threads()
    numba.set_num_threads(1)
    yield
    numba.set_num_threads(before)


@st.composite
def pedigrees(draw, max_animals: int = 30):
    """(sire, dam) in 0..n-1 with parents before progeny (-1 unknown), sexes respected."""
    n = draw(st.integers(2, max_animals))
    male = draw(st.lists(st.booleans(), min_size=n, max_size=n))
    sire = np.full(n, -1, dtype=np.int64)
    dam = np.full(n, -1, dtype=np.int64)
    for i in range(1, n):
        males = [j for j in range(i) if male[j]]
        females = [j for j in range(i) if not male[j]]
        if males and draw(st.booleans()):
            sire[i] = draw(st.sampled_from(males))
        if females and draw(st.booleans()):
            dam[i] = draw(st.sampled_from(females))
    return sire, dam


@st.composite
def populations(draw):
    """A pedigree with IDs, records (animal, group) and the method's options."""
    sire, dam = draw(pedigrees())
    n = len(sire)
    ids = draw(st.lists(st.text("ABCXYZ0123456789", min_size=1, max_size=6).filter(
        lambda s: s not in ("0",)), min_size=n, max_size=n, unique=True))
    n_cg = draw(st.integers(1, 4))
    records = draw(st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, n_cg - 1)),
                            min_size=1, max_size=3 * n))
    opts = ReliabilityOptions(alpha=draw(st.sampled_from([0.5, 2.0, 3.0])),
                              tau=draw(st.sampled_from([None, 4.0])),
                              sib_adjust=draw(st.booleans()), rounds=20)
    return ids, sire, dam, records, opts


def write_population(folder: Path, ids, sire, dam, records, *, order=None, rename=None,
                     extra_rows=()) -> tuple[Path, Path]:
    """Pedigree and records files; rows in ``order``, IDs through ``rename``."""
    name = (lambda a: a) if rename is None else rename
    rows = [f"{name(ids[i])} {name(ids[sire[i]]) if sire[i] >= 0 else 0} "
            f"{name(ids[dam[i]]) if dam[i] >= 0 else 0}" for i in range(len(ids))]
    rec = [f"{name(ids[a])} cg{g}" for a, g in records]
    if order is not None:
        rows = [rows[k] for k in order]
        rec = rec[::-1]
    ped_path, rec_path = folder / "ped.txt", folder / "rec.txt"
    ped_path.write_text("\n".join([*rows, *extra_rows]) + "\n")
    rec_path.write_text("\n".join(rec) + "\n")
    return ped_path, rec_path


def results(ped: Path, rec: Path, opts: ReliabilityOptions) -> pd.DataFrame:
    pop = prepare(ped, rec)
    return result_table(pop, reliability(pop, opts, progress=False)).set_index("animal")


@RUNS
@given(populations(), st.randoms(use_true_random=False))
def test_renumbering_invariance__permuted_rows_and_renamed_ids(population, rnd):
    ids, sire, dam, records, opts = population
    order = list(range(len(ids)))
    rnd.shuffle(order)
    new_name = {a: f"N{k:03d}{a[::-1]}" for k, a in enumerate(rnd.sample(ids, len(ids)))}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "a").mkdir()
        (tmp / "b").mkdir()
        first = results(*write_population(tmp / "a", ids, sire, dam, records), opts)
        second = results(*write_population(tmp / "b", ids, sire, dam, records, order=order,
                                           rename=new_name.get), opts)
    second.index = second.index.map({v: k for k, v in new_name.items()})
    second = second.loc[first.index]
    cols = ["erc_records", "erc_pedigree", "rel_pedigree", "erc_final", "rel_final"]
    np.testing.assert_allclose(second[cols].to_numpy(), first[cols].to_numpy(), rtol=1e-12,
                               atol=1e-14)


@RUNS
@given(populations())
def test_reliabilities_in_0_1(population):
    ids, sire, dam, records, opts = population
    with tempfile.TemporaryDirectory() as tmp:
        table = results(*write_population(Path(tmp), ids, sire, dam, records), opts)
    for col in ("rel_pedigree", "rel_final"):
        rel = table[col].to_numpy()
        # an animal without information may show ±1e-12 (README: values as computed)
        assert np.all(rel >= -1e-12) and np.all(rel < 1), (col, rel.min(), rel.max())


@SETTINGS
@given(pedigrees(max_animals=40), st.randoms(use_true_random=False))
def test_a_times_ainv_is_identity_in_any_numbering(pedigree, rnd):
    sire, dam = pedigree
    n = len(sire)
    perm = list(range(n))
    rnd.shuffle(perm)  # animal i gets number perm[i]: parents need not come first
    perm = np.array(perm)
    s = np.full(n, -1)
    d = np.full(n, -1)
    s[perm] = np.where(sire >= 0, perm[np.maximum(sire, 0)], -1)
    d[perm] = np.where(dam >= 0, perm[np.maximum(dam, 0)], -1)
    A = a_matrix_dense(s, d)
    Ainv = ainv_sparse(s, d).toarray()
    np.testing.assert_allclose(A @ Ainv, np.eye(n), atol=1e-10)
    np.testing.assert_array_equal(Ainv, Ainv.T)


@SETTINGS
@given(st.integers(2, 15), st.integers(1, 40), st.integers(0, 2**32 - 1),
       st.sampled_from([0.0, 0.05, 0.3]))
def test_g_is_symmetric_positive_semidefinite(n, m, seed, p_missing):
    rng = np.random.default_rng(seed)
    p = rng.uniform(0.05, 0.95, m)
    M = rng.binomial(2, p, size=(n, m)).astype(np.int8)
    M[rng.random((n, m)) < p_missing] = -1
    try:
        G, _ = vanraden_g(M)
    except InputError:  # a SNP without a call, or every SNP monomorphic: no G to test
        assume(False)
    np.testing.assert_allclose(G, G.T, rtol=0, atol=1e-12 * max(1.0, np.abs(G).max()))
    eig = np.linalg.eigvalsh((G + G.T) / 2)
    assert eig.min() >= -1e-9 * max(1.0, np.abs(eig).max()), eig.min()


@RUNS
@given(populations())
def test_unrelated_founder_without_records_changes_nobody(population):
    ids, sire, dam, records, opts = population
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "a").mkdir()
        (tmp / "b").mkdir()
        before = results(*write_population(tmp / "a", ids, sire, dam, records), opts)
        after = results(*write_population(tmp / "b", ids, sire, dam, records,
                                          extra_rows=["NEWFOUNDER 0 0"]), opts)
    assert after.loc["NEWFOUNDER", "rel_final"] == pytest.approx(0.0, abs=1e-12)
    after = after.drop(index="NEWFOUNDER").loc[before.index]
    pd.testing.assert_frame_equal(after, before, check_exact=True)
