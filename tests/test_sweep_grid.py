"""Sweep grids: expansion into run configs, reading files and flags, bands over seeds."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from lrviz.params import ParamError
from lrviz.sweep import expand_grid, grid_from_flags, group_key, load_grid, seed_bands, sweep_summary

GRID = {"schedules": {"step": {"drop_rate": [0.5, 0.8]}, "exponential": {"k": [0.05, 0.1]}},
        "seeds": [0, 1], "run": {"epochs": 3, "train_size": 1000}}
REPO = Path(__file__).resolve().parent.parent


class TestExpand:
    def test_every_combination_seeds_innermost(self):
        sweep = expand_grid(GRID)
        assert len(sweep) == 8
        got = [(c.schedule, c.schedule_params.get("drop_rate", c.schedule_params.get("k")), c.seed)
               for c in sweep.configs]
        assert got == [("step", 0.5, 0), ("step", 0.5, 1), ("step", 0.8, 0), ("step", 0.8, 1),
                       ("exponential", 0.05, 0), ("exponential", 0.05, 1),
                       ("exponential", 0.1, 0), ("exponential", 0.1, 1)]
        assert all(c.epochs == 3 and c.train_size == 1000 for c in sweep.configs)
        assert len({c.config_hash() for c in sweep.configs}) == 8

    def test_seeds_of_one_configuration_share_a_group_key(self):
        sweep = expand_grid(GRID)
        keys = sweep.group_keys
        assert keys[0] == keys[1] and keys[2] == keys[3] and keys[0] != keys[2]
        assert len(set(keys)) == 4
        assert "drop_rate=0.5" in keys[0]
        assert sweep.group_id.startswith("g")

    def test_single_values_are_fixed_and_defaults_fill_in(self):
        sweep = expand_grid({"schedules": {"step": {"drop_rate": 0.7, "epochs_drop": [1, 2]}}})
        assert [c.schedule_params["epochs_drop"] for c in sweep.configs] == [1, 2]
        assert all(c.schedule_params["drop_rate"] == 0.7 and c.schedule_params["initial_lr"] == 0.5
                   for c in sweep.configs)
        assert [c.seed for c in sweep.configs] == [0, 0]

    def test_list_valued_parameter_is_fixed_unless_list_of_lists(self):
        fixed = expand_grid({"schedules": {"multistep": {"milestones": [2, 4]}}, "run": {"epochs": 6}})
        assert len(fixed) == 1 and tuple(fixed.configs[0].schedule_params["milestones"]) == (2, 4)
        swept = expand_grid({"schedules": {"multistep": {"milestones": [[2, 4], [3]]}}, "run": {"epochs": 6}})
        assert [tuple(c.schedule_params["milestones"]) for c in swept.configs] == [(2, 4), (3,)]

    def test_list_form_sweeps_one_schedule_twice_and_optimizer_params(self):
        sweep = expand_grid({"schedules": [{"name": "constant", "params": {"lr": 0.1}}, "cosine"],
                             "optimizer": "sgd", "optimizer_params": {"momentum": [0.0, 0.9]}})
        assert [(c.schedule, c.optimizer_params["momentum"]) for c in sweep.configs] == [
            ("constant", 0.0), ("constant", 0.9), ("cosine", 0.0), ("cosine", 0.9)]

    @pytest.mark.parametrize("grid, field, text", [
        ({"schedules": {"nope": {}}}, "schedule", "nope"),
        ({"schedules": {"step": {"drop_rate": [0.5, 1.5]}}}, "drop_rate", "drop_rate=1.5"),
        ({"schedules": {"step": {}}, "seeds": [0, 0]}, "seeds", "must not repeat"),
        ({"schedules": {"step": {}}, "seeds": [-1]}, "seeds", "seeds=[-1]"),
        ({"schedules": {"step": {}}, "run": {"seed": 3}}, "run", "run.seed=3"),
        ({"schedules": {"step": {}}, "colour": 1}, "grid", "colour"),
        ({"schedules": {}}, "schedules", "at least one"),
        ({"schedules": {"step": {"drop_rate": []}}}, "drop_rate", "no values"),
        ({"schedules": {"step": {}}, "run": {"epochs": 0}}, "epochs", "epochs=0"),
    ])
    def test_bad_grid_names_the_field(self, grid, field, text):
        with pytest.raises(ParamError) as err:
            expand_grid(grid)
        assert err.value.field == field
        assert text in str(err.value) and "Received:" in str(err.value)

    def test_too_many_runs_refused_before_building_them(self):
        with pytest.raises(ParamError, match="expands to 20,000 runs"):
            expand_grid({"schedules": {"constant": {"lr": list(np.linspace(0.01, 1, 100))}},
                         "seeds": list(range(200))})


class TestReading:
    def test_json_and_yaml_give_the_same_sweep(self, tmp_path):
        import yaml

        (tmp_path / "g.json").write_text(json.dumps(GRID))
        (tmp_path / "g.yaml").write_text(yaml.safe_dump(GRID, sort_keys=False))
        a = expand_grid(load_grid(tmp_path / "g.json"))
        b = expand_grid(load_grid(tmp_path / "g.yaml"))
        assert [c.config_hash() for c in a.configs] == [c.config_hash() for c in b.configs]

    def test_unreadable_or_invalid_file(self, tmp_path):
        with pytest.raises(ParamError, match="readable file"):
            load_grid(tmp_path / "missing.json")
        (tmp_path / "bad.json").write_text("{not json")
        with pytest.raises(ParamError, match="valid JSON"):
            load_grid(tmp_path / "bad.json")
        (tmp_path / "list.yml").write_text("- 1\n- 2\n")
        with pytest.raises(ParamError, match="mapping"):
            load_grid(tmp_path / "list.yml")

    def test_flags_build_the_same_grid(self):
        grid = grid_from_flags(["step", "exponential"], ["step.drop_rate=[0.5,0.8]", "k=[0.05,0.1]"],
                               seeds=[0, 1], run={"epochs": 3, "train_size": 1000})
        flags = expand_grid(grid)
        file = expand_grid(GRID)
        assert [c.config_hash() for c in flags.configs] == [c.config_hash() for c in file.configs]

    def test_flags_refuse_unknown_targets(self):
        with pytest.raises(ParamError, match="not in the sweep"):
            grid_from_flags(["step"], ["cosine.min_lr=0.1"])
        with pytest.raises(ParamError, match="no chosen schedule has"):
            grid_from_flags(["step"], ["k=0.1"])
        with pytest.raises(ParamError, match="KEY=VALUE"):
            grid_from_flags(["step"], ["drop_rate"])


def _runs_and_history():
    sweep = expand_grid({"schedules": {"step": {"drop_rate": [0.5, 0.8]}}, "seeds": [0, 1, 2],
                         "run": {"epochs": 3}})
    runs = [SimpleNamespace(id=f"r{i}", config=c.to_dict()) for i, c in enumerate(sweep.configs)]
    rng = np.random.default_rng(0)
    rows = []
    for run in runs:
        for epoch in (1, 2, 3):
            rows.append({"run_id": run.id, "epoch": epoch, "val_accuracy": rng.uniform(0.5, 0.9),
                         "val_loss": rng.uniform(0.2, 1.0)})
    return runs, pd.DataFrame(rows)


class TestBands:
    def test_mean_std_n_per_group_and_epoch(self):
        runs, history = _runs_and_history()
        bands = seed_bands(history, runs)
        assert list(bands.columns) == ["group_key", "epoch", "mean", "std", "n"]
        assert len(bands) == 2 * 3
        key = group_key(runs[0].config)
        row = bands[(bands["group_key"] == key) & (bands["epoch"] == 2)].iloc[0]
        values = history[(history["run_id"].isin(["r0", "r1", "r2"])) & (history["epoch"] == 2)]["val_accuracy"]
        assert row["n"] == 3
        assert math.isclose(row["mean"], values.mean())
        assert math.isclose(row["std"], float(np.std(values, ddof=1)))

    def test_non_finite_values_are_left_out_and_counted(self):
        runs, history = _runs_and_history()
        history.loc[(history["run_id"] == "r0") & (history["epoch"] == 3), "val_accuracy"] = np.inf
        bands = seed_bands(history, runs)
        row = bands[(bands["group_key"] == group_key(runs[0].config)) & (bands["epoch"] == 3)].iloc[0]
        assert row["n"] == 2 and np.isfinite(row["mean"])

    def test_one_seed_has_no_std_and_empty_input(self):
        runs, history = _runs_and_history()
        bands = seed_bands(history[history["run_id"] == "r0"], runs[:1])
        assert bands["n"].tolist() == [1, 1, 1] and bands["std"].isna().all()
        empty = seed_bands(history.iloc[0:0], runs)
        assert empty.empty and list(empty.columns) == ["group_key", "epoch", "mean", "std", "n"]

    def test_summary_best_first(self):
        runs, history = _runs_and_history()
        table = sweep_summary(history, runs)
        assert len(table) == 2 and table["runs"].tolist() == [3, 3]
        assert table["final_val_accuracy_mean"].iloc[0] >= table["final_val_accuracy_mean"].iloc[1]
        loss = sweep_summary(history, runs, metric="val_loss")
        assert loss["final_val_loss_mean"].iloc[0] <= loss["final_val_loss_mean"].iloc[1]

    def test_band_figure_has_a_band_and_a_line_per_group(self):
        from lrviz.charts_sweep import band_figure

        runs, history = _runs_and_history()
        bands = seed_bands(history, runs)
        fig = band_figure(bands, "val_accuracy")
        fills = [t for t in fig.data if t.fill == "toself"]
        lines = [t for t in fig.data if t.fill != "toself"]
        assert len(fills) == 2 and len(lines) == 2
        part = bands[bands["group_key"] == lines[0].meta].sort_values("epoch")
        np.testing.assert_allclose(lines[0].y, part["mean"])
        np.testing.assert_allclose(fills[0].y[:3], part["mean"] + part["std"])
        assert fills[0].legendgroup == lines[0].legendgroup
        with pytest.raises(ParamError, match="sigmas"):
            band_figure(bands, sigmas=-1)


def test_sweep_module_is_pure():
    code = ("import sys, lrviz.sweep, lrviz.charts_sweep\n"
            "bad = [m for m in ('ray', 'tensorflow', 'keras', 'streamlit') if m in sys.modules]\n"
            "print(bad)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


class TestCli:
    @pytest.mark.parametrize("argv, needle", [
        (["sweep", "--grid", "missing.yaml"], "`grid`"),
        (["sweep", "--preset", "article", "--schedule", "step"], "alternatives"),
        (["sweep", "--schedule", "step", "--set", "step.drop_rate=[0.5,2]"], "drop_rate=2"),
        (["sweep", "--schedule", "step", "--seeds", "0,x"], "`--seeds`"),
        (["sweep", "--schedule", "step", "--engine", "ray"], "LRVIZ_RAY_ADDRESS"),
        (["sweep", "--schedule", "step", "--no-wait"], "`--no-wait`"),
        (["sweep", "--schedule", "step", "--engine", "warp"], "`--engine`"),
    ])
    def test_bad_input_is_one_line_exit_2(self, argv, needle, capsys, monkeypatch):
        from lrviz.cli import main

        monkeypatch.delenv("LRVIZ_RAY_ADDRESS", raising=False)
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert needle in err and err.count("\n") == 1

    @pytest.mark.slow
    def test_grid_file_in_the_foreground_groups_seeds(self, tmp_path, capsys, monkeypatch):
        from lrviz.cli import main
        from lrviz.store import RunStore

        monkeypatch.delenv("LRVIZ_RAY_ADDRESS", raising=False)
        grid = {"schedules": {"step": {"drop_rate": [0.5, 0.8], "epochs_drop": 1}}, "seeds": [0, 1],
                "run": {"epochs": 1, "train_size": 200}}
        path = tmp_path / "grid.json"
        path.write_text(json.dumps(grid))
        assert main(["sweep", "--grid", str(path), "--format", "json"]) == 0
        out = json.loads(capsys.readouterr().out)
        assert out["engine"] == "batched" and len(out["runs"]) == 4
        assert all(r["status"] == "finished" for r in out["runs"])
        store = RunStore()
        assert {store.get(r["run_id"]).group_id for r in out["runs"]} == {out["group_id"]}
        confs = out["configurations"]
        assert len(confs) == 2 and [c["runs"] for c in confs] == [2, 2]
        accs = {store.get(r["run_id"]).config["schedule_params"]["drop_rate"]: [] for r in out["runs"]}
        for r in out["runs"]:
            accs[store.get(r["run_id"]).config["schedule_params"]["drop_rate"]].append(r["val_accuracy"])
        means = sorted(float(np.mean(v)) for v in accs.values())
        assert sorted(c["final_val_accuracy_mean"] for c in confs) == pytest.approx(means)
