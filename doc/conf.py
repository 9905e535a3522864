"""Sphinx configuration for the sahara-es documentation (``sphinx-build doc doc/_build``)."""

project = "sahara-es"
copyright = "sahara-es contributors"
extensions: list[str] = []
master_doc = "index"
exclude_patterns = ["_build"]
html_theme = "alabaster"
