"""The runner of ``bigeval run``: stages in order, reused when unchanged, resumable.

For each stage the runner computes the stage's key (its parameters, the content hashes of the
input files it reads and the output hashes of the stages it reads), reuses the checkpoint when
the key matches and the outputs verify, and otherwise runs the stage into a temporary folder
that is renamed into place when complete (:mod:`bigeval.pipeline.checkpoint`). After the report
stage, its files are published into the output folder. The manifest is rewritten after every
stage. Warnings a stage emits are shown as usual and kept in its ``stage.json`` and manifest
record (:func:`bigeval.pipeline.manifest.collect_warnings`); the report lists them.

A run killed at any point resumes where it stopped: finished stages verify and are reused,
the unfinished one starts again from its inputs, and the final results are the same bytes as
an uninterrupted run's (tested by killing the process with SIGKILL inside every stage).

Test hook: ``BIGEVAL_TEST_KILL_AT=STAGE:POINT`` kills the process (SIGKILL, no clean-up) when
the stage reaches the point: ``start``, ``mid`` (inside the stage's work), ``written`` (all
outputs in the temporary folder), ``sealed`` (sidecar written, folder not yet renamed),
``committed`` (renamed, manifest not yet updated), ``publish`` (report stage: after the first
published file); ``STAGE:after:SECONDS`` kills after that many seconds of the stage.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from bigeval.errors import InputError
from bigeval.io.publish import ABOUT, RESULTS, published, publishing
from bigeval.io.writers import (
    ensure_dir,
    output_lock,
    refuse_overwriting_inputs,
)
from bigeval.pipeline.checkpoint import InputHasher, StageStore, hash_json
from bigeval.pipeline.config import RunConfig
from bigeval.pipeline.manifest import MiB, Manifest, MemorySampler, collect_warnings
from bigeval.pipeline.progress import Progress
from bigeval.pipeline.stages import PUBLISHED, STAGES, StageContext

__all__ = ["run_pipeline", "RunResult", "STAGE_NAMES"]

STAGE_NAMES = tuple(s.name for s in STAGES)
KILL_ENV = "BIGEVAL_TEST_KILL_AT"


@dataclass(frozen=True)
class RunResult:
    """What a run did: the output folder, executed and skipped stages, the manifest."""

    out: Path
    executed: list
    skipped: list
    manifest: dict
    report: Path | None


# ---------------------------------------------------------------------------------------------
# The crash hook (tests)


def _kill_spec():
    spec = os.environ.get(KILL_ENV)
    if not spec:
        return None
    parts = spec.split(":")
    return parts[0], parts[1], (float(parts[2]) if len(parts) > 2 else None)


def _point(stage: str, name: str) -> None:
    spec = _kill_spec()
    if spec is not None and spec[0] == stage and spec[1] == name:
        os.kill(os.getpid(), signal.SIGKILL)


@contextlib.contextmanager
def _kill_timer(stage: str):
    spec = _kill_spec()
    timer = None
    if spec is not None and spec[0] == stage and spec[1] == "after":
        timer = threading.Timer(spec[2], os.kill, (os.getpid(), signal.SIGKILL))
        timer.daemon = True
        timer.start()
    try:
        yield
    finally:
        if timer is not None:
            timer.cancel()


# ---------------------------------------------------------------------------------------------
# Cluster and lock


@contextlib.contextmanager
def _cluster(cfg: RunConfig, progress: Progress):
    """The Dask scheduler of the run (threads by default; a distributed client on request)."""
    import dask

    sched = cfg["cluster.scheduler"]
    if sched in ("threads", "synchronous"):
        with dask.config.set(scheduler=sched):
            yield None
        return
    from distributed import Client

    if sched == "local-cluster":
        from distributed import LocalCluster

        with LocalCluster(n_workers=cfg["cluster.workers"] or 1,
                          threads_per_worker=cfg["cluster.threads_per_worker"] or 1,
                          dashboard_address=None) as lc, Client(lc) as client:
            progress.line(f"local Dask cluster: {len(client.scheduler_info()['workers'])} "
                          "workers")
            yield client
        return
    try:
        client = Client(sched, timeout="20s")
    except OSError as exc:
        file, line = cfg.where("cluster.scheduler")
        raise InputError(f"cannot reach the Dask scheduler: {exc}", file=file, line=line,
                         value=sched, remedy="start the scheduler, check the address, or use "
                                             'scheduler = "threads"') from None
    with client:
        progress.line(f"Dask scheduler {sched}: "
                      f"{len(client.scheduler_info()['workers'])} workers")
        yield client


# ---------------------------------------------------------------------------------------------
# The run


def _publish(store: StageStore, out: Path, kill, manifest: Manifest) -> list[Path]:
    """Publish the report stage's files in the output folder, all together
    (:func:`bigeval.io.publish.publishing`); nothing when the ones in force are these."""
    folder = store.folder("report")
    meta = store.sidecar("report") or {}
    names = [n for n in PUBLISHED if n in meta.get("outputs", {})]
    hashes = {n: meta["outputs"][n] for n in names}
    if published(out).get("hashes") == hashes and all((out / n).is_file() for n in names):
        return []
    m = manifest.data
    about = {"command": m["command"], "bigeval": m["bigeval"], "run_started": m["started"],
             "config_file": m["config_file"], "overrides": m["overrides"],
             "config": m["config"], "inputs": m["inputs"],
             "parameters": m["parameters"], "report_key": meta.get("key"), "hashes": hashes}
    with publishing(out, names, about=about, known=PUBLISHED) as gen:
        for k, name in enumerate(names):
            shutil.copyfile(folder / name, gen / name)
            if k == 0:
                kill("publish")  # killed after the first file of the new results is written
    return [out / n for n in names]


def resolved_parameters(cfg: RunConfig) -> dict:
    """Parameters as the method uses them (α from h2, ...), for the manifest."""
    return {"alpha": cfg.alpha(), "tau": cfg["parameters.tau"], "h2": cfg["parameters.h2"],
            "repeatability": cfg["parameters.repeatability"],
            "sib_adjust": cfg["parameters.sib_adjust"], "rounds": cfg["parameters.rounds"],
            "tol": cfg["parameters.tol"], "genomics": cfg.has_genomics,
            "model": cfg.has_model}


def run_pipeline(cfg: RunConfig, *, until: str | None = None, force=(),
                 progress: bool | None = None, rehash: bool = False,
                 argv=None) -> RunResult:
    """Run (or resume) the stages of a configuration; return what was executed and skipped.

    Parameters
    ----------
    cfg
        A checked configuration (:func:`bigeval.pipeline.config.load_config`).
    until
        Stop after this stage (e.g. ``"validate"`` to check the inputs only).
    force
        Stage names to run even when their checkpoints are valid (``"all"`` for every stage).
    progress
        Live progress inside stages; default from the configuration (``auto``: a terminal).
    rehash
        Hash every input file again instead of trusting the cache of input hashes.
    """
    names = set(STAGE_NAMES)
    force = set(STAGE_NAMES) if "all" in set(force) else set(force)
    for name in [until, *force]:
        if name is not None and name not in names:
            raise InputError("unknown stage", value=name, expected=", ".join(STAGE_NAMES))
    show = Progress(cfg.progress() if progress is None else progress)
    refuse_overwriting_inputs(
        cfg.input_paths,
        [cfg.out / n for n in (*PUBLISHED, "manifest.json", "stages", RESULTS, ABOUT)])
    out = ensure_dir(cfg.out)
    with output_lock(out):
        store = StageStore(out / "stages")
        for p in store.clean_debris(published=(*PUBLISHED, "manifest.json")):
            show.line(f"removed {p.name} left by an interrupted run")
        hasher = InputHasher(store.root / "input-hashes.json", trust_cache=not rehash)
        manifest = Manifest(out / "manifest.json", config=cfg, argv=argv)
        manifest.set_parameters(resolved_parameters(cfg))
        t_hash = time.perf_counter()
        from bigeval.pipeline.stages import _input_files

        inputs = {}
        for name, path in _input_files(cfg).items():
            if not Path(path).exists():
                inputs[name] = {"path": str(path), "hash": None, "bytes": None}
                continue
            inputs[name] = {"path": str(path), "hash": hasher(path),
                            "bytes": _size(Path(path))}
        hasher.save()
        manifest.set_inputs(inputs)
        show.line(f"output folder {out}; inputs hashed in {time.perf_counter() - t_hash:.1f} s")
        if cfg.overrides:  # the results will not be what the file alone says
            show.line("configuration " + str(cfg.source) + " with --set " + ", ".join(
                f"{k}={v!r}" for k, v in cfg.overrides.items()) + " (the file is unchanged; "
                f"{out / ABOUT} records the values used)")
        enabled = [s for s in STAGES if s.enabled(cfg)]
        status = "finished"
        try:
            with _cluster(cfg, show):
                for i, stage in enumerate(enabled, 1):
                    _run_stage(stage, i, len(enabled), cfg, store, hasher, manifest, show,
                               force)
                    if stage.name == until:
                        status = f"stopped after {until}"
                        break
                for stage in STAGES:
                    if not stage.enabled(cfg) and store.folder(stage.name).exists():
                        shutil.rmtree(store.folder(stage.name))  # e.g. [model] removed
                        manifest.stage({"name": stage.name, "status": "not configured",
                                        "reason": "removed its old checkpoint"})
                report = None
                if until in (None, "report"):
                    _publish(store, out, lambda p: _point("report", p), manifest)
                    report = out / "report.html"
        except BaseException:
            manifest.finish("failed")
            raise
        manifest.finish(status)
        show.line(f"{status} in {manifest.data['seconds']:.1f} s: executed "
                  f"{', '.join(manifest.executed) or 'nothing'}; reused "
                  f"{', '.join(manifest.skipped) or 'nothing'}")
        return RunResult(out=out, executed=manifest.executed, skipped=manifest.skipped,
                         manifest=manifest.data, report=report)


def _readable(path: Path) -> None:
    """Give a file or folder the permissions of the user's umask (temporary files are
    created private; results are meant to be shared like any file the user writes)."""
    umask = os.umask(0)
    os.umask(umask)
    for p in [path, *(path.rglob("*") if path.is_dir() else [])]:
        with contextlib.suppress(OSError):
            os.chmod(p, (0o777 if p.is_dir() else 0o666) & ~umask)


def _size(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


def _split(upstream: str) -> tuple[str, list | None]:
    """``"prepare/animals.parquet"`` -> ("prepare", ["animals.parquet"]); ``"prepare"`` -> all."""
    stage, _, name = upstream.partition("/")
    return stage, ([name] if name else None)


def stage_key(stage, cfg: RunConfig, store: StageStore, hasher) -> tuple[str, dict]:
    """The key of a stage and what went into it."""
    files = stage.inputs(cfg)
    what = {"stage": stage.name, "version": stage.version,
            "params": stage.params(cfg),
            "inputs": {n: hasher(p) if Path(p).exists() else "missing"  # validate says so
                       for n, p in sorted(files.items())},
            "upstream": {u: store.outputs_hash(*_split(u)) for u in stage.upstream(cfg)}}
    return hash_json(what), what


def _run_stage(stage, i, n, cfg, store: StageStore, hasher, manifest: Manifest,
               show: Progress, force) -> None:
    name = stage.name
    key, what = stage_key(stage, cfg, store, hasher)
    reusable, reason = store.check(name, key)
    if reusable and name not in force:
        meta = store.sidecar(name)
        manifest.stage({"name": name, "status": "skipped", "reason": reason, "key": key,
                        "seconds": 0.0, "last_seconds": meta.get("seconds"),
                        "outputs_hash": store.outputs_hash(name),
                        "warnings": meta.get("warnings", [])})
        show.line(f"[{i}/{n}] {name}: unchanged, reused")
        return
    if reusable:
        reason = "forced"
    show.line(f"[{i}/{n}] {name}: running ({reason})")
    upstream = {_split(u)[0]: store.folder(_split(u)[0]) for u in stage.upstream(cfg)}
    t0 = time.perf_counter()

    def kill(p):
        _point(name, p)

    with _kill_timer(name), MemorySampler() as mem, store.writing(name) as tmp:
        kill("start")
        ctx = StageContext(config=cfg, work=tmp, upstream=upstream, progress=show, point=kill)
        with collect_warnings() as warned:  # shown as usual; kept for the report
            summary = stage.run(ctx)
        kill("written")
        seconds = round(time.perf_counter() - t0, 3)
        meta = store.seal(tmp, {"stage": name, "key": key, "inputs": what,
                                "summary": summary, "seconds": seconds,
                                "peak_rss_mb": round(mem.peak / MiB, 1),
                                "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                                "warnings": warned})
        _readable(tmp)
        kill("sealed")
    kill("committed")
    manifest.stage({"name": name, "status": "executed", "reason": reason, "key": key,
                    "seconds": seconds, "peak_rss_mb": round(mem.peak / MiB, 1),
                    "rss_before_mb": round(mem.start / MiB, 1),
                    "outputs_hash": hash_json(meta["outputs"]), "warnings": warned})
    show.line(f"[{i}/{n}] {name}: done in {seconds:.1f} s (peak memory "
              f"{mem.peak / MiB:,.0f} MB)")
