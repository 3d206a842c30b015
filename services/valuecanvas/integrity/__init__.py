"""Integrity agent: checks other agents' output: numbers recomputed, claims backed, policies enforced.

The package: ``settings.py`` (its settings class), ``app.py`` (its wiring: what
``valuecanvas serve integrity`` builds); its own endpoints arrive as ``api/<resource>.py``,
with ``repository.py`` (all SQL), ``schemas.py`` and ``domain/``.
"""
