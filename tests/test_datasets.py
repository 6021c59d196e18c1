"""Tests for skmeta.datasets: schema, documented columns, citations, values.

Values are checked against numbers published independently of the CSV files:
the BCG 2x2 tables as transcribed in notes/reference-conventions.md, the
equal-effects summary of the pupil IQ data (Raudenbush 2009, Table 16.3) and the
JIA table and intermediate values of Hanada & Sugimoto (notes/robust-method.md
§8.1).
"""

import re

import numpy as np
import pandas as pd
import pytest

from skmeta import datasets
from skmeta.datasets import (
    DATASETS,
    load_bcg,
    load_colditz1994,
    load_collins1985b,
    load_dataset,
    load_hine1989,
    load_jia,
    load_laopaiboon2015,
    load_linde2005,
    load_pupil_iq,
    load_school_calendar,
    load_writing_to_learn,
)

SHAPES = {
    "bcg": (13, 9),
    "pupil_iq": (19, 10),
    "writing_to_learn": (48, 16),
    "school_calendar": (56, 6),
    "jia": (3, 6),
    "laopaiboon2015": (15, 11),
    "collins1985b": (9, 16),
    "linde2005": (26, 17),
    "colditz1994": (13, 9),
    "hine1989": (6, 6),
    "nielweise2007": (18, 7),
    "cohen1981": (20, 5),
    "hackshaw1998": (37, 11),
    "baskerville2012": (23, 18),
    "knapp2017": (66, 14),
    "assink2016": (100, 8),
}

REQUIRED_COLUMNS = {
    "bcg": "trial author year tpos tneg cpos cneg ablat alloc",
    "pupil_iq": "study author year weeks setting tester n1i n2i yi vi",
    "writing_to_learn": (
        "id author year grade length minutes wic feedback info pers imag meta "
        "subject ni yi vi"
    ),
    "school_calendar": "district school study year yi vi",
    "jia": "study log_or se_printed ci_lower ci_upper vi",
    "cohen1981": "study sample control ni ri",
    "hackshaw1998": "study author year country design cases or or_lb or_ub yi vi",
    "baskerville2012": (
        "author year score design alloconc blind itt fumonths retention country "
        "outcomes duration pperf meetings hours tailor smd se"
    ),
}

# "- ``name`` (dtype): ..." or "- ``a``, ``b`` (dtype): ..." in a Returns section
_COLUMN_DOC = re.compile(r"^\s*- ((?:``\w+``(?:, )?)+) \((\w+)\):", re.MULTILINE)


def _documented_columns(func):
    columns = {}
    for names, dtype in _COLUMN_DOC.findall(func.__doc__):
        for name in re.findall(r"``(\w+)``", names):
            columns[name] = dtype
    return columns


def test_registry_lists_every_loader():
    assert set(DATASETS) == set(SHAPES)
    loaders = {name for name in datasets.__all__ if name.startswith("load_")}
    assert loaders == {f"load_{name}" for name in SHAPES} | {"load_dataset"}
    for name, loader in DATASETS.items():
        assert loader.__name__ == f"load_{name}"


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_loader_shape_and_fresh_copy(name):
    frame = DATASETS[name]()
    assert isinstance(frame, pd.DataFrame)
    assert frame.shape == SHAPES[name]
    assert isinstance(frame.index, pd.RangeIndex)
    # every call returns an independent frame
    frame.iloc[0, 0] = frame.iloc[1, 0]
    frame["extra"] = 1
    again = DATASETS[name]()
    assert again.shape == SHAPES[name]
    assert "extra" not in again


@pytest.mark.parametrize("name", sorted(REQUIRED_COLUMNS))
def test_required_columns(name):
    assert list(DATASETS[name]().columns) == REQUIRED_COLUMNS[name].split()


@pytest.mark.parametrize("name", sorted(set(SHAPES) - {"colditz1994"}))
def test_docstring_describes_every_column_with_its_dtype(name):
    loader = DATASETS[name]
    frame = loader()
    documented = _documented_columns(loader)
    assert list(documented) == list(frame.columns)
    for column, dtype in documented.items():
        if dtype == "str":
            assert pd.api.types.is_string_dtype(frame[column]), column
            assert frame[column].notna().all(), column
        else:
            assert frame[column].dtype == np.dtype(dtype), column
        if dtype == "int64":
            continue
        if dtype == "float64" and column not in ("yi", "vi"):
            # float columns are either genuinely continuous or integer-valued
            # with missing values; nothing is silently widened
            values = frame[column].dropna()
            continuous = not np.allclose(values, np.round(values))
            assert continuous or frame[column].isna().any(), column


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_docstring_cites_its_source(name):
    doc = " ".join(DATASETS[name].__doc__.split())
    assert "References ---------- .. [1] " in doc
    assert "Transcribed from" in doc
    if name == "jia":
        assert "Not in R's metadat 1.2.0" in doc
    else:
        assert "cross-checked against R package metadat 1.2.0" in doc


def test_load_dataset_by_name():
    pd.testing.assert_frame_equal(
        load_dataset("school_calendar"), load_school_calendar()
    )
    with pytest.raises(ValueError, match="name must be one of"):
        load_dataset("bcg2")
    with pytest.raises(ValueError, match="name must be one of"):
        load_dataset(["bcg"])


# BCG 2x2 tables, transcribed in notes/reference-conventions.md (Colditz 1994):
# trial, tpos, tneg, cpos, cneg, ablat
BCG_TABLE = [
    (1, 4, 119, 11, 128, 44),
    (2, 6, 300, 29, 274, 55),
    (3, 3, 228, 11, 209, 42),
    (4, 62, 13536, 248, 12619, 52),
    (5, 33, 5036, 47, 5761, 13),
    (6, 180, 1361, 372, 1079, 44),
    (7, 8, 2537, 10, 619, 19),
    (8, 505, 87886, 499, 87892, 13),
    (9, 29, 7470, 45, 7232, 27),
    (10, 17, 1699, 65, 1600, 42),
    (11, 186, 50448, 141, 27197, 18),
    (12, 5, 2493, 3, 2338, 33),
    (13, 27, 16886, 29, 17825, 33),
]
BCG_YEAR = [1948, 1949, 1960, 1977, 1973, 1953, 1973, 1980, 1968, 1961, 1974, 1969]
BCG_YEAR += [1976]
BCG_ALLOC = ["random"] * 4 + ["alternate"] * 2 + ["random"] * 3 + ["systematic"] * 4


def test_bcg_values():
    bcg = load_bcg()
    cols = ["trial", "tpos", "tneg", "cpos", "cneg", "ablat"]
    assert [tuple(row) for row in bcg[cols].itertuples(index=False)] == BCG_TABLE
    assert bcg["year"].tolist() == BCG_YEAR
    assert bcg["alloc"].tolist() == BCG_ALLOC
    assert bcg.loc[0, "author"] == "Aronson"


def test_colditz1994_is_bcg():
    pd.testing.assert_frame_equal(load_colditz1994(), load_bcg())


def test_pupil_iq_reproduces_published_equal_effects_summary():
    # Raudenbush (2009), Table 16.3, EE row: mu 0.0604, se 0.0365, z 1.6553
    # (four printed decimals, hence atol 5e-5).
    iq = load_pupil_iq()
    w = 1 / iq["vi"].to_numpy()
    mu = np.sum(w * iq["yi"].to_numpy()) / np.sum(w)
    se = 1 / np.sqrt(np.sum(w))
    assert mu == pytest.approx(0.0604, abs=5e-5)
    assert se == pytest.approx(0.0365, abs=5e-5)
    assert mu / se == pytest.approx(1.6553, abs=5e-5)
    assert iq.loc[16, ["author", "year", "weeks"]].tolist() == [
        "Rosenthal & Jacobson",
        1968,
        1,
    ]
    assert set(iq["setting"]) == {"group", "indiv"}
    assert set(iq["tester"]) == {"aware", "blind"}


def test_writing_to_learn_values():
    wtl = load_writing_to_learn()
    first = wtl.iloc[0]
    assert first["author"] == "Ashworth"
    assert (first["year"], first["grade"], first["ni"]) == (1992, 4, 60)
    assert (first["yi"], first["vi"]) == (0.65, 0.07)
    assert np.isnan(first["minutes"])
    assert wtl["id"].tolist() == list(range(1, 49))
    assert set(wtl["grade"]) == {1, 2, 3, 4}
    for column in ["wic", "feedback", "info", "pers", "imag", "meta"]:
        assert set(wtl[column].dropna()) <= {0, 1}, column


def test_school_calendar_structure():
    cal = load_school_calendar()
    assert cal["study"].tolist() == list(range(1, 57))
    assert cal["district"].nunique() == 11
    # schools are numbered within their district
    assert not cal.duplicated(["district", "school"]).any()
    assert cal.loc[0, ["district", "school", "year"]].tolist() == [11, 1, 1976]
    assert cal.loc[0, ["yi", "vi"]].tolist() == [-0.18, 0.118]
    assert (cal["vi"] > 0).all()


def test_jia_table_and_variances():
    # Hanada & Sugimoto, Table 1 (JIA data), and notes/robust-method.md §8.1
    jia = load_jia()
    assert jia["study"].tolist() == [
        "Prahalad et al. (2006)",
        "Hinks et al. (2006)",
        "Lindner et al. (2007)",
    ]
    assert jia["log_or"].tolist() == [-0.13, -0.24, -0.20]
    assert jia["se_printed"].tolist() == [0.10, 0.09, 0.14]
    assert jia["ci_lower"].tolist() == [-0.33, -0.41, -0.47]
    assert jia["ci_upper"].tolist() == [0.08, -0.06, 0.07]
    # SDs used by the authors' code: 0.10459184, 0.08928571, 0.13775510
    np.testing.assert_allclose(
        np.sqrt(jia["vi"]), [0.10459184, 0.08928571, 0.13775510], atol=5e-9
    )
    np.testing.assert_allclose(
        jia["vi"], [0.01093945, 0.00797194, 0.01897647], atol=5e-9
    )


def test_jia_variances_reproduce_the_paper_but_printed_ses_do_not():
    # notes/robust-method.md §8.1 [V]: theta_FE = -0.1948757, SE 0.0609089,
    # Q = 0.6415460 with the CI-derived variances; the rounded SEs give -0.1925.
    jia = load_jia()
    y = jia["log_or"].to_numpy()
    w = 1 / jia["vi"].to_numpy()
    theta = np.sum(w * y) / np.sum(w)
    assert theta == pytest.approx(-0.1948757, abs=5e-8)
    assert 1 / np.sqrt(np.sum(w)) == pytest.approx(0.0609089, abs=5e-8)
    assert np.sum(w * (y - theta) ** 2) == pytest.approx(0.6415460, abs=5e-8)
    w_rounded = 1 / jia["se_printed"].to_numpy() ** 2
    theta_rounded = np.sum(w_rounded * y) / np.sum(w_rounded)
    assert theta_rounded == pytest.approx(-0.1925, abs=5e-5)


def test_laopaiboon2015_values():
    lao = load_laopaiboon2015()
    assert lao.loc[0, ["author", "year", "ai", "n1i", "ci", "n2i"]].tolist() == [
        "Balmes",
        1991,
        4,
        48,
        7,
        56,
    ]
    assert (lao["ai"] <= lao["n1i"]).all() and (lao["ci"] <= lao["n2i"]).all()
    assert set(lao["ctrl"]) == {"amoxycillin", "amoxyclav"}


def test_collins1985b_values():
    col = load_collins1985b()
    assert col.loc[0, ["pre_nti", "pre_nci", "pre_xti", "pre_xci"]].tolist() == [
        131,
        136,
        14,
        14,
    ]
    # the stillbirth / neonatal death split is not reported by study 6
    missing = col[["stb_xti", "stb_xci", "ned_xti", "ned_xci"]].isna().any(axis=1)
    assert col.loc[missing, "id"].tolist() == [6]


def test_linde2005_missing_rows():
    lin = load_linde2005()
    no_response = lin[["ai", "n1i", "ci", "n2i"]].isna().all(axis=1)
    assert lin.loc[no_response, "id"].tolist() == [5, 26]
    both_zero = (lin["ai"] == 0) & (lin["ci"] == 0)
    assert lin.loc[both_zero, "id"].tolist() == [6]


def test_hine1989_values():
    hine = load_hine1989()
    assert hine["n1i"].tolist() == [39, 44, 107, 103, 110, 154]
    assert hine["n2i"].tolist() == [43, 44, 110, 100, 106, 146]
    assert hine["ai"].tolist() == [2, 4, 6, 7, 7, 11]
    assert hine["ci"].tolist() == [1, 4, 4, 5, 3, 4]
