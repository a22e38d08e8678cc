"""Hermetic tests: a private descriptor cache, Agg plots, small frames made once per session."""

from __future__ import annotations

import os

import matplotlib
import pytest

matplotlib.use("Agg")


@pytest.fixture(scope="session", autouse=True)
def _private_cache(tmp_path_factory):
    os.environ["AETK_CACHE"] = str(tmp_path_factory.mktemp("aetk-cache"))
    yield


@pytest.fixture(scope="session")
def arkr_lj_frames():
    from toolkit.reference.classical import ClassicalRun, generate_frames

    run = ClassicalRun("ArKr", "lj", n_frames=6, seed=7, melt_steps=500,
                       equilibration_steps=1000)
    return generate_frames(run, progress=False)


@pytest.fixture(scope="session")
def arkr_atm_frames():
    from toolkit.reference.classical import ClassicalRun, generate_frames

    run = ClassicalRun("ArKr", "lj+atm", n_frames=3, seed=7, melt_steps=300,
                       equilibration_steps=300)
    return generate_frames(run, progress=False)
