"""Worker-resident blocks: the partitioned iteration with each block's state kept on a worker.

Why
---
The graph driver (:mod:`.dask_engine`) submits every round as tasks: per round and block a
halo, a solve, a send and an update task, each a trip through the scheduler, and two
dependency hops between workers. A round of 1 M animals is ~20 ms of arithmetic, so under
``distributed`` with worker processes that bookkeeping, not the arithmetic, set the time
(2.85× the in-memory engine, benchmarks/bench_dask.py).

The scheme
----------
Each worker gets one :class:`BlockWorker` (a Dask *actor*) holding a contiguous group of the
partition's blocks (:mod:`.blocks`): their plans, d⁰, the fixed animals of Part III and the
current ERC. A batch of rounds is one call per actor; inside it the actors run the rounds
themselves and send each other, directly from worker to worker (never through the
scheduler or the client), only what crosses blocks:

* after a block's update, the **halo** values its progeny blocks on other workers need for
  the next round (``d_P[halo_index(P→X)]``);
* after a block's family solve, the **contributions** to parents in blocks on other workers
  (``r_X[send_index(X→P)]``).

Blocks on the same worker exchange nothing: they read each other's arrays. An actor waits
only for the messages its own blocks need, so with generation-ordered blocks the workers run
as a pipeline (the worker with the young animals solves while the one with their parents
updates). The client starts a batch, polls the actors' per-round changes (progress per
round, and ``tol``) and, at the end of each batch, takes a **checkpoint**: the blocks' states.

The per-block steps are :func:`.blocks.solve_block` and :func:`.blocks.update_block` with the
received pieces in the same order as every other driver, so the result equals the in-memory
engine bit for bit (where both run the same compiled kernels, see :mod:`.dask_engine`).

Failures
--------
Actors are not recomputed by Dask as tasks are. When a worker is lost inside a batch, its
actor's calls fail (or the worker leaves the cluster): the client aborts the batch on the
other actors, starts new actors on the workers that are there (the restarted one included),
loads the checkpoint of the batch's start into them, and runs the batch again. The iteration
is deterministic, so the result is unchanged; only the lost batch is recomputed.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from bigeval.reliability import blocks as _blocks
from bigeval.reliability.blocks import BlockInput, BlockPlan, Partition

log = logging.getLogger(__name__)

#: Rounds per batch (one actor call, one checkpoint).
ROUNDS_PER_BATCH = 20
#: Seconds between the client's progress polls.
POLL = 0.05


class BatchAborted(RuntimeError):
    """A batch was stopped by the client (a worker was lost)."""


class BlockWorker:
    """The actor: a worker's group of blocks and their state (see the module docstring).

    Parameters
    ----------
    plans
        The :class:`~.blocks.BlockPlan` of each block of this worker.
    halo_index
        ``{(P, X): index}`` for every block P of this worker and every block X with P in its
        halo: the positions within P of the parents X needs.
    threads
        Numba threads for this worker's kernels.
    """

    def __init__(self, plans: list[BlockPlan], halo_index: dict, threads: int | None):
        self.plans = {p.index: p for p in plans}
        self.order = sorted(self.plans)
        self.halo_index = halo_index
        self.threads = threads
        self.route: dict = {}
        self.runs: dict = {}
        self.inbox: dict = {}
        self.waiters: dict = {}
        self.aborted: set = set()
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="bigeval-blocks")

    # ---- set-up, called by the client -----------------------------------------------

    async def connect(self, route: dict) -> bool:
        """``route[X] = (worker address, actor key)`` of every block's actor."""
        self.route = route
        return True

    async def start(self, rid: str, alpha: float, inputs: dict, state: dict) -> bool:
        """Load a run: d⁰ and fixed values (``inputs[X]``) and the state to start from."""
        self.runs = {rid: {"alpha": float(alpha), "inputs": inputs, "d": dict(state),
                           "changes": []}}
        self.inbox = {k: v for k, v in self.inbox.items() if k[0] == rid}
        return True

    async def progress(self, rid: str) -> list:
        """The largest change of this worker's blocks in each round done so far."""
        run = self.runs.get(rid)
        return [] if run is None else list(run["changes"])

    async def state(self, rid: str) -> dict:
        """The current ERC of this worker's blocks (a checkpoint)."""
        return dict(self.runs[rid]["d"])

    async def abort(self, rid: str) -> bool:
        self.aborted.add(rid)
        for key, fut in list(self.waiters.items()):
            if key[0] == rid and not fut.done():
                fut.set_exception(BatchAborted(f"batch {rid} aborted"))
        return True

    # ---- messages between actors -----------------------------------------------------

    async def post(self, key: tuple, data: np.ndarray) -> bool:
        """Receive a halo (``key = (rid, round, "h", P, X)``) or contributions (``"c"``)."""
        fut = self.waiters.pop(key, None)
        if fut is not None and not fut.done():
            fut.set_result(data)
        elif key[0] not in self.aborted:
            self.inbox[key] = data
        return True

    async def _take(self, key: tuple) -> np.ndarray:
        if key in self.inbox:
            return self.inbox.pop(key)
        if key[0] in self.aborted:
            raise BatchAborted(f"batch {key[0]} aborted")
        fut = asyncio.get_running_loop().create_future()
        self.waiters[key] = fut
        try:
            return await fut
        finally:
            self.waiters.pop(key, None)

    async def _send(self, block: int, key: tuple, data: np.ndarray):
        from distributed import get_worker
        from distributed.protocol import to_serialize

        address, actor = self.route[block]
        reply = await get_worker().rpc(address).actor_execute(
            actor=actor, function="post", args=[to_serialize(key), to_serialize(data)],
            kwargs={})
        if reply.get("status") != "OK":
            raise RuntimeError(f"sending {key[2:]} to block {block} failed: "
                               f"{reply.get('exception')!r}")

    # ---- the rounds ------------------------------------------------------------------

    def _solve(self, plan, alpha, d, halos):
        with _blocks.numba_threads(self.threads):
            return _blocks.solve_block(plan, alpha, d, *halos)

    def _update(self, plan, alpha, inputs, d, solved, recv):
        with _blocks.numba_threads(self.threads):
            return _blocks.update_block(plan, alpha, inputs, d, solved, *recv)

    def _post_halos(self, rid, k, P, d_P, sends):
        for X in self.plans[P].recv_blocks:  # the blocks with P in their halo
            if X not in self.plans:
                data = _blocks.halo_values(d_P, self.halo_index[(P, X)])
                sends.append(asyncio.ensure_future(self._send(X, (rid, k, "h", P, X), data)))

    async def run(self, rid: str, k0: int, k1: int) -> list:
        """Rounds k0+1..k1 from the current state; returns this worker's change per round."""
        run = self.runs[rid]
        loop = asyncio.get_running_loop()
        alpha, inputs, d = run["alpha"], run["inputs"], run["d"]
        sends: list = []
        try:
            if k1 > k0:
                for P in self.order:
                    self._post_halos(rid, k0 + 1, P, d[P], sends)
            for k in range(k0 + 1, k1 + 1):
                solved = {}
                for X in self.order:  # gather + family solve, contributions sent at once
                    plan = self.plans[X]
                    halos = []
                    for P in plan.halo_blocks:
                        if P in self.plans:
                            halos.append(_blocks.halo_values(d[P], self.halo_index[(P, X)]))
                        else:
                            halos.append(await self._take((rid, k, "h", P, X)))
                    solved[X] = await loop.run_in_executor(self._pool, self._solve, plan,
                                                           alpha, d[X], halos)
                    for P, index in zip(plan.halo_blocks, plan.send_index):
                        if P not in self.plans:
                            data = _blocks.send_values(solved[X], plan.n, index)
                            sends.append(asyncio.ensure_future(
                                self._send(P, (rid, k, "c", X, P), data)))
                new, change = {}, 0.0
                for P in self.order:  # sum over progeny + damping, halos sent at once
                    plan = self.plans[P]
                    recv = []
                    for X in plan.recv_blocks:
                        if X in self.plans:
                            px = self.plans[X]
                            recv.append(_blocks.send_values(
                                solved[X], px.n, px.send_index[px.halo_blocks.index(P)]))
                        else:
                            recv.append(await self._take((rid, k, "c", X, P)))
                    new[P], c = await loop.run_in_executor(
                        self._pool, self._update, plan, alpha, inputs[P], d[P], solved[P], recv)
                    change = max(change, c)
                    if k < k1:
                        self._post_halos(rid, k + 1, P, new[P], sends)
                d = run["d"] = new
                run["changes"].append(change)
                done = [s for s in sends if s.done()]
                for s in done:
                    s.result()  # a failed send fails the batch
                sends = [s for s in sends if not s.done()]
            await asyncio.gather(*sends)
        finally:
            for s in sends:
                s.cancel()
        return run["changes"][-(k1 - k0):] if k1 > k0 else []

    def close(self):
        self._pool.shutdown(wait=False)


class ResidentIteration:
    """The partitioned iteration with worker-resident blocks on a ``distributed`` cluster.

    Same call and result as :class:`bigeval.reliability.dask_engine.DaskIteration`.

    Parameters
    ----------
    part
        The partitioned pedigree (:func:`bigeval.reliability.blocks.partition`).
    client
        A ``distributed.Client``.
    rounds_per_batch
        Rounds per actor call and checkpoint.
    threads
        Numba threads per worker (default: the worker's thread count).
    max_restarts
        Batches re-run after lost workers before giving up.
    """

    def __init__(self, part: Partition, client, *, rounds_per_batch: int = ROUNDS_PER_BATCH,
                 threads: int | None = None, max_restarts: int = 3):
        self.part, self.client = part, client
        self.rounds_per_batch = max(1, int(rounds_per_batch))
        self.threads = threads
        self.max_restarts = max_restarts
        self.restarts = 0
        self._actors: list = []
        self._futures: list = []
        self._group: list[int] = []

    # ---- actors ----------------------------------------------------------------------

    def _start_actors(self):
        """One actor per worker (at most one per block), blocks in contiguous groups."""
        self._drop_actors()
        nthreads = self.client.nthreads()
        workers = sorted(nthreads)
        if not workers:
            raise RuntimeError("the Dask cluster has no workers")
        nb = self.part.n_blocks
        nw = min(len(workers), nb)
        self._group = [x * nw // nb for x in range(nb)]
        tok = uuid.uuid4().hex[:10]
        futures = []
        for g in range(nw):
            mine = [b for b in self.part.blocks if self._group[b.index] == g]
            hidx = {(P, b.index): idx for b in self.part.blocks
                    for P, idx in zip(b.halo_blocks, b.halo_index) if self._group[P] == g}
            w = workers[g]
            data = self.client.scatter([mine, hidx], workers=[w], direct=True, hash=False)
            futures.append(self.client.submit(
                BlockWorker, *data, self.threads or nthreads[w], actor=True, workers=[w],
                allow_other_workers=False, pure=False, key=f"bigeval-blockworker-{tok}-{g}"))
            futures.extend(data)
        self._futures = futures
        self._actors = [f.result() for f in futures[::3]]
        route = {b.index: (self._actors[self._group[b.index]]._address,
                           self._actors[self._group[b.index]].key) for b in self.part.blocks}
        for a in [a.connect(route) for a in self._actors]:
            a.result()

    def _drop_actors(self):
        for f in self._futures:
            f.release()
        self._actors, self._futures = [], []

    def describe(self) -> str:
        nthreads = self.client.nthreads()
        return (f"dask (distributed at {self.client.scheduler.address}, {len(nthreads)} "
                f"workers, {sum(nthreads.values())} threads; blocks resident on the workers); "
                f"{self.part.describe()}")

    # ---- a batch ---------------------------------------------------------------------

    def _load(self, rid, alpha, inputs, state):
        calls = []
        for g, a in enumerate(self._actors):
            blocks = [X for X in range(self.part.n_blocks) if self._group[X] == g]
            calls.append(a.start(rid, alpha, {X: inputs[X] for X in blocks},
                                 {X: state[X] for X in blocks}))
        for c in calls:
            c.result()

    def _batch(self, rid, k0, k1, on_round):
        """Rounds k0+1..k1 on the actors; returns the change per round."""
        runs = [a.run(rid, k0, k1) for a in self._actors]
        reported = k0
        workers0 = {a._address for a in self._actors}
        while True:
            finished = all(r.done() for r in runs)
            for r in runs:
                if r.done():
                    r.result()  # raises the actor's error (a lost worker among them)
            progress = [a.progress(rid).result(timeout=60) for a in self._actors]
            done = min(len(p) for p in progress)
            while reported < k0 + done:
                i = reported - k0
                reported += 1
                on_round(reported, max(p[i] for p in progress))
            if finished:
                return [max(p[i] for p in progress) for i in range(k1 - k0)]
            if not workers0 <= set(self.client.nthreads()):
                raise BatchAborted("a worker left the cluster")
            time.sleep(POLL)

    def _abort(self, rid):
        for a in self._actors:
            try:
                a.abort(rid).result(timeout=5)
            except Exception:  # noqa: BLE001 - the lost worker's actor among them
                pass

    def __call__(self, d0, alpha: float, *, rounds: int = 100, tol: float | None = None,
                 fixed_animal=None, fixed_erc=None, label: str = "Part I",
                 progress: bool | None = None, on_round=None):
        """Run the iteration; same arguments and result as
        :func:`bigeval.reliability.engine.iterate` (caller's numbering)."""
        from bigeval.reliability.engine import IterationResult, _Progress

        t0 = time.perf_counter()
        part = self.part
        pieces = _blocks.block_inputs(part, d0, fixed_animal, fixed_erc)
        inputs = dict(enumerate(pieces))
        checkpoint = {X: x.d0 for X, x in inputs.items()}
        prog = _Progress(rounds, label, progress)

        def report(k, c):
            prog.update(k, c)
            if on_round is not None:
                on_round(k, c)

        changes: list[float] = []
        converged = False
        k = 0
        rid = None
        try:
            if not self._actors:
                self._start_actors()
            while k < rounds and not converged:
                k1 = min(rounds, k + self.rounds_per_batch)
                got = None
                while got is None:
                    rid = uuid.uuid4().hex[:12]
                    try:
                        self._load(rid, alpha, inputs, checkpoint)
                        got = self._batch(rid, k, k1, report)
                    except Exception as exc:  # noqa: BLE001 - decide below
                        if not self._lost_worker(exc):
                            raise
                        self._abort(rid)
                        self.restarts += 1
                        if self.restarts > self.max_restarts:
                            raise RuntimeError(
                                f"workers were lost {self.restarts} times; giving up") from exc
                        log.warning("a Dask worker was lost in rounds %d-%d (%s); starting "
                                    "the blocks again on the workers left, from round %d",
                                    k + 1, k1, exc, k)
                        self.client.wait_for_workers(1, timeout=300)
                        self._start_actors()
                stop = next((i for i, c in enumerate(got) if tol is not None and c <= tol),
                            None)
                if stop is not None and stop + 1 < len(got):
                    # the batch ran past the stopping round: run it again up to there
                    rid = uuid.uuid4().hex[:12]
                    self._load(rid, alpha, inputs, checkpoint)
                    got = self._batch(rid, k, k + stop + 1, lambda j, c: None)
                states = [a.state(rid) for a in self._actors]
                checkpoint = {}
                for s in states:
                    checkpoint.update(s.result())
                changes.extend(got)
                k += len(got)
                converged = stop is not None
        finally:
            prog.close()
        d = part.join([checkpoint[X] for X in range(part.n_blocks)])
        return IterationResult(d=d, rounds=k, max_change=np.array(changes),
                               converged=converged, seconds=time.perf_counter() - t0)

    def _lost_worker(self, exc) -> bool:
        """Whether ``exc`` (or what caused it) means a worker went away."""
        from distributed.comm.core import CommClosedError

        seen = exc
        while seen is not None:
            if isinstance(seen, (BatchAborted, CommClosedError, OSError, EnvironmentError)):
                return True
            if isinstance(seen, RuntimeError) and "Actor was lost" in str(seen):
                return True
            seen = seen.__cause__ or seen.__context__
        return False

    def close(self):
        self._drop_actors()
