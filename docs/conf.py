# SPDX-License-Identifier: BSD-3-Clause
"""Sphinx configuration of crnn's documentation site.

Build it with ``pip install --group docs`` (crnn itself installed), then
``sphinx-build -W --keep-going -b html docs docs/_build/html``.
The prose pages are Markdown (MyST); several take their text from the
README or benchmarks/README.md, so that each thing is written in one place.
"""

import importlib.util

import crnn

project = "crnn"
author = "The crnn developers"
copyright = "the crnn developers, BSD-3-Clause"
release = version = crnn.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.mathjax",
    "numpydoc",
    "myst_parser",
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build"]

# Every cross-reference must resolve (CI builds with -W): a :class:, :meth:,
# :func: or :mod: role naming something the site does not document fails.
nitpicky = True
# Names outside crnn that the docstrings mention; no intersphinx (the build
# runs offline), so they stay plain text.
nitpick_ignore_regex = [
    ("py:.*", r"(numpy|np|sklearn|dask|distributed|pandas|concurrent|os)(\..*)?"),
]

# The API reference: signatures without annotations (the numpydoc sections
# give each type in words; the annotations' aliases have no page of their own)
autodoc_typehints = "none"
# crnn.distributed and crnn.sklearn import their extras: without them (the
# docs group alone) autodoc imports them against stand-ins, and
# RNNRegressor's signature reads (*args, **kwargs). CI installs both extras.
autodoc_mock_imports = [
    name for name in ("dask", "distributed", "sklearn") if importlib.util.find_spec(name) is None
]
autodoc_member_order = "bysource"
autodoc_default_options = {
    "members": True,
    # scikit-learn's metadata-routing methods, which RNNRegressor inherits
    "exclude-members": "set_fit_request, set_partial_fit_request, set_score_request",
}
numpydoc_show_class_members = False
numpydoc_xref_param_type = False
numpydoc_validation_checks: set[str] = set()

# Markdown: $...$ and $$...$$ math (MathJax), heading anchors for links
# between pages ([text](page.md#a-heading))
myst_enable_extensions = ["dollarmath", "amsmath"]
myst_heading_anchors = 3

html_theme = "alabaster"
html_title = f"crnn {release}"
html_static_path: list[str] = []
html_theme_options = {
    "description": "The Elman network with exact gradients (BPTT and RTRL), in compiled Cython",
    "fixed_sidebar": True,
}
