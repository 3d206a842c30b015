"""The core every service is built on: settings, logging, metrics, identity, database, app factory."""
