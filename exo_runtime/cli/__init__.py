"""Console scripts of the runtime."""
