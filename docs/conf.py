"""Sphinx configuration of the documentation site.

Build it from the repository root (after ``pip install -e ".[docs]"``)::

    sphinx-build -W --keep-going -b html docs site    # then open site/index.html

The pages are Markdown (MyST); the API reference (``docs/api/*.rst``) is rendered by autodoc
and numpydoc from the docstrings, whose maths (``:math:``, ``.. math::``) and cross-references
(``:func:``, ``:class:``) are reStructuredText.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.abspath(".."))  # document this checkout, not an installed copy

import lifted_idl  # noqa: E402

project = "lifted_idl"
author = "lifted_idl developers"
version = release = lifted_idl.__version__
copyright = "lifted_idl developers"  # noqa: A001 - Sphinx's name for it

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "numpydoc",
    "myst_parser",
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build"]

# Markdown pages: $...$ / $$...$$ maths, \tag{n} numbering, slug anchors for #section links
myst_enable_extensions = ["dollarmath", "amsmath"]
myst_heading_anchors = 3
myst_dmath_double_inline = True

# API reference: every module page lists its public members (those in ``__all__``); the
# metadata-routing setters that scikit-learn generates carry its own cross-references
autodoc_default_options = {
    "members": True,
    "member-order": "bysource",
    "exclude-members": "set_fit_request, set_predict_request, set_score_request, "
                       "set_transform_request, set_partial_fit_request",
}
autodoc_typehints = "none"          # numpydoc's Parameters section gives the types
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_attributes_as_param_list = True

html_theme = "pydata_sphinx_theme"
html_title = f"lifted_idl {release}"
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
}
