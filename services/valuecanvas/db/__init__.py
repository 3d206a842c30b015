"""Platform database commands: the migration runner, the doctor and the type generator."""
