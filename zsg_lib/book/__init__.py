"""The book layer: profiles, the glue the chapters call, charts, the site, batches, the CLI.

Each module's job is listed once, in ``ARCHITECTURE.md`` at the repository root (*Book*).
"""
