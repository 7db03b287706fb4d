"""The study: a profile driven through data, arrangements, runs and analysis, and its cost.

Each module's job is listed once, in ``ARCHITECTURE.md`` at the repository root (*Study*).
"""
