"""BLUPF90 parameter files converted into bigeval model files (bigeval config from-blupf90).

The published figures: the BLUPF90 tutorial (Masuda, "Variance component estimation",
aireml1.txt on simdata.txt) shows AIREMLF90's estimates σa² 38.538 and σe² 62.691
(tests/data/blupf90-tutorial/README.md names the source).
"""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import pytest

from bigeval.cli import main
from bigeval.errors import InputError
from bigeval.models.blupf90 import read_parameter_file
from bigeval.models.spec import ModelSpec

DATA = Path(__file__).parent / "data" / "blupf90-tutorial"

# the same model as aireml1.txt, in renumf90's layout
RENUMF90 = """DATAFILE
simdata.txt
TRAITS
9
FIELDS_PASSED TO OUTPUT

WEIGHT(S)
4
RESIDUAL_VARIANCE
100
EFFECT
6 cross alpha
EFFECT
7 cross alpha
EFFECT
8 cross alpha
EFFECT
1 cross alpha
RANDOM
animal
FILE
simped.txt
(CO)VARIANCES
100
OPTION method VCE
"""


@pytest.fixture()
def tutorial(tmp_path):
    for name in ("simdata.txt", "simped.txt"):
        with gzip.open(DATA / f"{name}.gz", "rb") as src, open(tmp_path / name, "wb") as dst:
            shutil.copyfileobj(src, dst)
    shutil.copy(DATA / "aireml1.txt", tmp_path / "aireml1.txt")
    (tmp_path / "renf90.par").write_text(RENUMF90)
    return tmp_path


def test_from_blupf90__aireml1_then_reml_gives_airemlf90s_estimates(tutorial, capsys):
    out = tutorial / "model.toml"
    assert main(["config", "from-blupf90", str(tutorial / "aireml1.txt"), "--out",
                 str(out)]) == 0
    said = capsys.readouterr().out
    assert "trait column 9; fixed [6, 7, 8]; animal column 1; weights column 4" in said
    spec = ModelSpec.from_toml(out)
    assert (spec.trait, spec.factors, spec.animal, spec.weights) == ("9", ("6", "7", "8"),
                                                                     "1", "4")
    assert (spec.intercept, spec.inbreeding, spec.missing) == (False, False, ("0",))
    assert main(["reml", str(out), "--out", str(tutorial / "reml"), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "σa² 38.538" in printed and "σe² 62.691" in printed  # AIREMLF90, the tutorial


def test_from_blupf90__renumf90_layout_reads_as_the_same_model(tutorial):
    a = read_parameter_file(tutorial / "aireml1.txt")
    b = read_parameter_file(tutorial / "renf90.par")
    for name in ("datafile", "trait", "weights", "factors", "covariates", "animal", "pedigree",
                 "pe", "sigma_a2", "sigma_e2", "missing"):
        assert getattr(a, name) == getattr(b, name), name


def test_from_blupf90__several_traits_and_other_random_effects_are_errors(tmp_path):
    four = tmp_path / "acc.par"  # the tutorial's 4-trait accparam1.txt, its first lines
    four.write_text("DATAFILE\nsimdata_rep.txt\nNUMBER_OF_TRAITS\n4\nNUMBER_OF_EFFECTS\n1\n"
                    "OBSERVATION(S)\n9 10 11 12\nWEIGHT(S)\n\nEFFECTS:\n1 1 1 1 4641 cross\n")
    with pytest.raises(InputError, match="4 traits") as info:
        read_parameter_file(four)
    assert info.value.line == 4
    maternal = tmp_path / "mat.par"
    maternal.write_text("DATAFILE\nd.txt\nNUMBER_OF_TRAITS\n1\nNUMBER_OF_EFFECTS\n2\n"
                        "OBSERVATION(S)\n3\nWEIGHT(S)\n\nEFFECTS:\n2 10 cross\n1 50 cross\n"
                        "RANDOM_RESIDUAL VALUES\n1.0\nRANDOM_GROUP\n2\nRANDOM_TYPE\n"
                        "add_sire\nFILE\nped.txt\n(CO)VARIANCES\n1.0\n")
    with pytest.raises(InputError, match="add_sire on effect"):  # add_an_upg(inb): groups
        read_parameter_file(maternal)


def test_from_blupf90__options_without_equivalent_are_listed(tutorial, capsys):
    par = tutorial / "aireml1.txt"
    par.write_text(par.read_text() + "OPTION fact_once memory\nOPTION missing -999\n")
    out = tutorial / "m.toml"
    assert main(["config", "from-blupf90", str(par), "--out", str(out)]) == 0
    said = capsys.readouterr().out
    assert "not converted (no equivalent): OPTION fact_once memory" in said
    text = out.read_text()
    assert "# NOT CONVERTED (no equivalent): OPTION fact_once memory" in text
    assert 'missing = ["-999"]' in text
    assert main(["config", "from-blupf90", str(par), "--out", str(out)]) == 2  # exists
    assert main(["config", "from-blupf90", str(par), "--out", str(par)]) == 2  # its input
