"""Expansion agent: finds upsell and cross-sell opportunities from realization data.

The package: ``settings.py`` (its settings class), ``app.py`` (its wiring: what
``valuecanvas serve expansion`` builds); its own endpoints arrive as ``api/<resource>.py``,
with ``repository.py`` (all SQL), ``schemas.py`` and ``domain/``.
"""
