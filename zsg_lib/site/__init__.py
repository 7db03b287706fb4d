"""The site: the Jupyter Book build of the chapters and the Sphinx extension it loads.

Each module's job is listed once, in ``ARCHITECTURE.md`` at the repository root (*Site*).
"""
