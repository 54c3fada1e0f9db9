"""Column maps for records files (bigeval.io.columns): a BLUPF90 data file read as it is.

The data are the BLUPF90 tutorial's ``simdata.txt`` (tests/data/blupf90-tutorial: animal,
sire, dam, weight, mu, farm, sex, year, obs1..obs4, no header). Read without a map its second
column (the sire) would be the contemporary group; the issue "Bring your BLUPF90 files" counts
237 zeros, BLUPF90's missing code, in obs2 (column 10).
"""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import pandas as pd
import pytest

from bigeval.cli import main
from bigeval.errors import InputError
from bigeval.io.columns import RecordColumns, parse_record_columns
from bigeval.pipeline.config import config_from_dict

DATA = Path(__file__).parent / "data" / "blupf90-tutorial"
MAP = "animal=1,cg=6+8,trait=10"  # farm × year groups, obs2


@pytest.fixture(scope="module")
def simdata(tmp_path_factory):
    d = tmp_path_factory.mktemp("simdata")
    for name in ("simdata.txt", "simped.txt"):
        with gzip.open(DATA / f"{name}.gz", "rb") as src, open(d / name, "wb") as dst:
            shutil.copyfileobj(src, dst)
    return d


def _results(out: Path) -> bytes:
    return (out / "reliability.csv").read_bytes()


def _rel(d: Path, records: str, out: str, *extra: str) -> list[str]:
    return ["reliability", "--pedigree", str(d / "simped.txt"), "--records", str(d / records),
            "--h2", "0.3", "--out", str(d / out), "--no-progress", *extra]


def test_parse__string_table_and_errors():
    m = parse_record_columns("animal=1, cg=6+8, trait=10", missing=["0"])
    assert m == RecordColumns(animal=1, cg=(6, 8), trait=10, missing=("0",))
    assert parse_record_columns({"animal": "id", "cg": ["herd", "year"]}) == RecordColumns(
        animal="id", cg=("herd", "year"), trait=None)
    with pytest.raises(InputError, match="unknown role 'herd'"):
        parse_record_columns("animal=1,cg=2,herd=3")
    with pytest.raises(InputError, match="at least the animal and the contemporary group"):
        parse_record_columns("animal=1")
    with pytest.raises(InputError, match="number from 1"):
        parse_record_columns({"animal": 0, "cg": 2})


def test_map__whitespace_file_with_names_or_csv_with_numbers_is_an_error(tmp_path):
    txt = tmp_path / "r.txt"
    txt.write_text("a g 1\n")
    with pytest.raises(InputError, match="no header: its columns are numbers"):
        parse_record_columns("animal=id,cg=2").read(txt)
    csv = tmp_path / "r.csv"
    csv.write_text("id,herd,y\na,g,1\n")
    with pytest.raises(InputError, match="names its columns by header"):
        parse_record_columns("animal=1,cg=herd").read(csv)


def test_map__reads_blupf90_data_as_the_tutorial_describes_it(simdata):
    got = parse_record_columns(MAP, missing=["0"]).read(simdata / "simdata.txt")
    raw = pd.read_csv(simdata / "simdata.txt", sep=r"\s+", header=None)  # independent read
    kept = raw[raw[9] != 0]
    assert got.attrs["missing_trait"] == 237 == int((raw[9] == 0).sum())
    assert list(got["animal"]) == [str(a) for a in kept[0]]
    assert list(got["cg"]) == [f"{f}:{y}" for f, y in zip(kept[5], kept[7])]
    assert list(got["line"]) == [i + 1 for i in kept.index]


def test_reliability__without_a_map_the_sire_column_is_no_group(simdata, capsys):
    assert main(_rel(simdata, "simdata.txt", "nomap")) == 2
    err = capsys.readouterr().err
    assert "line 1" in err and "missing contemporary group" in err
    assert "--records-columns" in err


@pytest.mark.filterwarnings("ignore:.*hold a single record:bigeval.errors.BigevalWarning")
def test_reliability__mapped_file_gives_the_results_of_the_file_written_by_hand(simdata):
    raw = pd.read_csv(simdata / "simdata.txt", sep=r"\s+", header=None)
    kept = raw[raw[9] != 0]
    by_hand = pd.DataFrame({"animal": kept[0], "cg": kept[5].astype(str) + ":"
                            + kept[7].astype(str)})
    by_hand.to_csv(simdata / "records.txt", sep=" ", header=False, index=False)
    assert main(_rel(simdata, "records.txt", "hand")) == 0
    assert main(_rel(simdata, "simdata.txt", "mapped", "--records-columns", MAP,
                     "--missing", "0")) == 0
    assert _results(simdata / "mapped") == _results(simdata / "hand")
    summary = (simdata / "mapped" / "summary.txt").read_text()
    assert "records 4,404" in summary and "not records: 237" in summary
    # out of core: the same map, read in blocks
    assert main(_rel(simdata, "simdata.txt", "ooc", "--records-columns", MAP, "--missing", "0",
                     "--out-of-core")) == 0
    assert _results(simdata / "ooc") == _results(simdata / "hand")


def test_reliability__trait_that_is_no_number_names_its_line(tmp_path, capsys):
    (tmp_path / "p.txt").write_text("s 0 0\nd 0 0\nk s d\nj s d\n")
    (tmp_path / "r.txt").write_text("k H1 2020 305.5\nj H1 2020 x\nd H2 2020 0\n")
    argv = ["reliability", "--pedigree", str(tmp_path / "p.txt"), "--records",
            str(tmp_path / "r.txt"), "--records-columns", "animal=1,cg=2+3,trait=4",
            "--missing", "0", "--h2", "0.3", "--out", str(tmp_path / "o"), "--no-progress"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "line 2" in err and "'x'" in err and "missing codes '0'" in err
    assert not (tmp_path / "o").exists()


def test_reliability__csv_by_header_names(tmp_path):
    (tmp_path / "p.txt").write_text("s 0 0\nd 0 0\nk s d\nj s d\n")
    (tmp_path / "r.csv").write_text("id,herd,year,milk\nk,H1,2020,305\nj,H1,2020,NA\n"
                                    "j,H1,2020,300\nd,H2,2020,280\nk,H2,2020,290\n")
    (tmp_path / "r.txt").write_text("k H1:2020\nj H1:2020\nd H2:2020\nk H2:2020\n")
    base = ["--pedigree", str(tmp_path / "p.txt"), "--h2", "0.3", "--no-progress"]
    assert main(["reliability", *base, "--records", str(tmp_path / "r.csv"),
                 "--records-columns", "animal=id,cg=herd+year,trait=milk",
                 "--out", str(tmp_path / "a")]) == 0
    assert main(["reliability", *base, "--records", str(tmp_path / "r.txt"),
                 "--out", str(tmp_path / "b")]) == 0
    assert _results(tmp_path / "a") == _results(tmp_path / "b")


def test_missing_without_a_map_is_an_error(tmp_path, capsys):
    (tmp_path / "p.txt").write_text("s 0 0\nk s 0\n")
    (tmp_path / "r.txt").write_text("k g\n")
    assert main(["reliability", "--pedigree", str(tmp_path / "p.txt"), "--records",
                 str(tmp_path / "r.txt"), "--missing", "0", "--h2", "0.3", "--out",
                 str(tmp_path / "o"), "--no-progress"]) == 2
    assert "no column map names one" in capsys.readouterr().err


def test_config__map_as_string_or_table(tmp_path):
    base = {"pedigree": str(tmp_path / "p.txt"), "records": str(tmp_path / "r.txt")}
    for cols in ("animal=1,cg=6+8,trait=10", {"animal": 1, "cg": [6, 8], "trait": 10}):
        cfg = config_from_dict({"inputs": {**base, "records_columns": cols,
                                           "records_missing": [0]},
                                "parameters": {"h2": 0.3}})
        assert cfg["inputs.records_columns"] == {"animal": 1, "cg": [6, 8], "trait": 10}
        assert cfg.record_columns() == RecordColumns(1, (6, 8), 10, ("0",))
    with pytest.raises(InputError, match="inputs.records_columns: unknown role"):
        config_from_dict({"inputs": {**base, "records_columns": "animal=1,cg=2,x=3"},
                          "parameters": {"h2": 0.3}})
