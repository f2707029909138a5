"""The crnn command, end to end: demo, train, predict, forecast, and their errors."""

import argparse
import os
import re
import shutil
import stat
import subprocess
import sys

import numpy as np
import pytest

import crnn
import crnn._cli
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


def test_train_takes_the_cell_and_weight_decay(tmp_path, series_csv, capsys):
    path, _ = series_csv
    model_path = tmp_path / "m.npz"
    args = ["train", str(path), "--epochs", "3", "--hidden-size", "4", "-q", "-o", str(model_path)]
    extra = ["--activation", "relu", "--leak", "0.5", "--weight-decay", "0.01"]
    assert main([*args, *extra]) == 0
    model = crnn.load(model_path)
    assert (model.activation, model.leak) == ("relu", 0.5)
    capsys.readouterr()
    # the saved cell is what predict uses
    assert main(["predict", str(model_path), str(path), "-o", str(tmp_path / "p.csv")]) == 0


def test_train_predict_forecast(tmp_path, series_csv, capsys):
    path, data = series_csv
    model_path = tmp_path / "m.npz"
    args = ["train", str(path), "--epochs", "20", "--hidden-size", "6", "-q", "-o", str(model_path)]
    assert main(args) == 0
    model = crnn.load(model_path)
    assert (model.input_size, model.output_size) == (2, 2)
    assert model.bias  # biases by default (--no-bias: none)
    # the scaling is the training part's: the last 20% of the steps are held out
    np.testing.assert_allclose(model.data_mean_, data[:240].mean(axis=0))
    capsys.readouterr()

    out_csv = tmp_path / "pred.csv"
    assert main(["predict", str(model_path), str(path), "-o", str(out_csv)]) == 0
    pred = np.loadtxt(out_csv, delimiter=",", skiprows=1)
    z = (data - model.data_mean_) / model.data_scale_
    expected = model.predict(z) * model.data_scale_ + model.data_mean_
    np.testing.assert_allclose(pred, expected, rtol=1e-15)  # repr round-trips floats

    assert main(["forecast", str(model_path), str(path), "--steps", "4"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "a,b"  # the input's column names
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
    assert lines[0] == "a,b"
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
    assert out.read_text().startswith("a,b\n")


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


# ---------------------------------------------------------------------- columns and delimiters


@pytest.fixture
def weather_csv(tmp_path):
    """Semicolon-separated, with a date column that is no number and two series."""
    t = np.arange(400)
    data = np.c_[np.sin(t / 6), np.cos(t / 9) + 3]
    lines = ["date;temp;humidity"]
    lines += [f"2024-01-01T{i:03d};{a};{b}" for i, (a, b) in enumerate(data.tolist())]
    path = tmp_path / "weather.csv"
    path.write_text("\n".join(lines) + "\n")
    return path, data


def test_columns_by_name_or_index_with_a_delimiter(tmp_path, weather_csv, capsys):
    # before: no --columns or --delimiter (usage error), and the date column
    # made every line "not a number"
    path, data = weather_csv
    model_path = tmp_path / "m.npz"
    argv = ["train", str(path), "--delimiter", ";", "--columns", "temp,humidity"]
    assert main([*argv, "--epochs", "3", "-q", "-o", str(model_path)]) == 0
    assert "(columns: temp, humidity)" in capsys.readouterr().out
    model = crnn.load(model_path)
    assert model.input_size == 2
    np.testing.assert_allclose(model.data_mean_, data[:320].mean(axis=0))
    z = (data - model.data_mean_) / model.data_scale_
    expected = model.predict(z) * model.data_scale_ + model.data_mean_
    # by index (0 is the date), by negative index, by name: the same columns
    for columns in ("1,2", "1,-1", "temp,2"):
        assert (
            main(["predict", str(model_path), str(path), "--delimiter", ";", "--columns", columns])
            == 0
        )
        lines = capsys.readouterr().out.splitlines()
        assert lines[0] == "temp;humidity"  # the input's names, with its delimiter
        got = np.array([[float(v) for v in line.split(";")] for line in lines[1:]])
        np.testing.assert_allclose(got, expected, rtol=1e-15)
    # in another order: the other way round
    assert (
        main(
            [
                "forecast",
                str(model_path),
                str(path),
                "--delimiter",
                ";",
                "--columns",
                "humidity,temp",
                "--steps",
                "2",
            ]
        )
        == 0
    )
    assert capsys.readouterr().out.splitlines()[0] == "humidity;temp"


@pytest.mark.parametrize("spelling", ["\t", "\\t", "tab"])
def test_a_tab_delimiter(tmp_path, spelling, capsys):
    path = tmp_path / "x.tsv"
    values = np.sin(np.arange(150) / 4.0)
    path.write_text("level\n" + "".join(f"{v}\n" for v in values.tolist()))
    two = tmp_path / "two.tsv"
    two.write_text("".join(f"{v}\t{-v}\n" for v in values.tolist()))  # no header
    model_path = tmp_path / "m.npz"
    assert (
        main(
            [
                "train",
                str(two),
                "--delimiter",
                spelling,
                "-q",
                "--epochs",
                "2",
                "-o",
                str(model_path),
            ]
        )
        == 0
    )
    capsys.readouterr()
    assert main(["predict", str(model_path), str(two), "--delimiter", spelling]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "prediction_0\tprediction_1"  # no header line: numbered names
    assert len(lines) == 151
    assert main(["predict", str(model_path), str(path), "--delimiter", spelling]) == 2
    assert (
        "1 columns, but the model was trained on 2 (choose them with --columns)"
        in capsys.readouterr().err
    )


def test_only_the_chosen_columns_need_to_be_numbers_and_a_headerless_file_takes_indices(
    tmp_path, capsys
):
    path = tmp_path / "x.csv"
    path.write_text("".join(f"day {i},{np.sin(i / 3)}\n" for i in range(120)))
    assert (
        main(
            [
                "train",
                str(path),
                "--columns",
                "1",
                "-q",
                "--epochs",
                "2",
                "-o",
                str(tmp_path / "m.npz"),
            ]
        )
        == 0
    )
    assert "(columns:" not in capsys.readouterr().out  # no names to report
    assert crnn.load(tmp_path / "m.npz").input_size == 1
    # every column, as before: the first is no number, and the error says what to do
    assert main(["train", str(path), "-q", "--epochs", "2", "-o", str(tmp_path / "n.npz")]) == 2
    err = capsys.readouterr().err
    assert (
        "line 2: 'day 1' is not a number (choose the columns that hold numbers with --columns)"
        in err
    )


def test_columns_of_a_npy_file_by_index(tmp_path):
    path = tmp_path / "x.npy"
    data = np.arange(30.0).reshape(10, 3)
    np.save(path, data)
    values, names = crnn._cli.read_data(str(path), columns="2,0")
    np.testing.assert_array_equal(values, data[:, [2, 0]])
    assert names is None


def test_a_whole_number_is_an_index_never_a_name(tmp_path, capsys):
    # no header: the first line is data even when it holds the index asked for
    path = tmp_path / "x.csv"
    path.write_text("".join(f"{i},{1 + i % 7}\n" for i in range(60)))
    np.testing.assert_array_equal(read_table(str(path), columns="1")[:3, 0], [1, 2, 3])
    np.testing.assert_array_equal(read_table(str(path), columns="-2")[:2, 0], [0, 1])
    # a header name that is a number is reached by its index
    path.write_text("year,2020\n" + "".join(f"{i},{i * 2}\n" for i in range(60)))
    values, names = crnn._cli.read_data(str(path), columns="1")
    assert names == ["2020"]
    np.testing.assert_array_equal(values[:2, 0], [0, 2])
    assert main(["train", str(path), "--columns", "2020", "-q", "-o", str(tmp_path / "m.npz")]) == 2
    assert "column index 2020 is out of range" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("columns", "message"),
    [
        ("x", "has no column named 'x' (its columns: date, temp, humidity)"),
        ("temp,temp", "column 'temp' is chosen twice"),
        ("1,-2", "column '-2' is chosen twice"),
        ("3", "column index 3 is out of range: DATA file '{path}' has 3 column(s), indices 0 to 2"),
        ("-4", "column index -4 is out of range"),
        ("temp,", "has no column named ''"),
        ("date", "line 2: '2024-01-01T000' is not a number"),
    ],
)
def test_bad_columns_are_one_line_and_status_2(tmp_path, weather_csv, capsys, columns, message):
    path, _ = weather_csv
    argv = [
        "train",
        str(path),
        "--delimiter",
        ";",
        "--columns",
        columns,
        "-q",
        "-o",
        str(tmp_path / "m.npz"),
    ]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1
    assert err.startswith("crnn train: error: ")
    assert message.format(path=path) in err
    assert not (tmp_path / "m.npz").exists()


@pytest.mark.parametrize(
    ("name", "content", "columns", "message"),
    [
        (
            "x.npy",
            np.zeros((50, 2)),
            "a",
            "--columns: DATA file '{path}' has no header line to find 'a' in; give column indices (0 is the first)",
        ),
        ("x.csv", "1,2\n3,4\n5,6\n", "a", "has no header line to find 'a' in"),
        ("x.npy", np.zeros((50, 2)), "2", "column index 2 is out of range"),
        ("x.csv", "a,a\n1,2\n3,4\n", "a", "its header has more than one column named 'a'"),
        (
            "x.csv",
            "a,b,c\n1,2\n3,4\n",
            None,
            "the header line has 3 columns, but the first data line has 2",
        ),
    ],
)
def test_columns_a_file_cannot_give(tmp_path, capsys, name, content, columns, message):
    path = tmp_path / name
    if isinstance(content, np.ndarray):
        np.save(path, content)
    else:
        path.write_text(content)
    argv = ["train", str(path), "-q", "-o", str(tmp_path / "m.npz")]
    assert main(argv if columns is None else [*argv, "--columns", columns]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1
    assert message.format(path=path) in err


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--delimiter", ";;", "must be one character"),
        ("--delimiter", "", "must be one character"),
        ("--delimiter", ".", "cannot separate fields of numbers"),
        ("--delimiter", "-", "cannot separate fields of numbers"),
        ("--delimiter", '"', "cannot separate fields of numbers"),
        ("--test-fraction", "1", "must be in [0, 1)"),
        ("--test-fraction", "-0.1", "must be in [0, 1)"),
        ("--test-fraction", "nan", "must be in [0, 1)"),
        ("--test-fraction", "half", "not a number"),
        ("--leak", "0", "must be in (0, 1]"),
        ("--leak", "1.5", "must be in (0, 1]"),
        ("--leak", "x", "not a number"),
        ("--weight-decay", "-1", "must be a number >= 0"),
        ("--weight-decay", "inf", "must be a number >= 0"),
        ("--activation", "sigmoid", "invalid choice"),
    ],
)
def test_bad_options_are_usage_errors(tmp_path, series_csv, capsys, option, value, message):
    path, _ = series_csv
    with pytest.raises(SystemExit) as exc:
        main(["train", str(path), f"{option}={value}", "-q", "-o", str(tmp_path / "m.npz")])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {option}: " in err
    assert message in err
    assert not (tmp_path / "m.npz").exists()


# ---------------------------------------------------------------------- help


def _subcommands():
    parser = crnn._cli.build_parser()
    (sub,) = (a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices


@pytest.mark.parametrize("command", ["demo", "train", "predict", "forecast"])
def test_help_has_a_line_for_every_option_with_its_default(command, capsys):
    # before: most options had no help text, and no default was shown
    sub = _subcommands()[command]
    with pytest.raises(SystemExit):
        main([command, "--help"])
    text = " ".join(capsys.readouterr().out.split())
    shown = 0
    for action in sub._actions:
        assert action.help, f"{command} {action.option_strings or action.dest}: no help"
        if action.option_strings and action.default not in (None, False, argparse.SUPPRESS):
            shown += 1
    assert text.count("(default: ") - text.count("(default: a comma)") >= shown
    if command == "train":
        for expected in [
            "--bias, --no-bias biases b and c",
            "(default: True)",
            "--hidden-size HIDDEN_SIZE hidden units d (default: 32)",
            "--epochs EPOCHS the most passes over the windows (default: 200)",
            "(default: 0.01 for adam and sgd, 0.1 for adagrad)",
            "--optimizer {adam,sgd,adagrad,lm} the optimizer (default: adam)",
            "--test-fraction TEST_FRACTION",
            "(default: 0.2)",
            "--window WINDOW steps per training window (default: 100)",
            "--activation {tanh,relu,identity,logistic}",
            "--leak LEAK the leak rate a, in (0, 1] (1: no leak) (default: 1.0)",
            "(default: 0.0)",
            "(default: crnn-model.npz)",
        ]:
            assert expected in text


# ---------------------------------------------------------------------- held-out error, warnings


def _held_out(out):
    match = re.search(
        r"held-out RMSE, next step \(last (\d+) steps\):\s+crnn (\S+)\s+persistence (\S+)", out
    )
    assert match, out
    return int(match.group(1)), float(match.group(2)), float(match.group(3))


@pytest.mark.parametrize(("fraction", "n_test"), [(None, 60), ("0.5", 150), ("0.01", 3)])
def test_the_error_is_measured_on_the_held_out_end_of_the_series(
    tmp_path, series_csv, capsys, fraction, n_test
):
    # before: the RMSE reported was the training series' own
    path, data = series_csv
    model_path = tmp_path / "m.npz"
    argv = ["train", str(path), "--epochs", "30", "--window", "40", "-q", "-o", str(model_path)]
    assert main(argv if fraction is None else [*argv, "--test-fraction", fraction]) == 0
    out = capsys.readouterr().out
    got_n, rmse, naive = _held_out(out)
    assert got_n == n_test
    n_train = len(data) - n_test
    assert f"on {n_train} steps of 2 feature(s)" in out
    assert f"the last {n_test} held out" in out
    model = crnn.load(model_path)
    np.testing.assert_allclose(model.data_mean_, data[:n_train].mean(axis=0))
    # each held-out step predicted from the step before, the state run over the rest
    z = (data - model.data_mean_) / model.data_scale_
    pred = model.predict(z[:-1])[n_train - 1 :] * model.data_scale_ + model.data_mean_
    truth = data[n_train:]
    assert rmse == pytest.approx(np.sqrt(np.mean((pred - truth) ** 2)), rel=1e-5)
    assert naive == pytest.approx(np.sqrt(np.mean((data[n_train - 1 : -1] - truth) ** 2)), rel=1e-5)


def test_the_held_out_steps_do_not_touch_the_model(tmp_path, series_csv, capsys):
    path, data = series_csv
    other = data.copy()
    other[240:] = np.random.default_rng(0).normal(size=(60, 2)) * 5  # only the held-out part
    other_path = tmp_path / "other.csv"
    np.savetxt(other_path, other, delimiter=",", header="a,b", comments="")
    args = ["--epochs", "5", "--window", "40", "-q"]
    assert main(["train", str(path), *args, "-o", str(tmp_path / "a.npz")]) == 0
    assert main(["train", str(other_path), *args, "-o", str(tmp_path / "b.npz")]) == 0
    first = _held_out(capsys.readouterr().out)
    a, b = crnn.load(tmp_path / "a.npz"), crnn.load(tmp_path / "b.npz")
    for name, value in a.parameters().items():
        np.testing.assert_array_equal(value, b.parameters()[name])
    np.testing.assert_array_equal(a.data_scale_, b.data_scale_)
    assert first[0] == 60


def test_no_held_out_part(tmp_path, series_csv, capsys):
    path, _ = series_csv
    assert (
        main(
            [
                "train",
                str(path),
                "--test-fraction",
                "0",
                "--epochs",
                "2",
                "-q",
                "-o",
                str(tmp_path / "m.npz"),
            ]
        )
        == 0
    )
    captured = capsys.readouterr()
    assert "on 300 steps of 2 feature(s)" in captured.out
    assert "none held out" in captured.out
    assert "RMSE" not in captured.out
    assert captured.err == ""


def test_warning_when_the_series_is_too_short_for_the_window(tmp_path, series_csv, capsys):
    path, _ = series_csv
    assert (
        main(
            [
                "train",
                str(path),
                "--window",
                "500",
                "--epochs",
                "2",
                "-q",
                "-o",
                str(tmp_path / "m.npz"),
            ]
        )
        == 0
    )
    captured = capsys.readouterr()
    assert (
        "crnn train: warning: the training part has 240 steps, fewer than --window 500 + 1: the "
        "model trains on one sequence of 239 steps"
    ) in captured.err
    assert "(1 windows of 239 steps)" in captured.out
    assert (tmp_path / "m.npz").exists()


def test_warning_when_the_series_is_too_short_to_hold_out_a_step(tmp_path, capsys):
    path = tmp_path / "two.csv"
    path.write_text("1\n2\n")
    assert (
        main(
            [
                "train",
                str(path),
                "--window",
                "1",
                "--epochs",
                "1",
                "-q",
                "-o",
                str(tmp_path / "m.npz"),
            ]
        )
        == 0
    )
    captured = capsys.readouterr()
    assert "warning: the series has only 2 steps: none is held out" in captured.err
    assert "RMSE" not in captured.out


def test_warning_when_the_fit_is_worse_than_persistence(tmp_path, capsys):
    # a slow random walk: persistence is nearly exact, one epoch of training is not
    path = tmp_path / "walk.csv"
    np.savetxt(path, np.cumsum(np.random.default_rng(0).normal(size=400)) * 0.01)
    assert main(["train", str(path), "--epochs", "1", "-q", "-o", str(tmp_path / "m.npz")]) == 0
    captured = capsys.readouterr()
    _, rmse, naive = _held_out(captured.out)
    assert rmse > naive
    assert "% higher)" in captured.out
    assert (
        f"warning: the model's held-out error ({rmse:.6g}) is not below persistence's ({naive:.6g})"
        in captured.err
    )
    assert (tmp_path / "m.npz").exists()  # saved all the same, status 0


def test_no_warning_when_the_fit_beats_persistence(tmp_path, series_csv, capsys):
    path, _ = series_csv
    assert (
        main(
            [
                "train",
                str(path),
                "--epochs",
                "100",
                "--window",
                "40",
                "-q",
                "-o",
                str(tmp_path / "m.npz"),
            ]
        )
        == 0
    )
    captured = capsys.readouterr()
    _, rmse, naive = _held_out(captured.out)
    assert rmse < naive
    assert "% lower)" in captured.out
    assert captured.err == ""


# ---------------------------------------------------------------------- --bias


def test_bias_is_on_by_default_and_no_bias_turns_it_off(tmp_path, series_csv, capsys):
    path, _ = series_csv
    args = ["--epochs", "2", "--window", "40", "--hidden-size", "4", "-q"]
    assert main(["train", str(path), *args, "-o", str(tmp_path / "a.npz")]) == 0
    assert main(["train", str(path), *args, "--no-bias", "-o", str(tmp_path / "b.npz")]) == 0
    assert main(["train", str(path), *args, "--bias", "-o", str(tmp_path / "c.npz")]) == 0
    out = capsys.readouterr().out
    assert out.count("bias=True") == 2
    a, b, c = (crnn.load(tmp_path / f"{x}.npz") for x in "abc")
    assert a.bias
    assert c.bias
    assert not b.bias
    assert b.b is None
    np.testing.assert_array_equal(a.W, c.W)  # --bias is the default
