"""Parts I–III on a population prepared out of core (:mod:`bigeval.prepare.ooc`).

The start vector is summed from the work folder's records block by block, the iteration runs in
memory (about 120 bytes per animal) or on the Dask engine, and the result table is produced in
blocks of rows; every value equals the in-memory path's (:mod:`bigeval.reliability.engine`).
"""

from __future__ import annotations

import numba
import numpy as np
import pandas as pd

from bigeval.prepare.ooc import ZARR_CHUNK, OocPopulation, _store, record_blocks
from bigeval.reliability import erc
from bigeval.reliability.engine import check_published, memory_iterator, parts_1_to_3

__all__ = ["reliability_ooc", "result_chunks", "start_vector_ooc"]


@numba.njit(cache=True)
def _scatter_add(z, index, weights):  # pragma: no cover - numba
    """z[index[i]] += weights[i] in order: numpy.bincount's sums, bit for bit."""
    for i in range(index.shape[0]):
        z[index[i]] += weights[i]


def start_vector_ooc(pop: OocPopulation, opts, *, interbull_source=None) -> np.ndarray:
    """d⁰ from the work folder's records, block by block; equals
    :func:`bigeval.reliability.engine.start_vector` on the same population exactly.

    Group sizes are counted in one pass, the ERC summed in a second (in record order, as
    :func:`numpy.bincount` sums). The Tier & Meyer adjustment needs each group's records
    together and reads the record arrays whole.
    """
    n = pop.n_animals
    if opts.sib_adjust:
        d0 = erc.own_record_erc(n, pop.array("rec_animal"), pop.array("rec_cg"), pop.n_cg,
                                sire=pop.array("sire"), dam=pop.array("dam"),
                                sib_adjust=True, tau=opts.tau)
    else:
        counts = np.zeros(pop.n_cg, np.int64)
        for _, cg in record_blocks(pop):
            counts += np.bincount(cg, minlength=pop.n_cg)
        n_k = counts.astype(np.float64)  # erc.cg_sizes
        d0 = np.zeros(n)
        for animal, cg in record_blocks(pop):
            _scatter_add(d0, animal, 1.0 - 1.0 / n_k[cg])
        if opts.tau is not None:
            d0 = opts.tau * d0 / (opts.tau + d0)
    if pop.interbull_animal is not None:
        b = erc.interbull_erc(pop.interbull_value, opts.alpha, kind=opts.interbull_kind,
                              source=interbull_source, animals=pop.ids_of(pop.interbull_animal))
        d0[pop.interbull_animal] += b
    return d0


def reliability_ooc(pop: OocPopulation, opts, *, interbull_source=None,
                    progress: bool | None = None, iterator=None):
    """Parts I–III on an out-of-core population: the start vector in blocks, the iteration
    in memory (about 120 bytes per animal) or by ``iterator`` (the Dask engine, see
    :func:`bigeval.reliability.reliability`); as :func:`bigeval.reliability.reliability`."""
    d0 = start_vector_ooc(pop, opts, interbull_source=interbull_source)
    _store(pop.group, "d0", d0)
    sire, dam = pop.array("sire"), pop.array("dam")
    if iterator is None:
        iterator = memory_iterator(sire, dam)
    ids = None if pop.genotyped is None else pop.ids_of(pop.genotyped)
    return parts_1_to_3(d0, iterator, opts, pop.genotyped, pop.ginv, pop.a22inv,
                        sire=sire, dam=dam, genotyped_ids=ids, progress=progress)


def result_chunks(pop: OocPopulation, res, *, rows: int = ZARR_CHUNK):
    """The table of :func:`bigeval.reliability.engine.result_table`, in blocks of rows."""
    n = pop.n_animals
    rel_g = np.full(n, np.nan)
    if res.rel_genomic is not None:
        rel_g[pop.genotyped] = res.rel_genomic
    alpha = res.alpha
    d1, df_ = res.part1.d, res.erc_final
    for lo in range(0, max(n, 1), rows):
        hi = min(lo + rows, n)
        p, f = d1[lo:hi], df_[lo:hi]
        cols = {
            "animal": pd.Series(pop.ids(lo, hi), dtype=str),
            "erc_records": res.erc_records[lo:hi],
            "erc_pedigree": p,
            "rel_pedigree": p / (p + alpha),
            "rel_genomic": rel_g[lo:hi],
            "erc_final": f,
            "rel_final": f / (f + alpha),
        }
        check_published(cols)
        yield pd.DataFrame(cols)
