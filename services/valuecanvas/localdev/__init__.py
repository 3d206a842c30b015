"""Running the platform's dependencies on one machine: embedded Postgres, Redis."""
