"""Pages: what a chapter page shows (charts, tables, finding cards, shared sections).

Each module's job is listed once, in ``ARCHITECTURE.md`` at the repository root (*Pages*).
"""
