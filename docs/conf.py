"""Sphinx configuration of the cplmixvi documentation (myst-nb, sphinx-book-theme)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "src"))

import cplmixvi  # noqa: E402

project = "cplmixvi"
author = "the cplmixvi developers"
copyright = "2026, the cplmixvi developers"  # noqa: A001
release = cplmixvi.__version__
version = release

extensions = [
    "myst_nb",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
]
templates_path = ["_templates"]
exclude_patterns = ["_build", "**.ipynb_checkpoints", "Thumbs.db", ".DS_Store"]

# ----- API reference: numpy docstrings, one page per public name --------------------------------
autosummary_generate = True
autosummary_imported_members = False
autosummary_ignore_module_all = False  # a module's public names are its __all__
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_typehints_description_target = "documented"
autodoc_default_options = {"show-inheritance": False}
napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_rtype = False
napoleon_use_param = True

# ----- notebooks: rendered with their committed outputs, never executed here --------------------
nb_execution_mode = "off"
nb_merge_streams = True
myst_enable_extensions = ["colon_fence", "dollarmath"]
myst_heading_anchors = 3
suppress_warnings = ["mystnb.unknown_mime_type"]

# ----- HTML ---------------------------------------------------------------------------------
html_theme = "sphinx_book_theme"
html_title = f"cplmixvi {release}"
html_static_path = ["_static"]
html_css_files = ["custom.css"]
html_theme_options = {
    "show_toc_level": 2,
    "navigation_with_keys": False,
    "use_download_button": True,
}

# ----- the tutorials live in ../tutorials; copy them next to the pages -------------------------
TUTORIALS = ("quickstart", "yao2021_mop", "tasic2018")
_target = HERE / "tutorials"
_target.mkdir(exist_ok=True)
for _name in TUTORIALS:
    shutil.copy2(ROOT / "tutorials" / f"{_name}.ipynb", _target / f"{_name}.ipynb")


def _check_api_lists_every_module() -> None:
    """Fail the build when a public subpackage of cplmixvi is missing from api.md."""
    api = (HERE / "api.md").read_text()
    for name in cplmixvi.__all__:
        obj = getattr(cplmixvi, name)
        if getattr(obj, "__name__", "").startswith("cplmixvi.") and f"cplmixvi.{name}" not in api:
            raise RuntimeError(f"docs/api.md does not list the public module cplmixvi.{name}.")


_check_api_lists_every_module()


def _skip_upstream_members(app, what, name, obj, skip, options):
    """Document a class's members defined in cplmixvi (its mixins too), not those it inherits
    from scvi-tools, Lightning or torch."""
    function = getattr(obj, "fget", obj)  # properties
    module = getattr(function, "__module__", None)
    if what == "class" and module is not None and not module.startswith("cplmixvi"):
        return True
    return None


def setup(app):
    app.connect("autodoc-skip-member", _skip_upstream_members)
