"""Console scripts: thin ``@hydra.main`` wrappers around plain functions that tests call directly."""
