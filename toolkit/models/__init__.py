"""Trained models: per-species networks, training on totals, potential directories, walls."""
