"""The README's Python examples run as written, in order, in one namespace."""

import pathlib
import re

README = pathlib.Path(__file__).resolve().parent.parent / "README.md"


def test_readme_python_blocks_run():
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.DOTALL)
    assert len(blocks) >= 3
    namespace = {}
    for block in blocks:
        exec(compile(block, str(README), "exec"), namespace)  # noqa: S102 - our own README
    assert namespace["G"].U.shape == (16, 3)
    assert namespace["rnn"].n_iter_ >= 1
    assert namespace["Gb"].c.shape == (1,)
    assert namespace["biased"].bias
    assert namespace["online"].n_steps_ == 599
