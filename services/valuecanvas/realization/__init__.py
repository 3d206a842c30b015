"""Realization agent: tracks realized value against targets from KPI measurements.

The package: ``settings.py`` (its settings class), ``app.py`` (its wiring: what
``valuecanvas serve realization`` builds); its own endpoints arrive as ``api/<resource>.py``,
with ``repository.py`` (all SQL), ``schemas.py`` and ``domain/``.
"""
