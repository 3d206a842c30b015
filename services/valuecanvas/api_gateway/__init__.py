"""API gateway: the only public entry: JWT / API-key auth, routing, rate limits, CORS and validation.

The package: ``settings.py`` (its settings class), ``app.py`` (its wiring: what
``valuecanvas serve api-gateway`` builds); its own endpoints arrive as ``api/<resource>.py``,
with ``repository.py`` (all SQL), ``schemas.py`` and ``domain/``.
"""
