"""Analysis: what the score tables say, from plain tables and arrays (no profile, no runs).

Each module's job is listed once, in ``ARCHITECTURE.md`` at the repository root (*Analysis*).
"""
