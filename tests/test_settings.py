"""Settings from the environment: defaults, and a bad value named with what was received."""

from __future__ import annotations

import pytest

from lrviz import settings


@pytest.mark.parametrize("func, var, default", [
    (settings.max_concurrent_runs, "LRVIZ_MAX_CONCURRENT", 1),
    (settings.worker_idle_seconds, "LRVIZ_WORKER_IDLE_SECONDS", 30.0),
    (settings.ray_cpus_per_run, "LRVIZ_RAY_CPUS_PER_RUN", 1.0),
    (settings.ray_retries, "LRVIZ_RAY_RETRIES", 0),
])
def test_defaults(monkeypatch, func, var, default):
    monkeypatch.delenv(var, raising=False)
    assert func() == default


@pytest.mark.parametrize("func, var, bad, good, expected", [
    (settings.max_concurrent_runs, "LRVIZ_MAX_CONCURRENT", "0", "3", 3),
    (settings.max_concurrent_runs, "LRVIZ_MAX_CONCURRENT", "two", "2", 2),
    (settings.worker_idle_seconds, "LRVIZ_WORKER_IDLE_SECONDS", "-1", "0", 0.0),
    (settings.worker_idle_seconds, "LRVIZ_WORKER_IDLE_SECONDS", "nan", "2.5", 2.5),
    (settings.ray_cpus_per_run, "LRVIZ_RAY_CPUS_PER_RUN", "0", "0.5", 0.5),
    (settings.ray_retries, "LRVIZ_RAY_RETRIES", "-1", "2", 2),
    (settings.ray_retries, "LRVIZ_RAY_RETRIES", "1.5", "1", 1),
])
def test_bad_values_name_the_variable_and_the_value(monkeypatch, func, var, bad, good, expected):
    monkeypatch.setenv(var, bad)
    with pytest.raises(ValueError, match=rf"^{var} must be .* Received: '{bad}'$"):
        func()
    monkeypatch.setenv(var, good)
    assert func() == expected


def test_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("LRVIZ_CACHE_DIR", str(tmp_path / "elsewhere"))
    assert settings.db_path() == tmp_path / "elsewhere" / "lrviz.db"
    assert (tmp_path / "elsewhere").is_dir()
