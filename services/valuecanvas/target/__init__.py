"""Target agent: turns opportunities into a business case: KPI targets, ROI, NPV and payback.

The package: ``settings.py`` (its settings class), ``app.py`` (its wiring: what
``valuecanvas serve target`` builds); its own endpoints arrive as ``api/<resource>.py``,
with ``repository.py`` (all SQL), ``schemas.py`` and ``domain/``.
"""
