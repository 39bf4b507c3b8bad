"""Shared fixtures: every test gets its own cache folder, never the user's."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(autouse=True)
def tmp_cache(tmp_path, monkeypatch):
    """Point LRVIZ_CACHE_DIR at a fresh folder for each test and return it."""
    cache = tmp_path / "cache"
    cache.mkdir()
    monkeypatch.setenv("LRVIZ_CACHE_DIR", str(cache))
    return cache


def pytest_configure(config):
    # TensorFlow's start-up chatter hides real failures in the log.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
