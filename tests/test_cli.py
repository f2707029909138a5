"""The crnn command, end to end: demo, train, predict, forecast, and their errors."""

import os
import re
import shutil
import stat
import subprocess
import sys

import numpy as np
import pytest

import crnn
from crnn._cli import main, read_table


def _errors(out):
    match = re.search(r"crnn ([0-9.]+)\s+persistence ([0-9.]+)", out)
    return float(match.group(1)), float(match.group(2))


TINY_DEMO = ["demo", "--epochs", "5", "--length", "400", "--hidden-size", "8", "-q"]


@pytest.fixture
def series_csv(tmp_path):
    t = np.arange(300)
    data = np.c_[np.sin(t / 5), np.cos(t / 7)]
    path = tmp_path / "series.csv"
    np.savetxt(path, data, delimiter=",", header="a,b", comments="")
    return path, data


def test_demo_reports_against_persistence_and_saves(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main([*TINY_DEMO, "--no-plot"]) == 0
    out = capsys.readouterr().out
    assert "persistence" in out
    crnn_rmse, naive = _errors(out)
    assert crnn_rmse > 0
    assert naive > 0
    assert "% lower than persistence" in out or "% higher than persistence" in out
    model = crnn.load(tmp_path / "crnn-demo-model.npz")
    assert model.hidden_size == 8
    assert model.data_mean_.shape == (1,)
    # a second run never overwrites: it picks a new name
    assert main([*TINY_DEMO, "--no-plot"]) == 0
    assert (tmp_path / "crnn-demo-model-1.npz").exists()


def test_demo_default_settings_beat_persistence_by_far(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["demo", "-q", "--no-plot"]) == 0
    out = capsys.readouterr().out
    crnn_rmse, naive = _errors(out)
    assert crnn_rmse < naive / 5


def test_demo_without_matplotlib_says_how_to_get_the_plot(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import fails
    assert main(TINY_DEMO) == 0
    assert "pip install 'crnn[plot]'" in capsys.readouterr().out
    assert not list(tmp_path.glob("*.png"))


def test_demo_draws_the_plot(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    monkeypatch.chdir(tmp_path)
    assert main([*TINY_DEMO, "--plot", "fc.png"]) == 0
    assert (tmp_path / "fc.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main([*TINY_DEMO, "--plot", "fc.png"]) == 2  # named and existing: refused


def test_train_predict_forecast(tmp_path, series_csv, capsys):
    path, data = series_csv
    model_path = tmp_path / "m.npz"
    args = ["train", str(path), "--epochs", "20", "--hidden-size", "6", "-q", "-o", str(model_path)]
    assert main(args) == 0
    model = crnn.load(model_path)
    assert (model.input_size, model.output_size) == (2, 2)
    assert not model.bias  # biases only with --bias
    np.testing.assert_allclose(model.data_mean_, data.mean(axis=0))
    capsys.readouterr()

    out_csv = tmp_path / "pred.csv"
    assert main(["predict", str(model_path), str(path), "-o", str(out_csv)]) == 0
    pred = np.loadtxt(out_csv, delimiter=",", skiprows=1)
    z = (data - model.data_mean_) / model.data_scale_
    expected = model.predict(z) * model.data_scale_ + model.data_mean_
    np.testing.assert_allclose(pred, expected, rtol=1e-15)  # repr round-trips floats

    assert main(["forecast", str(model_path), str(path), "--steps", "4"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "forecast_0,forecast_1"
    got = np.array([[float(v) for v in line.split(",")] for line in lines[1:]])
    expected = model.generate(4, z) * model.data_scale_ + model.data_mean_
    np.testing.assert_allclose(got, expected, rtol=1e-15)


def _run(*args):
    return subprocess.run(
        [sys.executable, "-m", "crnn", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_train_with_bias_then_predict_and_forecast(tmp_path, series_csv):
    path, data = series_csv
    model_path = tmp_path / "biased.npz"
    proc = _run(
        *("train", path, "--bias", "--epochs", "3", "--hidden-size", "4", "--window", "30"),
        *("-q", "-o", model_path),
    )
    assert proc.returncode == 0, proc.stderr
    assert "bias=True" in proc.stdout
    model = crnn.load(model_path)
    assert model.bias is True
    assert model.b.shape == (4,)
    assert model.c.shape == (2,)
    assert np.abs(model.c).max() > 0
    z = (data - model.data_mean_) / model.data_scale_

    pred_csv = tmp_path / "pred.csv"
    proc = _run("predict", model_path, path, "-o", pred_csv)
    assert proc.returncode == 0, proc.stderr
    pred = np.loadtxt(pred_csv, delimiter=",", skiprows=1)
    expected = model.predict(z) * model.data_scale_ + model.data_mean_
    np.testing.assert_allclose(pred, expected, rtol=1e-15)
    unbiased = crnn.RNN.from_weights(model.U, model.W, model.V)  # the biases count
    assert not np.allclose(pred, unbiased.predict(z) * model.data_scale_ + model.data_mean_)

    proc = _run("forecast", model_path, path, "--steps", "3")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "forecast_0,forecast_1"
    got = np.array([[float(v) for v in line.split(",")] for line in lines[1:]])
    expected = model.generate(3, z) * model.data_scale_ + model.data_mean_
    np.testing.assert_allclose(got, expected, rtol=1e-15)


def test_npy_data_and_one_column(tmp_path, capsys):
    path = tmp_path / "x.npy"
    np.save(path, np.sin(np.arange(200) / 4.0))
    assert main(["train", str(path), "--epochs", "3", "-q", "-o", str(tmp_path / "m.npz")]) == 0
    assert crnn.load(tmp_path / "m.npz").input_size == 1


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("a,b\n1,2\n3,x\n", "line 3: 'x' is not a number"),
        ("1,2\n3\n", "line 2: 1 columns"),
        ("", "is empty"),
        ("1,2\n", "at least 2 rows"),
        ("1,nan\n2,3\n", "not a finite number"),
    ],
)
def test_bad_csv(tmp_path, capsys, content, message):
    path = tmp_path / "bad.csv"
    path.write_text(content)
    assert main(["train", str(path), "-q", "-o", str(tmp_path / "m.npz")]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert "bad.csv" in err
    assert not (tmp_path / "m.npz").exists()


def test_file_errors_and_no_overwrite(tmp_path, series_csv, capsys):
    path, _ = series_csv
    model_path = tmp_path / "m.npz"
    assert main(["train", str(path), "--epochs", "2", "-q", "-o", str(model_path)]) == 0
    before = model_path.read_bytes()
    assert main(["train", str(path), "--epochs", "2", "-q", "-o", str(model_path)]) == 2
    assert "--force" in capsys.readouterr().err
    assert model_path.read_bytes() == before
    assert main(["train", str(path), "--epochs", "2", "-q", "-o", str(model_path), "--force"]) == 0

    assert main(["predict", str(tmp_path / "none.npz"), str(path)]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["predict", str(path), str(path)]) == 2  # a CSV is not a model
    assert "series.csv" in capsys.readouterr().err
    three = tmp_path / "three.csv"
    three.write_text("1,2,3\n4,5,6\n")
    assert main(["predict", str(model_path), str(three)]) == 2
    assert "3 columns" in capsys.readouterr().err
    out_csv = tmp_path / "out.csv"
    out_csv.write_text("keep me")
    assert main(["predict", str(model_path), str(path), "-o", str(out_csv)]) == 2
    assert out_csv.read_text() == "keep me"


def test_console_script_and_module_run():
    script = shutil.which("crnn")
    commands = [[sys.executable, "-m", "crnn", "--version"]]
    if script is not None:
        commands.append([script, "--version"])
    for command in commands:
        out = subprocess.run(command, capture_output=True, text=True, timeout=60, check=True)
        assert out.stdout.strip() == f"crnn {crnn.__version__}"
    proc = subprocess.run(
        [sys.executable, "-m", "crnn", "forecast", "m.npz", "d.csv"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2
    assert "--steps" in proc.stderr


# ---------------------------------------------------------------------- files made meanwhile


def _meanwhile(monkeypatch, method, action):
    """Run action() once, the first time RNN.<method> is called (during the command)."""
    original = getattr(crnn.RNN, method)
    done = []

    def patched(self, *args, **kwargs):
        if not done:
            done.append(1)
            action()
        return original(self, *args, **kwargs)

    monkeypatch.setattr(crnn.RNN, method, patched)


def test_an_output_created_during_training_is_not_replaced(tmp_path, series_csv, capsys):
    path, _ = series_csv
    out = tmp_path / "m.npz"
    with pytest.MonkeyPatch.context() as mp:
        _meanwhile(mp, "fit", lambda: out.write_bytes(b"made meanwhile"))
        assert main(["train", str(path), "--epochs", "2", "-q", "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "--force" in err
    assert len(err.splitlines()) == 1
    assert out.read_bytes() == b"made meanwhile"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.npz", "series.csv"]


def test_a_default_name_taken_during_training_is_not_replaced(
    tmp_path, series_csv, monkeypatch, capsys
):
    path, _ = series_csv
    monkeypatch.chdir(tmp_path)
    taken = tmp_path / "crnn-model.npz"
    _meanwhile(monkeypatch, "fit", lambda: taken.write_bytes(b"made meanwhile"))
    assert main(["train", str(path), "--epochs", "2", "-q"]) == 0
    assert "model saved to crnn-model-1.npz" in capsys.readouterr().out
    assert taken.read_bytes() == b"made meanwhile"
    assert crnn.load(tmp_path / "crnn-model-1.npz").input_size == 2


def test_two_runs_at_once_with_the_default_name_keep_both_models(
    tmp_path, series_csv, monkeypatch, capsys
):
    # the second run starts and ends while the first trains: both report
    # success, and both models are there
    path, _ = series_csv
    monkeypatch.chdir(tmp_path)
    second = ["train", str(path), "--epochs", "2", "-q", "--seed", "1"]
    _meanwhile(monkeypatch, "fit", lambda: main(second))
    assert main(["train", str(path), "--epochs", "2", "-q", "--seed", "2"]) == 0
    out = capsys.readouterr().out
    assert "model saved to crnn-model.npz" in out
    assert "model saved to crnn-model-1.npz" in out
    a, b = crnn.load(tmp_path / "crnn-model.npz"), crnn.load(tmp_path / "crnn-model-1.npz")
    assert not np.array_equal(a.W, b.W)


def test_a_csv_output_created_meanwhile_is_not_replaced(tmp_path, series_csv, capsys):
    path, _ = series_csv
    model = tmp_path / "m.npz"
    assert main(["train", str(path), "--epochs", "2", "-q", "-o", str(model)]) == 0
    out = tmp_path / "out.csv"
    with pytest.MonkeyPatch.context() as mp:
        _meanwhile(mp, "predict", lambda: out.write_text("made meanwhile"))
        assert main(["predict", str(model), str(path), "-o", str(out)]) == 2
    assert "--force" in capsys.readouterr().err
    assert out.read_text() == "made meanwhile"
    assert main(["predict", str(model), str(path), "-o", str(out), "--force"]) == 0
    assert out.read_text().startswith("prediction_0,prediction_1\n")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this system")
def test_force_does_not_replace_a_fifo(tmp_path, series_csv, capsys):
    path, _ = series_csv
    fifo = tmp_path / "out.npz"
    os.mkfifo(fifo)
    assert main(["train", str(path), "--epochs", "2", "-q", "-o", str(fifo), "--force"]) == 2
    err = capsys.readouterr().err
    assert "FIFO" in err
    assert len(err.splitlines()) == 1
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)


# ---------------------------------------------------------------------- CSV oddities


def test_a_field_beyond_the_csv_modules_limit_is_one_line_and_status_2(tmp_path, capsys):
    path = tmp_path / "long.csv"
    path.write_text("1,2\n3," + "4" * 200_000 + "\n5,6\n")
    assert main(["train", str(path), "-q", "-o", str(tmp_path / "m.npz")]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1
    assert "long.csv', line 2" in err
    assert "field larger than field limit" in err
    assert not (tmp_path / "m.npz").exists()


@pytest.mark.parametrize("header", ["", "a,b\n"])
def test_a_byte_order_mark_is_not_data(tmp_path, header):
    path = tmp_path / "bom.csv"
    path.write_bytes(b"\xef\xbb\xbf" + (header + "1,2\n3,4\n5,6\n").encode())
    np.testing.assert_array_equal(read_table(str(path)), [[1, 2], [3, 4], [5, 6]])
