"""Reports built from saved results (PNG plots, HTML pages); they never recompute a model."""
