"""Other tools' files and models in and out: FitSNAP (fitsnap.py; its shims: fitsnap_compat.py)."""
