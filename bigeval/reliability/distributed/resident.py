"""Worker-resident blocks: the partitioned iteration with each block's state kept on a worker.

Why
---
The graph driver (:mod:`.dask_engine`) submits every round as tasks: per round and block a
halo, a solve, a send and an update task, each a trip through the scheduler, and two
dependency hops between workers. A round of 1 M animals is ~20 ms of arithmetic, so under
``distributed`` with worker processes that bookkeeping, not the arithmetic, set the time
(2.6× the in-memory engine's time at 1 M animals × 100 rounds on 2 worker processes;
resident blocks: 1.23×; benchmarks/bench_dask.py).

The scheme
----------
Each worker gets one :class:`BlockWorker` (a Dask *actor*) holding its blocks of the
partition (:mod:`.blocks`; the engine plans one block per worker, ``partition(groups=W)``):
their plans, d⁰, the fixed animals of Part III and the current ERC. A batch of rounds is one
call per actor; inside it the actors run the rounds themselves and send each other, directly
from worker to worker (never through the scheduler or the client), only what crosses
workers:

* after a block's update, the **halo** values its progeny blocks on other workers need for
  the next round (``d_P[halo_index(P→X)]``);
* after a block's family solve, the **contributions** to parents in blocks on other workers
  (``r_X[send_index(X→P)]``), or with ``partition(presum=True)`` their sums per parent (one
  value per parent of the halo: 116 836 values a round instead of 566 195 at 1 M animals on
  2 workers).

Blocks on the same worker exchange nothing: they read each other's arrays. A block works
range by range (``BlockPlan.row_ranges``): it solves first the families that need no halo
from another worker and updates first the animals no other worker sends to, and waits only
for the messages the next range needs. With generation-ordered blocks the workers then run
as a pipeline (the worker with the young animals solves while the one with their parents
updates). The client starts a batch, polls the actors' per-round changes (progress per
round, and ``tol``) and, at the end of each batch, takes a **checkpoint**: the blocks' states.

The per-block steps are :func:`.blocks.solve_rows` and :func:`.blocks.update_rows` with the
received pieces in the same order as every other driver, so the result equals the in-memory
blocked driver on the same partition bit for bit, and the in-memory engine bit for bit
without ``presum`` (where both run the same compiled kernels, see :mod:`.dask_engine`).

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

from bigeval.defaults import ROUNDS
from bigeval.reliability.distributed import blocks as _blocks
from bigeval.reliability.distributed.blocks import BlockPlan, Partition

log = logging.getLogger(__name__)

#: Rounds per batch (one actor call, one checkpoint).
ROUNDS_PER_BATCH = 20
#: Seconds between the client's progress polls (the end of a batch is seen at once).
POLL = 0.25


def keep_heap() -> bool:
    """Let glibc's malloc keep freed memory for reuse in this (worker) process.

    Dask's nanny starts workers with ``MALLOC_TRIM_THRESHOLD_`` set low, which also fixes
    glibc's mmap threshold at 128 KiB: every array of a message (MBs, every round) is then a
    fresh mapping whose pages fault in again. With the mmap threshold at 32 MiB and the trim
    threshold at 512 MiB they come from the heap (measured: 1 M animals, 2 worker processes,
    1.82× → 1.62× the in-memory time). The worker then returns freed memory to the system
    later. Returns whether the settings took (False off glibc).
    """
    import ctypes

    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3
    return bool(mallopt(m_mmap_threshold, 32 * 2**20) == 1
                and mallopt(m_trim_threshold, 512 * 2**20) == 1)


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
    heap
        Call :func:`keep_heap` in the worker process.
    """

    def __init__(self, plans: list[BlockPlan], halo_index: dict, threads: int | None,
                 heap: bool = True):
        if heap:
            keep_heap()
        self.plans = {p.index: p for p in plans}
        self.order = sorted(self.plans)
        remote_halo = {X: any(P not in self.plans for P in p.halo_blocks)
                       for X, p in self.plans.items()}
        remote_recv = {X: any(Q not in self.plans for Q in p.recv_blocks)
                       for X, p in self.plans.items()}
        # the blocks' row ranges (BlockPlan.row_ranges): solved first those that need no halo
        # from another worker, and updated first those no other worker sends contributions
        # to; they run while the messages travel
        ranges = [(X, lo, hi, cls) for X in self.order
                  for lo, hi, cls in self.plans[X].row_ranges() if hi > lo]
        self.solve_units = sorted(ranges, key=lambda u: bool(u[3] & 1 and remote_halo[u[0]]))
        self.update_units = sorted(ranges, key=lambda u: bool(u[3] & 2 and remote_recv[u[0]]))
        self._last_solve = {u[0]: i for i, u in enumerate(self.solve_units)}
        self._last_update = {u[0]: i for i, u in enumerate(self.update_units)}
        self._scatter = {(X, lo, hi): _blocks.scatter_rows(self.plans[X], lo, hi)
                         for X, lo, hi, _ in ranges}
        self.halo_index = halo_index
        self.threads = threads
        self.route: dict = {}
        self.runs: dict = {}
        self.inbox: dict = {}
        self.waiters: dict = {}
        self.aborted: set = set()
        #: seconds spent in the solve and update steps (gathers included) and waiting for
        #: messages, over all runs
        self.seconds = {"solve": 0.0, "update": 0.0, "wait": 0.0}
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="bigeval-blocks")
        #: per block: work arrays reused every round (``r`` = [r_a | r_s | r_m | received]),
        #: and two buffers for its state, each ``[d (n_X) | halos]``, used in turn (the state
        #: is read from one, the next written to the other)
        self._work = {X: {"r": np.empty(3 * p.n + p.n_received), "progeny": np.empty(p.n)}
                      for X, p in self.plans.items()}
        self._state_buffers = {
            X: tuple(np.empty(p.n + sum(len(h) for h in p.halo_index)) for _ in range(2))
            for X, p in self.plans.items()}
        self._current = {X: 0 for X in self.plans}

    # ---- set-up, called by the client -----------------------------------------------

    async def connect(self, route: dict) -> bool:
        """``route[X] = (worker address, actor key)`` of every block's actor."""
        self.route = route
        return True

    async def start(self, rid: str, alpha: float, inputs: dict, state: dict) -> bool:
        """Load a run: d⁰ and fixed values (``inputs[X]``) and the state to start from."""
        d = {}
        for X, values in state.items():
            buf = self._state_buffers[X][0]
            buf[:len(values)] = values
            d[X] = buf[:len(values)]
            self._current[X] = 0
        self.runs = {rid: {"alpha": float(alpha), "inputs": inputs, "d": d, "changes": {}}}
        self.inbox = {k: v for k, v in self.inbox.items() if k[0] == rid}
        return True

    async def progress(self, rid: str, k0: int) -> list:
        """The largest change of this worker's blocks in rounds k0+1, k0+2, … done so far."""
        changes = self.runs[rid]["changes"] if rid in self.runs else {}
        out = []
        while k0 + 1 + len(out) in changes:
            out.append(changes[k0 + 1 + len(out)])
        return out

    async def state(self, rid: str) -> dict:
        """The current ERC of this worker's blocks (a checkpoint: copies, as the arrays are
        reused by the next rounds)."""
        return {X: np.array(d) for X, d in self.runs[rid]["d"].items()}

    async def timings(self) -> dict:
        """Seconds spent solving, updating and waiting for messages (all runs)."""
        return dict(self.seconds)

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
        t = time.perf_counter()
        try:
            return await fut
        finally:
            self.waiters.pop(key, None)
            self.seconds["wait"] += time.perf_counter() - t

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

    def _solve(self, X, lo, hi, alpha, own, d, halos, last):
        """Gather and family solve of block X's rows lo..hi-1, with X's halos put in place
        first when given (local ones read here, remote ones received); with ``last`` (X is
        then solved) returns the contributions for blocks on other workers."""
        t = time.perf_counter()
        plan = self.plans[X]
        x = self._state_buffers[X][self._current[X]]
        if halos is not None:
            at = plan.n
            for P, h in zip(plan.halo_blocks, halos):
                if h is None:
                    h = _blocks.halo_values(d[P], self.halo_index[(P, X)])
                x[at:at + len(h)] = h
                at += len(h)
        with _blocks.numba_threads(self.threads):
            _blocks.solve_rows(plan, alpha, x, lo, hi, self._work[X], own)
            out = self._contributions(X) if last else {}
        self.seconds["solve"] += time.perf_counter() - t
        return out

    def _contributions(self, X) -> dict:
        """What block X (solved) sends each halo block on another worker: ``{P: values}``."""
        plan = self.plans[X]
        return {P: _blocks.contributions_to(plan, self._work[X]["r"], P)
                for P in plan.halo_blocks if P not in self.plans}

    def _update(self, P, lo, hi, alpha, inputs, received, halos):
        """Sum over progeny and damping of block P's rows lo..hi-1 into its next state, with
        the contributions P receives put in place first when given (local ones read here);
        returns the largest change, and with ``halos`` (P's next state is then complete) the
        halo values for blocks on other workers."""
        t = time.perf_counter()
        plan = self.plans[P]
        r = self._work[P]["r"]
        n = plan.n
        if received is not None:
            at = 3 * n
            for X, c in zip(plan.recv_blocks, received):
                if c is None:
                    c = _blocks.contributions_to(self.plans[X], self._work[X]["r"], P)
                r[at:at + len(c)] = c
                at += len(c)
        cur = self._state_buffers[P][self._current[P]][:n]
        nxt = self._state_buffers[P][1 - self._current[P]][:n]
        with _blocks.numba_threads(self.threads):
            change = _blocks.update_rows(plan, alpha, inputs[P], cur, r[:n], r[n:], lo, hi,
                                         self._work[P]["progeny"], nxt,
                                         self._scatter[(P, lo, hi)])
        out = self._halos(P, nxt) if halos else {}
        self.seconds["update"] += time.perf_counter() - t
        return change, out

    def _halos(self, P, d_P) -> dict:
        """The halo values block P sends each block on another worker: ``{X: values}``."""
        return {X: _blocks.halo_values(d_P, self.halo_index[(P, X)])
                for X in self.plans[P].recv_blocks if X not in self.plans}

    def _post(self, rid, k, kind, src, messages, sends):
        for dst, data in messages.items():
            sends.append(asyncio.ensure_future(self._send(dst, (rid, k, kind, src, dst), data)))

    async def run(self, rid: str, k0: int, k1: int) -> list:
        """Rounds k0+1..k1 from the current state; returns this worker's change per round."""
        run = self.runs[rid]
        loop = asyncio.get_running_loop()
        alpha, inputs = run["alpha"], run["inputs"]
        sends: list = []
        pool = self._pool
        try:
            if k1 > k0:
                for P in self.order:
                    self._post(rid, k0 + 1, "h", P, self._halos(P, run["d"][P]), sends)
            for k in range(k0 + 1, k1 + 1):
                placed = set()
                for i, (X, lo, hi, cls) in enumerate(self.solve_units):
                    halos = None
                    if cls & 1 and X not in placed:  # X's halos, before its first such rows
                        placed.add(X)
                        halos = [await self._take((rid, k, "h", P, X))
                                 if P not in self.plans else None
                                 for P in self.plans[X].halo_blocks]
                    last = self._last_solve[X] == i  # X solved: its contributions go out
                    out = await loop.run_in_executor(pool, self._solve, X, lo, hi, alpha,
                                                     inputs[X].own, run["d"], halos, last)
                    self._post(rid, k, "c", X, out, sends)
                placed = set()
                change = 0.0
                for i, (P, lo, hi, cls) in enumerate(self.update_units):
                    received = None
                    if cls & 2 and P not in placed:
                        placed.add(P)
                        received = [await self._take((rid, k, "c", X, P))
                                    if X not in self.plans else None
                                    for X in self.plans[P].recv_blocks]
                    last = self._last_update[P] == i  # P's next state is complete
                    c, out = await loop.run_in_executor(pool, self._update, P, lo, hi, alpha,
                                                        inputs, received, last and k < k1)
                    change = max(change, c)
                    self._post(rid, k + 1, "h", P, out, sends)
                    if last:
                        self._current[P] = 1 - self._current[P]
                run["d"] = {X: self._state_buffers[X][self._current[X]][:self.plans[X].n]
                            for X in self.order}
                run["changes"][k] = change
                done = [s for s in sends if s.done()]
                for s in done:
                    s.result()  # a failed send fails the batch
                sends = [s for s in sends if not s.done()]
            await asyncio.gather(*sends)
        finally:
            for s in sends:
                s.cancel()
        return [run["changes"][k] for k in range(k0 + 1, k1 + 1)]


class ResidentIteration:
    """The partitioned iteration with worker-resident blocks on a ``distributed`` cluster.

    Same call and result as :class:`bigeval.reliability.distributed.dask_engine.DaskIteration`.

    Parameters
    ----------
    part
        The partitioned pedigree (:func:`bigeval.reliability.distributed.blocks.partition`).
    client
        A ``distributed.Client``.
    rounds_per_batch
        Rounds per actor call and checkpoint.
    threads
        Numba threads per worker (default: the worker's thread count).
    max_restarts
        Batches re-run after lost workers before giving up.
    keep_heap
        Let the workers' malloc keep freed memory for reuse (:func:`keep_heap`).
    """

    def __init__(self, part: Partition, client, *, rounds_per_batch: int = ROUNDS_PER_BATCH,
                 threads: int | None = None, max_restarts: int = 3, keep_heap: bool = True):
        self.keep_heap = keep_heap
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
        self._group = self.part.worker_of_blocks(len(workers))
        nw = max(self._group) + 1
        tok = uuid.uuid4().hex[:10]
        futures = []
        for g in range(nw):
            mine = [b for b in self.part.blocks if self._group[b.index] == g]
            hidx = {(P, b.index): idx for b in self.part.blocks
                    for P, idx in zip(b.halo_blocks, b.halo_index) if self._group[P] == g}
            w = workers[g]
            data = self.client.scatter([mine, hidx], workers=[w], direct=True, hash=False)
            futures.append(self.client.submit(
                BlockWorker, *data, self.threads or nthreads[w], self.keep_heap,
                actor=True, workers=[w],
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
            waiting = [r for r in runs if not r.done()]
            if waiting:
                try:  # back as soon as the batch ends, else after POLL for the progress
                    waiting[0].result(timeout=POLL)
                except TimeoutError:
                    pass
            finished = all(r.done() for r in runs)
            for r in runs:
                if r.done():
                    r.result()  # raises the actor's error (a lost worker among them)
            progress = [a.progress(rid, k0).result(timeout=60) for a in self._actors]
            done = min(len(p) for p in progress)
            while reported < k0 + done:
                i = reported - k0
                reported += 1
                on_round(reported, max(p[i] for p in progress))
            if finished:
                return [max(p[i] for p in progress) for i in range(k1 - k0)]
            if not workers0 <= set(self.client.nthreads()):
                raise BatchAborted("a worker left the cluster")

    def _abort(self, rid):
        for a in self._actors:
            try:
                a.abort(rid).result(timeout=5)
            except Exception:  # noqa: BLE001 - the lost worker's actor among them
                pass

    def __call__(self, d0, alpha: float, *, rounds: int = ROUNDS, tol: float | None = None,
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
        high = [0]

        def report_new(j, c):  # a batch run again reports its rounds once
            if j > high[0]:
                high[0] = j
                report(j, c)

        rid = None
        try:
            if not self._actors:
                self._start_actors()
            while k < rounds and not converged:
                k1 = min(rounds, k + self.rounds_per_batch)
                while True:
                    try:
                        if rid is None:  # (re)load the actors from the checkpoint
                            rid = uuid.uuid4().hex[:12]
                            self._load(rid, alpha, inputs, checkpoint)
                        got, rid = self._attempt(rid, alpha, inputs, checkpoint, k, k1, tol,
                                                 report_new)
                        checkpoint = self._checkpoint(rid)
                        break
                    except Exception as exc:  # noqa: BLE001 - decide below
                        if rid is not None:
                            self._abort(rid)
                        rid = None
                        if not self._lost_worker(exc):
                            raise
                        self.restarts += 1
                        if self.restarts > self.max_restarts:
                            raise RuntimeError(
                                f"workers were lost {self.restarts} times; giving up") from exc
                        log.warning("a Dask worker was lost in rounds %d-%d (%s); starting "
                                    "the blocks again on the workers left, from round %d",
                                    k + 1, k1, exc, k)
                        self.client.wait_for_workers(1, timeout=300)
                        self._start_actors()
                changes.extend(got)
                k += len(got)
                converged = tol is not None and got[-1] <= tol
        finally:
            prog.close()
        d = part.join([checkpoint[X] for X in range(part.n_blocks)])
        return IterationResult(d=d, rounds=k, max_change=np.array(changes),
                               converged=converged, seconds=time.perf_counter() - t0)

    def _attempt(self, rid, alpha, inputs, checkpoint, k0, k1, tol, report):
        """One batch, rounds k0+1..k1, on actors holding the state of round k0 (``rid``):
        returns (changes per round, rid). With ``tol`` met inside the batch, the actors are
        loaded again from the checkpoint and the batch is run up to that round."""
        got = self._batch(rid, k0, k1, report)
        stop = next((i for i, c in enumerate(got) if tol is not None and c <= tol), None)
        if stop is not None and stop + 1 < len(got):
            self._abort(rid)
            rid = uuid.uuid4().hex[:12]
            self._load(rid, alpha, inputs, checkpoint)
            got = self._batch(rid, k0, k0 + stop + 1, lambda j, c: None)
        return got, rid

    def _checkpoint(self, rid) -> dict:
        """The blocks' states, fetched to the client (copies made on the workers)."""
        states = [a.state(rid) for a in self._actors]
        out = {}
        for s in states:
            out.update(s.result())
        return out

    def _lost_worker(self, exc) -> bool:
        """Whether ``exc`` (or what caused it) means a worker went away."""
        from distributed.comm.core import CommClosedError

        seen = exc
        while seen is not None:
            if isinstance(seen, (BatchAborted, CommClosedError, OSError)):
                return True
            if isinstance(seen, RuntimeError) and "Actor was lost" in str(seen):
                return True
            seen = seen.__cause__ or seen.__context__
        return False

    def close(self):
        self._drop_actors()
