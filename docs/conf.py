"""Sphinx configuration of the kinesis-actors documentation (``make docs``)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS / "_ext"))
sys.path.insert(0, str(DOCS.parent))

from kinesis_actors import __version__  # noqa: E402

project = "kinesis-actors"
author = "kinesis-actors maintainers"
copyright = "2026, kinesis-actors maintainers"
version = release = __version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.intersphinx",
    "sphinx.ext.viewcode",
    "kinesis_docs",
]
exclude_patterns = ["_build"]
html_static_path = ["_static"]
html_theme = "alabaster"
html_theme_options = {"description": "Kinesis with Pykka actors: a native KPL and KCL"}

autodoc_default_options = {"members": True, "show-inheritance": True}
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_typehints_format = "short"
napoleon_google_docstring = True
napoleon_numpy_docstring = False
nitpicky = False

# Cross-references to Python, boto3 and Pykka. Their inventories are fetched over the network,
# which a build without one cannot do: set KINESIS_ACTORS_DOCS_ONLINE=1 to link them.
intersphinx_mapping = (
    {
        "python": ("https://docs.python.org/3", None),
        "boto3": ("https://boto3.amazonaws.com/v1/documentation/api/latest", None),
        "pykka": ("https://pykka.readthedocs.io/en/stable", None),
    }
    if os.environ.get("KINESIS_ACTORS_DOCS_ONLINE") == "1"
    else {}
)
