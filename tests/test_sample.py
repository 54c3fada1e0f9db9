"""bigeval sample: herds with all their records, complete pedigree, genotypes of the kept
genotyped animals, seeded and reproducible, and a config that runs as it is."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest

import _runkit
from bigeval.cli import main
from bigeval.errors import InputError
from bigeval.io.genotypes import open_genotypes
from bigeval.pipeline import config_from_dict, load_config
from bigeval.pedigree import ancestors
from bigeval.prepare.sampling import herd_of
from bigeval.sample import draw_sample

pytestmark = pytest.mark.filterwarnings(_runkit.EXACT_BELOW_ZERO)

HERD = "^[^Y]+"  # the simulator's cg codes are herd-year-season: H0012Y2019S2


def _read(path, **kw):
    return pd.read_csv(path, sep=" ", header=None, dtype=str, **kw)


def test_ancestors__walks_up_every_generation():
    # 0, 1 founders; 2 = 0 x 1; 3 = 2 x -; 4 unrelated founder; 5 = 4 x 3
    sire = np.array([-1, -1, 0, 2, -1, 4])
    dam = np.array([-1, -1, 1, -1, -1, 3])
    keep = np.zeros(6, bool)
    keep[3] = True
    assert ancestors(keep, sire, dam).tolist() == [True, True, True, True, False, False]
    keep[:] = False
    keep[5] = True
    assert ancestors(keep, sire, dam).all()


def test_herd_of__pattern_and_error():
    assert herd_of(np.array(["A1", "B2"]), None).tolist() == ["A1", "B2"]
    with pytest.raises(InputError, match="does not match"):
        herd_of(np.array(["H1Y2", "X"]), "^H[0-9]+", lines=np.array([1, 2]))


def test_sample__herds_records_pedigree_genotypes(pop_config, tmp_path):
    cfg = load_config(pop_config)
    res = draw_sample(cfg, tmp_path / "s", herds=3, seed=5, herd_pattern=HERD)
    data = pop_config.parent / "data"
    out = tmp_path / "s"
    rec_all, rec = _read(data / "records.txt"), _read(out / "records.txt")
    herds = set(rec[1].str.extract(f"({HERD})")[0])
    assert len(herds) == 3 == res.counts["herds"]
    # every record of the drawn herds, and only those, verbatim
    expect = rec_all[rec_all[1].str.extract(f"({HERD})")[0].isin(herds)]
    assert rec.values.tolist() == expect.values.tolist()
    # the pedigree is complete: every known parent of a kept animal has its own row
    ped = _read(out / "pedigree.txt")
    ped_all = _read(data / "pedigree.txt").set_index(0)
    kept = set(ped[0])
    assert set(rec[0]) <= kept
    for col in (1, 2):
        parents = set(ped[col]) - {"0"}
        assert parents <= kept | (parents - set(ped_all.index))
    rows_of = ped_all.loc[ped[0]]
    assert rows_of[1].tolist() == ped[1].tolist()  # lines kept as they are
    # genotyped animals among the kept ones, with their genotypes
    X, ids, snps = open_genotypes(out / "genotypes.zarr")
    X0, ids0, snps0 = open_genotypes(data / "genotypes.zarr")
    assert set(ids) == set(ids0) & kept and len(ids) == res.counts["genotyped"] > 0
    rows = pd.Index(ids0).get_indexer(ids)
    np.testing.assert_array_equal(X.compute(), X0.compute()[rows])
    assert snps.tolist() == snps0.tolist()
    sample_cfg = load_config(res.config)
    assert sample_cfg["parameters.h2"] == 0.25 and sample_cfg["model.trait"] == 3
    assert sample_cfg["inputs.genotypes"] == out / "genotypes.zarr"
    assert sample_cfg.out == out / "results"


def test_sample__seeded_and_reproducible(pop_config, tmp_path):
    cfg = load_config(pop_config)
    a = draw_sample(cfg, tmp_path / "a", herds=3, seed=11, herd_pattern=HERD)
    b = draw_sample(cfg, tmp_path / "b", herds=3, seed=11, herd_pattern=HERD)
    draw_sample(cfg, tmp_path / "c", herds=3, seed=12, herd_pattern=HERD)
    for name in ("pedigree.txt", "records.txt", "interbull.txt"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*")
                   if p.is_file() and p.name != "config.toml")
    for f in files:
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes(), f
    assert a.counts == b.counts
    assert (tmp_path / "c" / "records.txt").read_bytes() != \
        (tmp_path / "a" / "records.txt").read_bytes()


LONE_BULL = ("ignore:.*Interbull bull\\(s\\) with a reliability above 0 get ERC 0"
             ":bigeval.errors.BigevalWarning")


@pytest.mark.filterwarnings(LONE_BULL)  # a sample of herds may keep one Interbull bull
def test_sample__then_run_end_to_end(pop_config, tmp_path):
    """`bigeval sample` then `bigeval run` on its config, through the command line."""
    assert main(["sample", str(pop_config), "--out", str(tmp_path / "s"), "--herds", "4",
                 "--seed", "3", "--herd-pattern", HERD]) == 0
    assert main(["run", str(tmp_path / "s" / "config.toml"), "--no-progress"]) == 0
    table = pd.read_csv(tmp_path / "s" / "results" / "reliability.csv", dtype={"animal": str})
    ped = _read(tmp_path / "s" / "pedigree.txt")
    assert set(ped[0]) <= set(table["animal"])
    assert table["genotyped"].sum() > 0 and table["ebv"].notna().all()
    summary = (tmp_path / "s" / "results" / "summary.txt").read_text()
    assert "Part I vs exact PBLUP" in summary  # the exact check runs on the laptop sample


def test_sample__from_a_ready_g(pop_config, tmp_path):
    """With a ready G (from `bigeval grm`), the sample keeps its rows and columns."""
    from bigeval.genomic.grm import grm, read_grm, write_grm

    data = pop_config.parent / "data"
    X, ids, _ = open_genotypes(data / "genotypes.zarr")
    G = grm(data / "genotypes.zarr")
    for suffix in (".h5", ".zarr"):
        write_grm(G, ids, tmp_path / f"G{suffix}")
        raw = load_config(pop_config).to_dict()
        raw["inputs"].pop("genotypes")
        raw["inputs"]["grm"] = str(tmp_path / f"G{suffix}")
        cfg = config_from_dict(raw, source=pop_config)
        res = draw_sample(cfg, tmp_path / f"s{suffix}", herds=3, seed=5, herd_pattern=HERD)
        sub, sub_ids = read_grm(tmp_path / f"s{suffix}" / f"G{suffix}")
        pos = pd.Index(ids).get_indexer(sub_ids)
        np.testing.assert_array_equal(sub, G[np.ix_(pos, pos)])
        assert load_config(res.config)["inputs.grm"] == tmp_path / f"s{suffix}" / f"G{suffix}"


def test_sample__refuses_inverse_triplets_and_too_many_herds(pop_config, tmp_path):
    raw = load_config(pop_config).to_dict()
    raw["inputs"].pop("genotypes")
    raw["inputs"].update(ginv="g.txt", a22inv="a.txt", genotyped="l.txt")
    with pytest.raises(InputError, match="G⁻¹ triplets"):
        draw_sample(config_from_dict(raw, source=pop_config), tmp_path / "x", herds=2)
    with pytest.raises(InputError, match="cannot draw 10,000 herds"):
        draw_sample(load_config(pop_config), tmp_path / "y", herds=10_000, herd_pattern=HERD)


def test_sample__inputs_with_the_same_file_name_do_not_collide(pop_config, tmp_path):
    cfg = load_config(pop_config)
    for folder, key in (("a", "pedigree"), ("b", "records")):
        (tmp_path / folder).mkdir()
        shutil.copy(cfg[f"inputs.{key}"], tmp_path / folder / "data.txt")
    raw = cfg.to_dict()
    raw["inputs"].update(pedigree=str(tmp_path / "a" / "data.txt"),
                         records=str(tmp_path / "b" / "data.txt"))
    res = draw_sample(config_from_dict(raw, source=pop_config), tmp_path / "s", herds=3,
                      seed=5, herd_pattern=HERD)
    sample_cfg = load_config(res.config)
    ped, rec = sample_cfg["inputs.pedigree"], sample_cfg["inputs.records"]
    assert ped != rec and {ped.name, rec.name} == {"data.txt", "records-data.txt"}
    assert _read(ped).shape[1] == _read(cfg["inputs.pedigree"]).shape[1]  # the pedigree's
    assert set(_read(rec)[1]) <= set(_read(cfg["inputs.records"])[1])  # the records' rows
