"""ValueCanvas Platform: the shared service core, the eight service apps and the platform commands."""
