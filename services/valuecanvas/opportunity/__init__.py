"""Opportunity agent: finds value opportunities in an account's discovery notes and profile.

The package: ``settings.py`` (its settings class), ``app.py`` (its wiring: what
``valuecanvas serve opportunity`` builds); its own endpoints arrive as ``api/<resource>.py``,
with ``repository.py`` (all SQL), ``schemas.py`` and ``domain/``.
"""
