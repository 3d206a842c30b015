"""Orchestrator: runs workflow definitions (DAGs of agent steps) durably.

The package: ``settings.py`` (its settings class), ``app.py`` (its wiring: what
``valuecanvas serve orchestrator`` builds); its own endpoints arrive as ``api/<resource>.py``,
with ``repository.py`` (all SQL), ``schemas.py`` and ``domain/``.
"""
