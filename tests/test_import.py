"""``import crnn`` stays light: what it leaves unimported, and the lazy attributes.

Each check runs in a fresh interpreter, since this one has imported everything
already. No timing here (timed tests are flaky): the import time itself is
measured by ``benchmarks/run.py``.
"""

import subprocess
import sys

import pytest

import crnn

#: Standard-library modules crnn imports only where it saves or loads a model.
IO_STDLIB = ("zipfile", "hashlib", "json", "secrets", "zlib")

#: crnn's modules that ``import crnn`` does not import until they are used.
LAZY_SUBMODULES = (
    "crnn._io",
    "crnn.datasets",
    "crnn.reference",
    "crnn._fit",
    "crnn.distributed",
    "crnn.sklearn",
)

#: Optional packages crnn works with, which ``import crnn`` never imports
#: (these tests can fail only where they are installed, as in CI).
OPTIONAL = ("sklearn", "pandas")


def run(code, cwd):
    """Run code in a fresh interpreter; return its stdout (failing on an error)."""
    out = subprocess.run(
        [sys.executable, "-c", code],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,  # a fresh directory: nothing in it shadows a module
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


def newly_imported(statement, cwd, *, after="import numpy"):
    """Return the modules that statement imports once `after` has run.

    The modules of IO_STDLIB (and their submodules) are then dropped from
    sys.modules, so that an import of them is seen even where the
    environment has imported them already (a .pth file of an editable
    install or of a virtual environment tool can import zipfile, say).
    """
    code = (
        f"import sys\n{after}\n"
        f"for name in [k for k in sys.modules if k.partition('.')[0] in {IO_STDLIB!r}]:\n"
        "    del sys.modules[name]\n"
        f"before = set(sys.modules)\n{statement}\n"
        "print(*sorted(set(sys.modules) - before))\n"
    )
    return set(run(code, cwd).split())


# ---------------------------------------------------------------------- what is not imported


@pytest.mark.parametrize("preloaded", ["", ", zipfile, hashlib, json"])
def test_the_probe_sees_imports(tmp_path, preloaded):
    # the checks below would pass vacuously if newly_imported saw nothing, or
    # missed what the environment imported before (preloaded: as a .pth file can)
    new = newly_imported("import crnn, zipfile", tmp_path, after=f"import numpy{preloaded}")
    assert {"crnn", "crnn._rnn", "crnn._core", "zipfile"} <= new


@pytest.mark.parametrize("module", IO_STDLIB + LAZY_SUBMODULES + OPTIONAL)
def test_import_crnn_does_not_import(tmp_path, module):
    # numpy is imported first, so that only what crnn itself adds counts
    assert module not in newly_imported("import crnn", tmp_path)


@pytest.mark.parametrize("module", OPTIONAL)
def test_crnn_and_every_public_name_but_crnn_sklearn_do_not_import(tmp_path, module):
    statement = "from crnn import *; crnn.datasets.windows; crnn.RNN(1, 2).fit([[1.0]], [[1.0]])"
    assert module not in newly_imported(statement, tmp_path, after="import numpy, crnn")


def test_crnn_sklearn_imports_scikit_learn_on_first_use(tmp_path):
    pytest.importorskip("sklearn")
    new = newly_imported("crnn.sklearn.RNNRegressor", tmp_path, after="import crnn")
    assert {"crnn.sklearn", "sklearn", "sklearn.base"} <= new


def test_crnn_sklearn_without_scikit_learn_says_what_to_install(tmp_path):
    code = (
        "import sys\nsys.modules['sklearn'] = None  # as if it were not installed\n"
        "import crnn\n"
        "try:\n    crnn.sklearn\nexcept ImportError as exc:\n    print(exc)\n"
    )
    assert "crnn.sklearn needs scikit-learn >= 1.6: pip install 'crnn[sklearn]'" in run(
        code, tmp_path
    )


@pytest.mark.parametrize("module", IO_STDLIB)
def test_import_crnn_io_does_not_import(tmp_path, module):
    assert module not in newly_imported("import crnn._io", tmp_path, after="import crnn")


# ---------------------------------------------------------------------- the lazy attributes


@pytest.mark.parametrize(
    ("statement", "module"),
    [
        ("crnn.datasets.sine_waves", "crnn.datasets"),
        ("from crnn import datasets", "crnn.datasets"),
        ("crnn.reference.forward", "crnn.reference"),
        ("from crnn import reference", "crnn.reference"),
        ("crnn.save", "crnn._io"),
        ("from crnn import load", "crnn._io"),
        ("from crnn import *", "crnn.datasets"),
    ],
)
def test_a_lazy_attribute_imports_its_module_on_first_use(tmp_path, statement, module):
    assert module in newly_imported(statement, tmp_path, after="import crnn")


def test_lazy_attributes_are_the_real_objects(tmp_path):
    code = (
        "import sys, crnn\n"
        "names = ('datasets', 'reference', 'save', 'load')\n"
        "objs = [getattr(crnn, k) for k in names]\n"
        "from crnn import _saving, datasets, reference\n"
        "print(*(a is b for a, b in zip(objs, (datasets, reference, _saving.save, _saving.load))))\n"
        "print(datasets is sys.modules['crnn.datasets'], callable(datasets.sine_waves))\n"
        "print(reference is sys.modules['crnn.reference'])\n"
    )
    assert run(code, tmp_path).split() == ["True"] * 7


def test_save_and_load_round_trip_in_a_fresh_interpreter(tmp_path):
    code = (
        "import numpy as np, crnn\n"
        "rnn = crnn.RNN(2, 5, 3, seed=0)\n"
        "crnn.save(rnn, 'a.npz')\n"
        "rnn.save('b.npz')\n"
        "a, b = crnn.load('a.npz'), crnn.RNN.load('b.npz')\n"
        "print(*(np.array_equal(getattr(m, k), getattr(rnn, k)) for m in (a, b) for k in 'UWV'))\n"
        "print(open('a.npz', 'rb').read() == open('b.npz', 'rb').read())\n"
    )
    assert run(code, tmp_path).split() == ["True"] * 7


def test_the_method_save_works_without_touching_crnn_save(tmp_path):
    code = (
        "import crnn\ncrnn.RNN(1, 3, seed=0).save('m.npz')\nprint(crnn.RNN.load('m.npz').W.shape)\n"
    )
    assert run(code, tmp_path).strip() == "(3, 3)"


def test_dir_lists_the_public_names_before_their_first_use(tmp_path):
    code = "import crnn\nprint(*dir(crnn))\nprint(*crnn.__all__)\n"
    listed, public = (set(line.split()) for line in run(code, tmp_path).splitlines())
    assert public == {"RNN", "Gradient", "SequenceGradients", "OnlineRTRL", "__version__"} | {
        "datasets",
        "dynamics",
        "online",
        "reference",
        "load",
        "save",
    }
    assert public <= listed


def test_an_unknown_attribute_is_an_attribute_error():
    with pytest.raises(AttributeError, match="module 'crnn' has no attribute 'nonesuch'"):
        crnn.nonesuch  # noqa: B018
    with pytest.raises(ImportError, match="cannot import name 'nonesuch'"):
        from crnn import nonesuch  # noqa: F401


def test_the_eager_names_are_plain_attributes():
    from crnn import _online, _rnn

    assert (crnn.RNN, crnn.Gradient, crnn.SequenceGradients, crnn.OnlineRTRL) == (
        _rnn.RNN,
        _rnn.Gradient,
        _rnn.SequenceGradients,
        _online.OnlineRTRL,
    )
    assert isinstance(crnn.__version__, str)
