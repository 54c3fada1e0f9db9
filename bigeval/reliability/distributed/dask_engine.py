"""The partitioned iteration under Dask: the per-block steps of :mod:`.blocks` as a task graph.

Each round is, for the blocks X and the non-empty (child block X, parent block P) pairs of a
:class:`~bigeval.reliability.distributed.blocks.Partition`:

* ``halo(P→X)`` — the parents' values X needs from P (runs where P's state lives);
* ``solve(X)`` — gather and family solve of X's families;
* ``send(X→P)`` — X's contributions to P's parents (runs where X's solve lives);
* ``state(P)`` — the sum over P's progeny and the damping: P's new ERC and largest change;
* ``change(P)`` — that change alone (a float, for the per-round progress and ``tol``).

The plans and the start vector are sent once, as data keys pinned (loosely) to one worker
per contiguous group of blocks; every later task runs where its block's data already is, so
per round only the halo values and the cross-block contributions travel. Rounds are sent in
batches (``rounds_per_batch`` rounds per graph): the client waits for nothing inside a batch
except the progress of each round, and with ``tol`` a batch that overshot the stopping round
is recomputed from its start to that round.

The graph is an ordinary Dask graph, so it runs under the synchronous, threaded and
distributed schedulers alike, and with the same result bit for bit (see :mod:`.blocks`; with
``partition(presum=True)`` the same as the in-memory blocked driver on that partition, and
the in-memory engine's to rounding).
Under ``distributed`` a worker lost mid-round is survived: its keys are recomputed from their
lineage (the data keys are literals the scheduler keeps), on the workers that are left.

Under ``distributed`` the default is not this graph but worker-resident blocks
(:mod:`bigeval.reliability.distributed.resident`, ``mode="resident"``): with worker processes the
graph's per-task and per-hop costs outweighed a round's arithmetic (1 M animals × 100
rounds, 2 worker processes on 2 cores: this graph 2.6× the in-memory engine's time, resident
blocks 1.23×; benchmarks/bench_dask.py).
``mode="graph"`` keeps this graph on a cluster.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

import dask
import dask.local
import dask.threaded
import numpy as np

from bigeval.defaults import ROUNDS
from bigeval.reliability.distributed import blocks as _blocks
from bigeval.reliability.distributed.blocks import BlockInput, BlockPlan, Partition

#: Rounds per submitted graph.
ROUNDS_PER_BATCH = 20


# --------------------------------------------------------------------------------------
# task functions (module level, so that workers in other processes can unpickle them)
# --------------------------------------------------------------------------------------


def _initial_state(inputs: BlockInput):
    return inputs.d0, 0.0


def _halo_task(state, index):
    return _blocks.halo_values(state[0], index)


def _solve_task(threads, plan: BlockPlan, alpha, inputs: BlockInput, state, *halos):
    with _blocks.numba_threads(threads):
        return _blocks.solve_block(plan, alpha, state[0], *halos, own=inputs.own)


def _send_task(solved, n, send_plan):
    return _blocks.send_values(solved, n, *send_plan)


def _update_task(threads, plan: BlockPlan, alpha, inputs: BlockInput, state, solved, *recv):
    with _blocks.numba_threads(threads):
        return _blocks.update_block(plan, alpha, inputs, state[0], solved, *recv)


def _change_task(state):
    return state[1]


# --------------------------------------------------------------------------------------
# runners: where the graph runs
# --------------------------------------------------------------------------------------


class _LocalRunner:
    """The synchronous or threaded scheduler: data keys are kept in a dict of this process."""

    def __init__(self, get, name: str):
        self.get, self.name = get, name
        self.data: dict = {}

    def put(self, items: dict, group_of=None):
        self.data.update(items)

    def ref(self, key):
        return key

    def forget(self, keys):
        for k in keys:
            self.data.pop(k, None)

    def run(self, dsk: dict, change_keys: list[list], keep: list, on_round):
        from dask.callbacks import Callback

        round_of = {k: i for i, ks in enumerate(change_keys) for k in ks}
        got: list[dict] = [dict() for _ in change_keys]
        done = [0]

        def _posttask(key, result, dsk_, state, worker_id):
            i = round_of.get(key)
            if i is None:
                return
            got[i][key] = result
            while done[0] < len(got) and len(got[done[0]]) == len(change_keys[done[0]]):
                on_round(done[0], max(got[done[0]].values(), default=0.0))
                done[0] += 1

        flat = [k for ks in change_keys for k in ks]
        with Callback(posttask=_posttask):
            values = self.get({**self.data, **dsk}, keep + flat)
        self.data.update(zip(keep, values[:len(keep)]))
        value = dict(zip(flat, values[len(keep):]))
        return [max((value[k] for k in ks), default=0.0) for ks in change_keys]

    def fetch(self, keys):
        return [self.data[k] for k in keys]

    def describe(self):
        return f"dask ({self.name} scheduler)"


class _DistributedRunner:
    """A distributed Client: data keys are futures held here; tasks follow their data."""

    def __init__(self, client):
        self.client = client
        self.futures: dict = {}
        self.workers = sorted(client.nthreads())
        if not self.workers:
            raise RuntimeError("the Dask cluster has no workers")

    def put(self, items: dict, group_of=None):
        """Send data keys once, as literal tasks (recomputable if their worker dies)."""
        groups: dict = {}
        for k in items:
            w = None if group_of is None else self.workers[group_of(k) % len(self.workers)]
            groups.setdefault(w, []).append(k)
        for w, keys in groups.items():
            # the plans are sent once, by design; the size warning is about repeated sends
            with dask.config.set({"distributed.admin.large-graph-warning-threshold": "10 GiB"}):
                futs = self.client.get({k: items[k] for k in keys}, keys, sync=False,
                                       workers=None if w is None else [w],
                                       allow_other_workers=True)
            self.futures.update(zip(keys, futs))

    def ref(self, key):
        return self.futures.get(key, key)

    def forget(self, keys):
        for k in keys:
            self.futures.pop(k, None)

    def run(self, dsk: dict, change_keys: list[list], keep: list, on_round):
        flat = [k for ks in change_keys for k in ks]
        futs = self.client.get(dsk, flat + keep, sync=False)
        by_key = dict(zip(flat + keep, futs))
        changes = []
        for i, ks in enumerate(change_keys):
            vals = self.client.gather([by_key[k] for k in ks])
            changes.append(max(vals, default=0.0))
            on_round(i, changes[-1])
        self.futures.update((k, by_key[k]) for k in keep)
        return changes

    def fetch(self, keys):
        return self.client.gather([self.futures[k] for k in keys])

    def describe(self):
        nthreads = self.client.nthreads()
        return (f"dask (distributed at {self.client.scheduler.address}, {len(nthreads)} "
                f"workers, {sum(nthreads.values())} threads)")


def _runner(scheduler):
    """A runner for a scheduler name ('sync', 'threads'), a distributed Client, or None."""
    if scheduler is None:
        try:
            from distributed import default_client

            return _DistributedRunner(default_client())
        except (ImportError, ValueError):
            scheduler = "threads"
    if isinstance(scheduler, str):
        name = scheduler.lower()
        if name in ("sync", "synchronous", "single-threaded"):
            return _LocalRunner(dask.local.get_sync, "synchronous")
        if name in ("threads", "threading", "threaded"):
            return _LocalRunner(dask.threaded.get, "threaded")
        raise ValueError(f"unknown scheduler {scheduler!r}: give 'sync', 'threads' or a "
                         "distributed Client")
    return _DistributedRunner(scheduler)


# --------------------------------------------------------------------------------------
# the engine
# --------------------------------------------------------------------------------------


@dataclass
class DaskIteration:
    """The partitioned iteration on a Dask scheduler, ready to run Part I and Part III.

    Parameters
    ----------
    part
        The partitioned pedigree (:func:`bigeval.reliability.distributed.blocks.partition`).
    scheduler
        ``"sync"``, ``"threads"``, a ``distributed.Client``, or None (the default Client if
        there is one, else threads).
    rounds_per_batch
        Rounds per submitted graph.
    threads
        Numba threads per block task (1: the workers' own threads give the parallelism).
    mode
        ``"graph"``: every round as tasks of a Dask graph (any scheduler; a lost worker's
        keys are recomputed by Dask); ``"resident"``: the blocks live on the workers as
        actors that exchange halos and contributions directly
        (:mod:`bigeval.reliability.distributed.resident`; distributed only; a lost worker's batch is
        run again from a checkpoint); ``"auto"`` (default): resident under distributed,
        graph under the synchronous and threaded schedulers.

    Examples
    --------
    >>> from bigeval.reliability.distributed.blocks import partition
    >>> it = DaskIteration(partition([-1, -1, 0], [-1, -1, 1], block_size=2), "sync")
    >>> res = it(np.array([1.0, 0.0, 0.5]), 3.0, rounds=3, progress=False)
    >>> res.rounds, res.d.shape
    (3, (3,))
    """

    part: Partition
    scheduler: object = None
    rounds_per_batch: int = ROUNDS_PER_BATCH
    threads: int | None = 1
    mode: str = "auto"

    def __post_init__(self):
        self.runner = _runner(self.scheduler)
        if self.mode not in ("auto", "graph", "resident"):
            raise ValueError(f"unknown mode {self.mode!r}: give 'auto', 'graph' or 'resident'")
        distributed = isinstance(self.runner, _DistributedRunner)
        if self.mode == "resident" and not distributed:
            raise ValueError("mode='resident' needs a distributed Client")
        self._resident = None
        if distributed and self.mode != "graph":
            from bigeval.reliability.distributed.resident import ResidentIteration

            self._resident = ResidentIteration(self.part, self.runner.client,
                                               rounds_per_batch=self.rounds_per_batch)
        self._tok = uuid.uuid4().hex[:10]
        self._group = self.part.worker_of_blocks(len(getattr(self.runner, "workers", [None])))
        self._planned = False

    # keys
    def _k(self, what, *idx):
        return (f"bigeval-{what}-{self._tok}", *idx)

    def _plan(self):
        if self._planned:
            return
        items, group = {}, {}
        for b in self.part.blocks:
            k = self._k("plan", b.index)
            items[k], group[k] = b, self._group[b.index]
            for i, (P, hidx) in enumerate(zip(b.halo_blocks, b.halo_index)):
                k = self._k("hidx", P, b.index)  # used where P lives
                items[k], group[k] = hidx, self._group[P]
                k = self._k("sidx", b.index, P)
                items[k], group[k] = b.send_plan(i), self._group[b.index]
        self.runner.put(items, group_of=lambda k: group[k])
        self._planned = True

    def own_record_erc(self, n_animals, rec_animal, rec_cg, n_cg, *, sire=None, dam=None,
                       sib_adjust=False, tau=None, record_chunk: int = 1_000_000):
        """The own-record ERC blockwise on this engine's scheduler
        (:func:`.blocks.own_record_erc_blocks`): equal bit for bit to
        :func:`bigeval.reliability.erc.own_record_erc`, used by
        :func:`bigeval.reliability.engine.reliability` for the start vector."""
        arr = _blocks.own_record_erc_blocks(n_animals, rec_animal, rec_cg, n_cg, sire=sire,
                                            dam=dam, sib_adjust=sib_adjust, tau=tau,
                                            record_chunk=record_chunk)
        if isinstance(self.runner, _DistributedRunner):
            return self.runner.client.compute(arr).result()
        return dask.compute(arr, scheduler=self.runner.get)[0]

    def describe(self) -> str:
        if self._resident is not None:
            return self._resident.describe()
        return f"{self.runner.describe()}; {self.part.describe()}"

    def _round(self, dsk, tok, k, alpha, prev):
        """Add round k's tasks to ``dsk``; ``prev[X]`` refers to block X's state k - 1."""
        part, ref = self.part, self.runner.ref
        name = f"bigeval-r{tok}"
        for b in part.blocks:
            X = b.index
            halos = []
            for P in b.halo_blocks:
                hk = (f"{name}-halo", k, P, X)
                dsk[hk] = (_halo_task, prev[P], ref(self._k("hidx", P, X)))
                halos.append(hk)
            dsk[(f"{name}-solve", k, X)] = (_solve_task, self.threads, ref(self._k("plan", X)),
                                           alpha, ref(self._k(f"input{self._in_tok}", X)),
                                           prev[X], *halos)
            for P in b.halo_blocks:
                dsk[(f"{name}-send", k, X, P)] = (_send_task, (f"{name}-solve", k, X), b.n,
                                                  ref(self._k("sidx", X, P)))
        state = {}
        for b in part.blocks:
            P = b.index
            recv = [(f"{name}-send", k, X, P) for X in b.recv_blocks]
            sk = (f"{name}-state", k, P)
            dsk[sk] = (_update_task, self.threads, ref(self._k("plan", P)), alpha,
                       ref(self._k(f"input{self._in_tok}", P)), prev[P], (f"{name}-solve", k, P),
                       *recv)
            dsk[(f"{name}-change", k, P)] = (_change_task, sk)
            state[P] = sk
        return state

    def _batch(self, alpha, tok, k0, k1, start, on_round):
        """Rounds k0+1..k1 from the states ``start``; returns (changes, final state keys)."""
        dsk: dict = {}
        prev = dict(start)
        change_keys = []
        for k in range(k0 + 1, k1 + 1):
            prev = self._round(dsk, f"{tok}b{k0}", k, alpha, prev)
            change_keys.append([(f"bigeval-r{tok}b{k0}-change", k, X) for X in prev])
        keep = list(prev.values())
        changes = self.runner.run(dsk, change_keys, keep,
                                  lambda i, c: on_round(k0 + 1 + i, c))
        return changes, keep

    def __call__(self, d0, alpha: float, *, rounds: int = ROUNDS, tol: float | None = None,
                 fixed_animal=None, fixed_erc=None, label: str = "Part I",
                 progress: bool | None = None, on_round=None):
        """Run the iteration; same arguments and result as
        :func:`bigeval.reliability.engine.iterate` (caller's numbering).

        ``on_round(k, change)`` is called as each round k completes (with ``tol``, rounds of a
        batch past the stopping round are reported too, then discarded).
        """
        from bigeval.reliability.engine import IterationResult, _Progress

        if self._resident is not None:
            return self._resident(d0, alpha, rounds=rounds, tol=tol, fixed_animal=fixed_animal,
                                  fixed_erc=fixed_erc, label=label, progress=progress,
                                  on_round=on_round)
        t0 = time.perf_counter()
        part = self.part
        self._plan()
        tok = self._in_tok = uuid.uuid4().hex[:8]
        inputs = _blocks.block_inputs(part, d0, fixed_animal, fixed_erc)
        in_keys = {self._k(f"input{tok}", b.index): x for b, x in zip(part.blocks, inputs)}
        self.runner.put(in_keys, group_of=lambda k: self._group[k[1]])
        init = {}
        for b in part.blocks:
            init[(f"bigeval-r{tok}-init", 0, b.index)] = (
                _initial_state, self.runner.ref(self._k(f"input{tok}", b.index)))
        start_keys = list(init)
        self.runner.run(init, [], start_keys, lambda i, c: None)
        state = {b.index: self.runner.ref(k) for b, k in zip(part.blocks, start_keys)}
        held = list(start_keys)
        prog = _Progress(rounds, label, progress)
        changes: list[float] = []
        converged = False
        k = 0
        try:
            while k < rounds and not converged:
                k1 = min(rounds, k + max(1, int(self.rounds_per_batch)))

                def report(j, c):
                    prog.update(j, c)
                    if on_round is not None:
                        on_round(j, c)

                got, keep = self._batch(alpha, tok, k, k1, state, report)
                stop = next((i for i, c in enumerate(got) if tol is not None and c <= tol),
                            None)
                if stop is not None and k + stop + 1 < k1:
                    # the batch ran past the stopping round: redo it up to there
                    self.runner.forget(keep)
                    got2, keep = self._batch(alpha, f"{tok}s", k, k + stop + 1, state,
                                             lambda j, c: None)
                    got = got2
                self.runner.forget(held)
                held = keep
                state = {b.index: self.runner.ref(kk) for b, kk in zip(part.blocks, keep)}
                changes.extend(got)
                k += len(got)
                converged = stop is not None
            pieces = [s[0] for s in self.runner.fetch(held)]
        finally:
            self.runner.forget(held)
            self.runner.forget(list(in_keys))
            prog.close()
        return IterationResult(d=part.join(pieces), rounds=k, max_change=np.array(changes),
                               converged=converged, seconds=time.perf_counter() - t0)


def iterate_dask(d0, sire, dam, alpha: float, *, rounds: int = ROUNDS, tol: float | None = None,
                 fixed_animal=None, fixed_erc=None, block_size: int | None = None,
                 n_blocks: int | None = None, scheduler=None,
                 rounds_per_batch: int = ROUNDS_PER_BATCH, label: str = "Part I",
                 progress: bool | None = None):
    """Part I (or III) on Dask: :func:`bigeval.reliability.engine.iterate` for big pedigrees.

    Parameters
    ----------
    d0, sire, dam
        Start vector and parents (length N, -1 unknown, any numbering); numpy or Zarr arrays
        (read into this process: 24 bytes per animal).
    block_size, n_blocks
        Animals per block, or the number of blocks (:func:`.blocks.partition`).
    scheduler
        ``"sync"``, ``"threads"``, a ``distributed.Client``, or None (the default Client if
        there is one, else threads).

    Returns
    -------
    IterationResult, equal bit for bit to the in-memory engine's.
    """
    part = _blocks.partition(sire, dam, block_size=block_size, n_blocks=n_blocks)
    it = DaskIteration(part, scheduler, rounds_per_batch=rounds_per_batch)
    return it(np.asarray(d0), alpha, rounds=rounds, tol=tol, fixed_animal=fixed_animal,
              fixed_erc=fixed_erc, label=label, progress=progress)
