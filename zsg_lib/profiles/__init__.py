"""Profiles: a study's settings (``params/*.yaml``), its sweeps, and what each chapter compares.

Each module's job is listed once, in ``ARCHITECTURE.md`` at the repository root (*Profiles*).
"""
