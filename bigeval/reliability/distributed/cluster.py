"""Where the reliability iteration runs: in memory, on an embedded Dask cluster, or a real one.

* ``engine="memory"`` — the in-memory engine (:func:`bigeval.reliability.engine.iterate`).
* ``engine="dask"`` — the partitioned engine (:mod:`bigeval.reliability.distributed.dask_engine`)
  on a
  ``distributed`` cluster: the one at ``scheduler`` (an address such as
  ``tcp://10.0.0.5:8786``), else one started from a cluster file (``--cluster FILE``: SLURM or
  PBS through dask-jobqueue, Kubernetes through the dask-kubernetes operator, see
  ``cluster/``), else an embedded ``LocalCluster`` sized to this machine.
* ``engine="auto"`` (default) — ``dask`` when a scheduler or cluster file is given (or set in
  the Dask config, key ``bigeval.scheduler`` or ``scheduler-address``), or when the pedigree
  has more than ``bigeval.auto-dask-animals`` animals (default 20 000 000); otherwise the
  in-memory engine, which is the fastest on one machine. The choice and its reason are
  reported.

The Dask config keys (``~/.config/dask/bigeval.yaml`` or ``DASK_BIGEVAL__SCHEDULER=…``):
``bigeval.scheduler``, ``bigeval.engine``, ``bigeval.block-size``, ``bigeval.exact-sums``,
``bigeval.auto-dask-animals``.
"""

from __future__ import annotations

import contextlib
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import dask
import numpy as np

from bigeval.errors import InputError

#: Above this many animals ``engine="auto"`` runs on Dask even without a cluster.
AUTO_DASK_ANIMALS = 20_000_000
#: Bytes per animal of the partitioned iteration on the workers (state, plan, d⁰, buffers of
#: one round; measured ≈ 130 B at 1 M animals in 2 blocks) — used to size workers.
DASK_BYTES_PER_ANIMAL = 160

ENGINES = ("auto", "memory", "dask")
CLUSTER_KINDS = ("local", "slurm", "pbs", "kubernetes")


def _config(key, default=None):
    return dask.config.get(f"bigeval.{key}", default)


def configured_scheduler() -> str | None:
    """The scheduler address from the Dask config (``bigeval.scheduler``/``scheduler-address``)."""
    return _config("scheduler") or dask.config.get("scheduler-address", None)


def machine_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def choose_engine(n_animals: int, engine: str | None = "auto", *, scheduler: str | None = None,
                  cluster: str | os.PathLike | None = None) -> tuple[str, str]:
    """``("memory" | "dask", reason)`` for a pedigree of ``n_animals``.

    Examples
    --------
    >>> choose_engine(1_000, "auto")[0]
    'memory'
    >>> choose_engine(1_000, "auto", scheduler="tcp://10.0.0.5:8786")
    ('dask', 'a scheduler is given')
    """
    engine = engine or _config("engine", "auto")
    if engine not in ENGINES:
        raise InputError("unknown engine", value=engine, expected=" | ".join(ENGINES),
                         remedy="give --engine auto, memory or dask")
    if engine != "auto":
        return engine, "asked for"
    if scheduler or configured_scheduler():
        return "dask", "a scheduler is given"
    if cluster:
        return "dask", "a cluster file is given"
    limit = int(_config("auto-dask-animals", AUTO_DASK_ANIMALS))
    if n_animals > limit:
        return "dask", f"{n_animals:,} animals > {limit:,}"
    return "memory", f"{n_animals:,} animals ≤ {limit:,}: in memory is fastest on one machine"


def worker_memory(n_animals: int, n_workers: int) -> int:
    """Bytes of state one of ``n_workers`` workers holds for the partitioned iteration.

    The rule of ``cluster/README.md``: :data:`DASK_BYTES_PER_ANIMAL` bytes per animal, split
    over the workers; give workers at least twice this plus ~1 GiB for Python, numba and the
    task in flight.

    Examples
    --------
    >>> worker_memory(10_000_000, 4) // 2**20
    381
    """
    return int(np.ceil(n_animals * DASK_BYTES_PER_ANIMAL / max(1, n_workers)))


# --------------------------------------------------------------------------------------
# clusters
# --------------------------------------------------------------------------------------


#: where the Dask dashboard of a cluster bigeval starts listens: this machine only (it serves
#: logs, metrics and a proxy without authentication). To reach it from elsewhere on purpose,
#: set ``dashboard_address`` in a local cluster file (e.g. ``":8787"``, all interfaces) or
#: tunnel to it (``ssh -L 8787:127.0.0.1:PORT``).
DASHBOARD_ADDRESS = "127.0.0.1:0"


def _local_cluster_settings() -> set:
    """Settings a ``kind: local`` cluster file may hold: LocalCluster's own, and those it
    passes on to its workers (Nanny, Worker)."""
    import inspect

    from distributed import LocalCluster, Nanny, Worker

    names = set()
    for f in (LocalCluster.__init__, Nanny.__init__, Worker.__init__):
        names |= {p.name for p in inspect.signature(f).parameters.values()
                  if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)}
    return names - {"self", "n_workers"}


def load_cluster_config(path: str | os.PathLike) -> dict:
    """Read a cluster file (YAML): ``kind`` (local | slurm | pbs | kubernetes), ``workers``,
    and the settings of that kind (passed to dask-jobqueue / dask-kubernetes as they are)."""
    import yaml

    path = Path(path)
    try:
        cfg = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise InputError("cannot read the cluster file", file=path, value=str(exc),
                         remedy="check the path (examples in cluster/)") from exc
    except yaml.YAMLError as exc:
        line = getattr(getattr(exc, "problem_mark", None), "line", None)
        raise InputError("the cluster file is not valid YAML", file=path,
                         line=None if line is None else line + 1, value=str(exc)) from exc
    if not isinstance(cfg, dict) or cfg.get("kind") not in CLUSTER_KINDS:
        raise InputError("the cluster file needs a 'kind'", file=path,
                         value=None if not isinstance(cfg, dict) else cfg.get("kind"),
                         expected=" | ".join(CLUSTER_KINDS),
                         remedy="start from one of the files in cluster/")
    workers = cfg.get("workers", 1)
    if not isinstance(workers, int) or workers < 1:
        raise InputError("'workers' must be a whole number ≥ 1", file=path, value=workers)
    if cfg["kind"] == "local":
        # an unknown setting reaches every worker, which then fails to start and the run
        # waits for workers that never come: refuse it here
        import difflib

        known = _local_cluster_settings() | {"kind", "workers", "wait_timeout"}
        unknown = sorted(k for k in cfg if k not in known)
        if unknown:
            close = difflib.get_close_matches(unknown[0], sorted(known), n=1)
            raise InputError(f"unknown setting '{unknown[0]}' for a local cluster", file=path,
                             value=unknown[0],
                             expected="a setting of distributed.LocalCluster or of its workers"
                                      + (f" (did you mean '{close[0]}'?)" if close else ""),
                             remedy="fix or remove it (examples in cluster/local.yaml)")
    return cfg


def make_cluster(cfg: dict):
    """A (not yet scaled) Dask cluster object for a cluster file's settings.

    SLURM and PBS need ``dask-jobqueue``, Kubernetes ``dask-kubernetes`` (``pip install
    'bigeval[cluster]'``).
    """
    kind = cfg["kind"]
    settings = {k: v for k, v in cfg.items() if k not in ("kind", "workers", "wait_timeout")}
    if kind == "local":
        from distributed import LocalCluster

        return LocalCluster(n_workers=0, **{"dashboard_address": DASHBOARD_ADDRESS, **settings})
    if kind in ("slurm", "pbs"):
        try:
            import dask_jobqueue
        except ImportError as exc:
            raise InputError(f"a {kind.upper()} cluster needs dask-jobqueue",
                             remedy="pip install 'bigeval[cluster]'") from exc
        cls = dask_jobqueue.SLURMCluster if kind == "slurm" else dask_jobqueue.PBSCluster
        return cls(**settings)
    try:
        from dask_kubernetes.operator import KubeCluster
    except ImportError as exc:
        raise InputError("a Kubernetes cluster needs dask-kubernetes",
                         remedy="pip install 'bigeval[cluster]'") from exc
    return KubeCluster(**settings)


def job_script(cfg: dict) -> str:
    """The batch script dask-jobqueue submits for one worker job (SLURM / PBS), offline."""
    if cfg["kind"] not in ("slurm", "pbs"):
        raise ValueError("job scripts exist for slurm and pbs clusters")
    # rendering starts a scheduler here: no dashboard for it (port 8787 may be taken)
    opts = {**cfg.get("scheduler_options", {}), "dashboard_address": DASHBOARD_ADDRESS}
    cluster = make_cluster({**cfg, "scheduler_options": opts})
    try:
        return cluster.job_script()
    finally:
        cluster.close()


def kubernetes_spec(cfg: dict) -> dict:
    """The DaskCluster resource the dask-kubernetes operator would create, offline."""
    from dask_kubernetes.operator import make_cluster_spec

    keys = ("name", "image", "n_workers", "resources", "env", "worker_command",
            "scheduler_service_type", "idle_timeout")
    spec = {k: cfg[k] for k in keys if k in cfg}
    spec.setdefault("n_workers", cfg.get("workers", 1))
    return make_cluster_spec(**spec)


def _log(msg: str):
    sys.stderr.write(msg + "\n")
    sys.stderr.flush()


def dashboard_link(client, host: str | None = None) -> str | None:
    """The Dask dashboard's address, or None when the scheduler serves none.

    ``host``: the address it was bound to, for a cluster bigeval started (distributed's own
    link names the machine's network address even when the dashboard listens on
    :data:`DASHBOARD_ADDRESS` only).
    """
    try:
        services = client.scheduler_info().get("services", {})
    except Exception:  # pragma: no cover - scheduler gone
        return None
    if "dashboard" not in services:
        return None
    return client.dashboard_link if host is None else \
        f"http://{host}:{services['dashboard']}/status"


@contextlib.contextmanager
def connect(scheduler: str | None = None, *, cluster: str | os.PathLike | dict | None = None,
            n_workers: int | None = None, threads_per_worker: int = 1,
            processes: bool = False, log=_log):
    """A ``distributed.Client``: attached to ``scheduler``, on a cluster file's cluster, or on
    an embedded ``LocalCluster`` (``n_workers`` workers, default one per core). Prints the
    dashboard link. Clusters it started are closed on exit; an attached one is left running.

    The embedded workers are threads of this process by default (the block kernels release
    the GIL): at 1 M animals × 100 rounds on 2 cores they ran 1.08× the in-memory time where
    worker processes ran 1.23× (benchmarks/bench_dask.py), as nothing is serialised between
    them. A cluster file with ``kind: local`` and ``processes: true`` gives worker processes.
    """
    from distributed import Client, LocalCluster

    scheduler = scheduler or configured_scheduler()
    owned = None
    bound = None  # the dashboard's host, where bigeval chose it
    if scheduler:
        client = Client(scheduler)
        where = f"attached to the Dask scheduler at {scheduler}"
    elif cluster is not None:
        cfg = cluster if isinstance(cluster, dict) else load_cluster_config(cluster)
        owned = make_cluster(cfg)
        n = n_workers or cfg.get("workers", 1)
        owned.scale(n)
        client = Client(owned)
        timeout = cfg.get("wait_timeout", 600)
        log(f"waiting for {n} {cfg['kind']} workers (up to {timeout} s)…")
        try:
            client.wait_for_workers(n, timeout=timeout)
        except Exception:
            client.close()
            owned.close()
            raise
        where = f"{cfg['kind']} cluster with {n} workers"
        if cfg["kind"] == "local" and "dashboard_address" not in cfg:
            bound = DASHBOARD_ADDRESS.rsplit(":", 1)[0]
    else:
        n = n_workers or machine_cores()
        owned = LocalCluster(n_workers=n, threads_per_worker=threads_per_worker,
                             processes=processes, dashboard_address=DASHBOARD_ADDRESS)
        client = Client(owned)
        where = (f"embedded LocalCluster, {n} {'process' if processes else 'thread'} workers "
                 f"× {threads_per_worker} thread")
        bound = DASHBOARD_ADDRESS.rsplit(":", 1)[0]
    link = dashboard_link(client, bound)
    client.bigeval_dashboard = link  # for the engine's description (reliability_engine)
    log(f"Dask: {where}; dashboard: {link or 'not served (pip install bokeh)'}")
    try:
        yield client
    finally:
        client.close()
        if owned is not None:
            owned.close()


@dataclass
class EngineInfo:
    """The engine chosen for a run: ``kind``, why, and a line for the summary."""

    kind: str
    reason: str
    description: str
    iterator: object = None


@contextlib.contextmanager
def reliability_engine(sire, dam, *, engine: str | None = "auto", scheduler: str | None = None,
                       cluster=None, block_size: int | None = None,
                       n_workers: int | None = None, exact_sums: bool | None = None,
                       log=_log):
    """Choose and start the engine for a pedigree; yields an :class:`EngineInfo` whose
    ``iterator`` is passed to :func:`bigeval.reliability.engine.reliability` (None: in
    memory).

    ``exact_sums`` (None: the Dask config ``bigeval.exact-sums``, default False): blocks send
    each other every contribution, so the Dask engine equals the in-memory engine bit for bit
    whatever the number of workers; otherwise they send one sum per parent
    (``partition(presum=True)``: 4–5× fewer values between workers), equal to rounding
    (≤ 1e-12), the same on every rerun with the same number of workers."""
    n = len(sire)
    kind, reason = choose_engine(n, engine, scheduler=scheduler, cluster=cluster)
    if kind == "memory":
        yield EngineInfo(kind, reason, f"engine: in memory ({reason})")
        return
    from bigeval.reliability.distributed.blocks import partition
    from bigeval.reliability.distributed.dask_engine import DaskIteration

    block_size = block_size or _config("block-size")
    if exact_sums is None:
        exact_sums = bool(_config("exact-sums", False))
    with connect(scheduler, cluster=cluster, n_workers=n_workers, log=log) as client:
        if block_size:
            part = partition(sire, dam, block_size=int(block_size), presum=not exact_sums)
        else:  # a block per worker, its rows classed by what crosses workers (resident)
            part = partition(sire, dam, groups=len(client.nthreads()), presum=not exact_sums)
        it = DaskIteration(part, client)
        link = client.bigeval_dashboard
        desc = f"engine: {it.describe()} ({reason})" + (f"; dashboard {link}" if link else "")
        yield EngineInfo(kind, reason, desc, it)
