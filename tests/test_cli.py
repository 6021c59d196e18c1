"""Command line: ``python -m skmeta`` on bundled data and on a user's CSV file."""

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from skmeta import LocationScaleMeta, MultilevelMeta, RandomEffectsMeta
from skmeta.__main__ import main
from skmeta.datasets import load_bcg, load_school_calendar, load_writing_to_learn
from skmeta.effect_sizes import log_risk_ratio


@pytest.fixture
def bcg_csv(tmp_path):
    data = load_bcg()
    yi, vi = log_risk_ratio(data["tpos"], data["tneg"], data["cpos"], data["cneg"])
    path = tmp_path / "bcg.csv"
    data.assign(logrr=yi, var=vi).to_csv(path, index=False)
    return path


def _number(text, label):
    """The number printed after ``label :`` in a summary."""
    line = next(ln for ln in text.splitlines() if ln.startswith(label))
    return float(line.split(":")[1])


def test_main_job_without_arguments(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main([]) == 0
    out = capsys.readouterr().out
    # the seed's BCG numbers: RE (REML) and the location-scale model
    assert "Random-effects model (k = 13" in out
    assert "-0.7145" in out  # metafor: estimate -0.7145, se 0.1798
    assert "Location-scale model" in out
    for value in ("-0.4813", "-0.4897", "-1.5532", "0.6180", "-10.6480"):
        assert value in out
    assert "LRT = 0.2989, df = 1, p = 0.5845" in out
    png = tmp_path / "bcg_forest.png"
    assert png.stat().st_size > 10_000
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_module_entry_point_runs(tmp_path):
    """``python -m skmeta`` as a user runs it (new process, no arguments)."""
    result = subprocess.run(
        [sys.executable, "-m", "skmeta", "--plot", str(tmp_path / "f.png")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "Random-effects model" in result.stdout
    assert (tmp_path / "f.png").exists()


def test_csv_random_effects_with_moderators_matches_estimator(bcg_csv, capsys):
    args = [str(bcg_csv), "--yi", "logrr", "--vi", "var", "--mods", "ablat"]
    assert main([*args, "--method", "ml", "--inference", "knapp-hartung"]) == 0
    out = capsys.readouterr().out
    data = pd.read_csv(bcg_csv)
    model = RandomEffectsMeta(method="ml", inference="knapp-hartung").fit(
        data[["ablat"]], data["logrr"], sample_var=data["var"]
    )
    assert "13 studies, random-effects model" in out
    np.testing.assert_allclose(_number(out, "tau^2 "), model.tau2_, atol=5e-5)
    assert f"{model.coef_[0]:.4f}" in out
    assert "Knapp-Hartung" in out


def test_csv_text_moderator_becomes_dummies(bcg_csv, capsys):
    assert main([str(bcg_csv), "--yi", "logrr", "--vi", "var", "--mods", "alloc"]) == 0
    out = capsys.readouterr().out
    # treatment coding against the first level in sorted order ("alternate")
    assert "alloc_random" in out and "alloc_systematic" in out


def test_csv_location_scale_and_plot(tmp_path, capsys):
    data = load_writing_to_learn()
    data["ni100"] = data["ni"] / 100
    path = tmp_path / "wtl.csv"
    data.to_csv(path, index=False)
    png = tmp_path / "forest.png"
    argv = [str(path), "--mods", "ni100", "--scale", "ni100", "--plot", str(png)]
    assert main([*argv, "--label", "author"]) == 0
    out = capsys.readouterr().out
    model = LocationScaleMeta().fit(
        data[["ni100"]], data["yi"], sample_var=data["vi"], Z=data[["ni100"]]
    )
    assert "location-scale model" in out
    # seed 000: scale intercept -1.921 (se 0.669), slope -0.917 (se 0.514)
    assert f"{model.scale_intercept_:.4f}" in out and "-1.92" in out
    assert png.stat().st_size > 10_000


def test_csv_multilevel(tmp_path, capsys):
    path = tmp_path / "school.csv"
    load_school_calendar().to_csv(path, index=False)
    assert main([str(path), "--groups", "district", "school"]) == 0
    out = capsys.readouterr().out
    assert "multilevel model" in out
    # Stata / metafor: three-level theta 0.1847, REML log-likelihood -7.9587
    assert "0.1847" in out and "-7.9587" in out
    data = load_school_calendar()
    model = MultilevelMeta().fit(
        None, data["yi"], sample_var=data["vi"], groups=data[["district", "school"]]
    )
    np.testing.assert_allclose(model.intercept_, 0.1847, atol=5e-5)


def test_csv_robust_and_standard_errors(bcg_csv, tmp_path, capsys):
    data = pd.read_csv(bcg_csv)
    data["se"] = np.sqrt(data["var"])
    path = tmp_path / "se.csv"
    data.to_csv(path, index=False)
    assert main([str(path), "--yi", "logrr", "--sei", "se", "--model", "robust"]) == 0
    out = capsys.readouterr().out
    assert "robust model" in out and "DerSimonian-Laird" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["missing.csv"], "file not found: missing.csv"),
        (["{csv}", "--yi", "logrr", "--vi", "nope"], "['nope'] not in the CSV"),
        (["{csv}", "--yi", "logrr", "--vi", "var", "--mods", "lat"], "['lat']"),
        (["{csv}", "--yi", "author", "--vi", "var"], "non-numeric"),
        (["{csv}", "--yi", "logrr", "--vi", "var", "--method", "xx"], "--method"),
        (["{csv}", "--yi", "logrr", "--vi", "var", "--model", "multilevel"], "groups"),
        (
            ["{csv}", "--yi", "logrr", "--vi", "var", "--inference", "hksj"],
            "inference",
        ),
        (["--mods", "ablat"], "need a CSV file"),
    ],
)
def test_cli_errors_are_clear(bcg_csv, tmp_path, monkeypatch, capsys, argv, message):
    monkeypatch.chdir(tmp_path)
    argv = [a.replace("{csv}", str(bcg_csv)) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("skmeta: error:")
    assert message in err
    assert "Traceback" not in err


def test_cli_rejects_bad_level(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--level", "95"])
    assert exc.value.code == 2
    assert "--level must be in (0, 1)" in capsys.readouterr().err


# ------------------------------------------------------------ the registry
class TauFixedMeta(RandomEffectsMeta):
    """A stand-in for a new estimator (registered only in the test below)."""

    def _model_label(self):
        return "Tau-fixed Model"


def test_a_registered_estimator_needs_nothing_else(bcg_csv, monkeypatch, capsys):
    """Adding an estimator touches only the registry: the command line offers it,
    with its methods from the class's parameter constraints."""
    from skmeta import _registry

    entry = _registry.RegisteredEstimator(f"{__name__}:TauFixedMeta")
    monkeypatch.setitem(_registry.ESTIMATORS, "tau-fixed", entry)
    args = [str(bcg_csv), "--yi", "logrr", "--vi", "var", "--model", "tau-fixed"]
    assert main([*args, "--method", "dl", "--no-plot"]) == 0
    out = capsys.readouterr().out
    model = RandomEffectsMeta(method="dl").fit(
        None, pd.read_csv(bcg_csv)["logrr"], sample_var=pd.read_csv(bcg_csv)["var"]
    )
    assert "tau-fixed model" in out and f"{model.intercept_:.4f}" in out
    assert main([*args, "--groups", "author", "--no-plot"]) == 2
    assert "--groups is not an option of the tau-fixed model" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "tau-fixed: --method {reml, dl" in capsys.readouterr().out


def test_registry_lists_the_public_classes():
    import skmeta
    from skmeta._registry import ESTIMATORS, estimator_class, public_classes

    for name in ESTIMATORS:
        cls = estimator_class(name)
        assert getattr(skmeta, cls.__name__) is cls
    assert set(public_classes()) == {
        "RandomEffectsMeta",
        "LocationScaleMeta",
        "MultilevelMeta",
        "RobustMeta",
        "SelectionModelMeta",
    }
