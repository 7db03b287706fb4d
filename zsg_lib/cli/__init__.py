"""The ``zsg`` commands: the book, batches and sweeps of chapters, the plan.

Each module's job is listed once, in ``ARCHITECTURE.md`` at the repository root (*Commands*).
"""
