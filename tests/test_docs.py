"""The documentation site: its tutorial prints what the page shows, the site builds.

The tutorial's Python blocks run in order in one namespace, in a temporary
directory, and each ```text block after one is compared with what that block
printed: exactly, but the training time, whose numbers vary. The site is built
with warnings as errors and its internal links are checked, when Sphinx is
installed (``pip install --group docs``; CI's documentation step has it).
"""

import importlib.util
import pathlib
import re
import subprocess
import sys

import pytest
from threadpoolctl import threadpool_limits

ROOT = pathlib.Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
BLOCK = re.compile(r"^```(\w*)\n(.*?)^```$", re.DOTALL | re.MULTILINE)

_spec = importlib.util.spec_from_file_location(
    "check_doc_links", ROOT / "tools" / "check_doc_links.py"
)
check_doc_links = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(check_doc_links)


def _tutorial():
    """[(code, the text shown after it or None)] of the tutorial's Python blocks."""
    text = (DOCS / "tutorial.md").read_text(encoding="utf-8")
    blocks = [(m[1], m[2]) for m in BLOCK.finditer(text)]
    return [
        (code, blocks[i + 1][1] if i + 1 < len(blocks) and blocks[i + 1][0] == "text" else None)
        for i, (lang, code) in enumerate(blocks)
        if lang == "python"
    ]


def _skeleton(text):
    return re.sub(r"\d+(\.\d+)?", "#", text)


def test_tutorial_prints_what_the_page_shows(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    has_matplotlib = importlib.util.find_spec("matplotlib") is not None
    blocks = _tutorial()
    assert len(blocks) >= 6
    namespace = {"__name__": "__main__"}
    for code, shown in blocks:
        if "matplotlib" in code and not has_matplotlib:
            continue  # the figure's block: the plot extra
        # one thread: the same bits, and on a busy machine far faster than two
        # threads that wait on each other at every mini-batch (see the page)
        with threadpool_limits(1, "openmp"):
            exec(compile(code, str(DOCS / "tutorial.md"), "exec"), namespace)  # noqa: S102
        printed = capsys.readouterr().out
        if shown is None:
            assert printed == ""
            continue
        for got, want in zip(printed.splitlines(), shown.splitlines(), strict=True):
            if " epochs in " in want:  # a time
                assert _skeleton(got) == _skeleton(want)
            else:
                assert got == want
    assert (tmp_path / "mackey-glass.npz").is_file()
    if has_matplotlib:
        assert (tmp_path / "tutorial.png").is_file()


def _site(root, pages):
    for name, body in pages.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(f"<html><body>{body}</body></html>", encoding="utf-8")


def test_link_checker_accepts_the_links_that_exist(tmp_path):
    _site(
        tmp_path,
        {
            "index.html": '<a href="a.html">a</a> <a href="a.html#x">x</a> <a href="#top">top</a>'
            '<p id="top"></p><a href="https://example.org/missing.html">out</a>'
            '<a href="sub/">dir</a><img src="_images/p.png">',
            "a.html": '<h2 id="x">x</h2><a href="index.html">back</a>',
            "sub/index.html": '<a href="../a.html#x">up</a>',
        },
    )
    (tmp_path / "_images").mkdir()
    (tmp_path / "_images" / "p.png").write_bytes(b"")
    assert check_doc_links.check(tmp_path) == []


def test_link_checker_finds_missing_pages_images_and_anchors(tmp_path):
    _site(
        tmp_path,
        {
            "index.html": '<a href="b.html">b</a> <a href="a.html#y">y</a> <a href="#nope">n</a>'
            '<img src="_images/none.png">',
            "a.html": '<h2 id="x">x</h2>',
        },
    )
    broken = check_doc_links.check(tmp_path)
    assert broken == [
        "index.html: b.html: no such file",
        "index.html: a.html#y: no anchor 'y' in that page",
        "index.html: #nope: no anchor 'nope' in that page",
        "index.html: _images/none.png: no such file",
    ]


def test_site_builds_with_warnings_as_errors_and_its_links_resolve(tmp_path):
    pytest.importorskip("sphinx", reason="Sphinx is not installed (pip install --group docs)")
    out = tmp_path / "html"
    build = subprocess.run(
        [
            sys.executable,
            "-m",
            "sphinx",
            "-W",
            "--keep-going",
            "-q",
            "-b",
            "html",
            str(DOCS),
            str(out),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert build.returncode == 0, build.stderr
    assert check_doc_links.check(out) == []
    api = (out / "api.html").read_text(encoding="utf-8")
    for name in (
        "crnn.RNN.fit",
        "crnn.Gradient",
        "crnn.OnlineRTRL",
        "crnn.save",
        "crnn.load",
        "crnn.datasets.mackey_glass",
        "crnn.distributed.fit",
        "crnn.reference.gradient_rtrl",
        "crnn.sklearn.RNNRegressor",
    ):
        assert f'id="{name}"' in api, name
