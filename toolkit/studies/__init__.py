"""Studies over trained models: sweeps, transfer, ceilings, teachers, emergence maps."""
