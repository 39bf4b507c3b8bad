"""Bad input, tried systematically on every parameter, through the library, the CLI and the page.

Every schedule parameter (``catalogue()``), every run setting (``RUN_PARAMS``) and every
optimizer setting (``OPTIMIZERS``) is fed a table of hostile values: negative, zero, NaN,
+-inf, huge (1e308, 10**9, 10**400), the wrong type (a list where a number belongs, a
number where a list belongs), empty text, unicode (fullwidth digits, a vulgar fraction,
an emoji) and 100,000 characters of text. The rules checked:

* a refusal is a ``ParamError`` whose ``field`` and one-line message name the parameter
  ("Argument `x` ... Received: x=..."), never another exception;
* a value that some parameter legitimately accepts (0 for ``min_lr``, ``"０.５"`` read as
  0.5) leads to a finite, non-negative curve, never a crash further on;
* the CLI exits 2 with exactly one line on stderr, prints nothing on stdout and writes
  no run row; the home page shows one message naming the field and keeps drawing the
  other schedules.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from lrviz.cli import main
from lrviz.config import RUN_PARAMS, RunConfig
from lrviz.optimizers import OPTIMIZERS
from lrviz.params import Param, ParamError
from lrviz.schedules import build, catalogue, lr_curve
from lrviz.settings import REPO_ROOT
from lrviz.store import RunStore

APP = str(REPO_ROOT / "app.py")
LONG = "9" * 100_000

# label -> value handed to the library as is (a widget or a JSON document could give it)
BAD: dict[str, Any] = {
    "negative": -1,
    "zero": 0,
    "nan": float("nan"),
    "inf": float("inf"),
    "-inf": float("-inf"),
    "1e308": 1e308,
    "10**9": 10**9,
    "10**400": 10**400,  # beyond float range: once an OverflowError traceback
    "list": [1, 2],
    "dict": {"a": 1},
    "none": None,
    "true": True,
    "empty": "",
    "blank": "   ",
    "fullwidth": "０.５",
    "vulgar": "½",
    "emoji": "🔥",
    "long": LONG,
}
# Refused by every parameter whatever its kind (all limits are >= 0 and <= 1e9). Empty and
# blank text are not here: a list parameter reads them as "no milestones".
UNIVERSAL = ("negative", "nan", "inf", "-inf", "1e308", "10**400", "dict", "none",
             "vulgar", "emoji", "long")

SCHEDULE_PARAMS = [(s.name, p) for s in catalogue().values() for p in s.params]
OPTIMIZER_PARAMS = [(o, p) for o, params in OPTIMIZERS.items() for p in params]


def _ids(pairs):
    return [f"{owner}.{p.name}" for owner, p in pairs]


def _check_refusal(err: ParamError, name: str) -> None:
    """One clear line that names the parameter it refuses."""
    message = str(err)
    assert name in message, message
    assert "\n" not in message and len(message) < 400, message[:500]
    assert message.startswith("Argument `") or "has no parameter" in message, message


def _sane(curve: np.ndarray) -> None:
    assert curve.dtype == np.float64 and len(curve) == 3 * 4
    assert np.isfinite(curve).all() and (curve >= 0).all(), curve


# -- the library -----------------------------------------------------------------------------


@pytest.mark.parametrize("schedule,param", SCHEDULE_PARAMS, ids=_ids(SCHEDULE_PARAMS))
def test_every_schedule_parameter_refuses_bad_values_by_name(schedule: str, param: Param):
    outcomes = {}
    for label, value in BAD.items():
        try:
            sched = build(schedule, {param.name: value})
        except ParamError as err:
            _check_refusal(err, param.name)
            # a cross-parameter rule may name its partner, but only after naming this one
            assert err.field == param.name or param.name in str(err), str(err)
            outcomes[label] = "refused"
            continue
        _sane(lr_curve(sched, 3, 4))  # an accepted value must still give a usable curve
        outcomes[label] = "accepted"
    wrongly_accepted = [label for label in UNIVERSAL if outcomes[label] != "refused"]
    assert not wrongly_accepted, f"{schedule}.{param.name} accepted {wrongly_accepted}"
    if param.kind in ("float", "int", "float_list", "text"):
        assert outcomes["dict"] == outcomes["none"] == "refused"
    if param.kind in ("float", "int"):
        assert outcomes["list"] == outcomes["true"] == outcomes["empty"] == "refused"


@pytest.mark.parametrize("param", RUN_PARAMS, ids=[p.name for p in RUN_PARAMS])
def test_every_run_setting_refuses_bad_values_by_name(param: Param):
    for label, value in BAD.items():
        try:
            config = RunConfig.create("constant", **{param.name: value})
        except ParamError as err:
            _check_refusal(err, param.name)
            assert err.field in (param.name, "epochs"), str(err)  # epochs: the total-steps cap
            continue
        assert label not in UNIVERSAL, f"{param.name} accepted {label}"
        assert config.steps_per_epoch >= 1 and json.dumps(config.to_dict(), allow_nan=False)


@pytest.mark.parametrize("optimizer,param", OPTIMIZER_PARAMS, ids=_ids(OPTIMIZER_PARAMS))
def test_every_optimizer_setting_refuses_bad_values_by_name(optimizer: str, param: Param):
    for label, value in BAD.items():
        try:
            config = RunConfig.create("constant", None, None, optimizer, {param.name: value})
        except ParamError as err:
            _check_refusal(err, param.name)
            assert err.field == param.name
            continue
        assert label not in UNIVERSAL, f"{optimizer}.{param.name} accepted {label}"
        value = config.optimizer_params[param.name]
        assert isinstance(value, bool) or math.isfinite(value)


def _by_what(what: str, value: Any) -> None:
    if what == "schedule":
        build(value)
    elif what == "granularity":
        build("constant", None, value)
    elif what == "optimizer":
        RunConfig.create("constant", optimizer=value)
    else:
        build("constant", {value: 0.1})  # an unknown parameter name


@pytest.mark.parametrize("what", ["schedule", "granularity", "optimizer", "parameter"])
def test_names_and_choices_refuse_bad_values(what: str):
    for label, value in BAD.items():
        if what == "parameter" and not isinstance(value, str):
            continue  # names come from JSON keys, widget keys or KEY=VALUE: always text
        if what == "granularity" and value is None:
            continue  # None means "the schedule's own granularity"
        with pytest.raises(ParamError) as err:
            _by_what(what, value)
        _check_refusal(err.value, what)
        assert label


@pytest.mark.parametrize("which", ["epochs", "steps_per_epoch"])
def test_curve_length_refuses_bad_values_by_name(which: str):
    sched = build("cosine")
    for label, value in BAD.items():
        args = {"epochs": 3, "steps_per_epoch": 4, which: value}
        try:
            curve = lr_curve(sched, args["epochs"], args["steps_per_epoch"])
        except ParamError as err:
            assert which in str(err), str(err)
            assert "\n" not in str(err)
            continue
        assert label in ("fullwidth", "true"), f"{which} accepted {label}"  # 0.5 / 1 are read
        assert np.isfinite(curve).all()


def test_an_accepted_unicode_number_means_what_it_says():
    # Python reads fullwidth digits as digits: "０.５" is 0.5, not a surprise value.
    assert build("constant", {"lr": "０.５"}).params["lr"] == 0.5
    with pytest.raises(ParamError, match=r"Argument `lr` must be a number. Received: lr='½'"):
        build("constant", {"lr": "½"})


# -- the CLI ----------------------------------------------------------------------------------

# What a person can type after --set KEY= (read as JSON where it parses, else as text).
CLI_TEXT = {
    "negative": "-1", "zero": "0", "nan": "nan", "json_nan": "NaN", "inf": "inf",
    "json_inf": "Infinity", "-inf": "-Infinity", "1e308": "1e308", "1e999": "1e999",
    "10**9": "1000000000", "10**400": "1" + "0" * 400, "list": "[1, 2]", "nested": "[" * 5000,
    "dict": '{"a": 1}', "null": "null", "true": "true", "empty": "", "fullwidth": "０.５",
    "vulgar": "½", "emoji": "🔥", "long": LONG,
}
CLI_UNIVERSAL = ("negative", "nan", "json_nan", "inf", "json_inf", "-inf", "1e308", "1e999",
                 "10**400", "nested", "dict", "null", "vulgar", "emoji", "long")


def _cli(capsys, argv: list[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def _check_cli_refusal(code: int, out: str, err: str, name: str) -> None:
    assert code == 2, (code, err[:300])
    assert out == "", out[:200]
    assert err.count("\n") == 1 and err.startswith("error: "), err[:500]
    # argparse refuses "-Infinity" after a flag itself (it looks like an option): it then
    # names the flag (--train-size) rather than the setting (train_size)
    flag = "--" + name.replace("_", "-")
    assert (name in err or flag in err) and len(err) < 500, err[:500]


@pytest.mark.parametrize("schedule,param", SCHEDULE_PARAMS, ids=_ids(SCHEDULE_PARAMS))
def test_cli_curve_refuses_bad_values_with_one_line(capsys, schedule: str, param: Param):
    for label, text in CLI_TEXT.items():
        code, out, err = _cli(capsys, ["curve", schedule, "--set", f"{param.name}={text}",
                                       "--epochs", "3", "--steps-per-epoch", "4"])
        if code == 0:  # accepted: a full, finite CSV and nothing on stderr
            assert label not in CLI_UNIVERSAL, f"{schedule}.{param.name} accepted {label}"
            rows = out.strip().splitlines()
            assert rows[0] == "step,epoch,lr" and len(rows) == 13 and err == ""
            assert all(math.isfinite(float(r.split(",")[2])) for r in rows[1:])
            continue
        _check_cli_refusal(code, out, err, param.name)


@pytest.mark.parametrize("flag", ["--epochs", "--steps-per-epoch"])
def test_cli_curve_length_refuses_bad_values(capsys, flag: str):
    name = flag[2:].replace("-", "_")
    for label, text in CLI_TEXT.items():
        argv = ["curve", "constant", "--epochs", "3", "--steps-per-epoch", "4", flag, text]
        code, out, err = _cli(capsys, argv)
        if code == 0:
            assert label in ("10**9", "fullwidth") or label == "true", label
            continue
        _check_cli_refusal(code, out, err, name)


TRAIN_FLAGS = ["--epochs", "--train-size", "--batch-size", "--seed", "--validation",
               "--granularity", "--optimizer"]


@pytest.mark.parametrize("flag", TRAIN_FLAGS)
def test_cli_train_refuses_bad_settings_and_writes_no_run(capsys, flag: str):
    name = flag[2:].replace("-", "_")
    for label in CLI_UNIVERSAL:
        code, out, err = _cli(capsys, ["train", "constant", flag, CLI_TEXT[label]])
        _check_cli_refusal(code, out, err, name)
    assert RunStore().list_runs() == []


@pytest.mark.parametrize("optimizer,param", OPTIMIZER_PARAMS, ids=_ids(OPTIMIZER_PARAMS))
def test_cli_train_refuses_bad_optimizer_settings_and_writes_no_run(capsys, optimizer, param):
    for label in CLI_UNIVERSAL:
        code, out, err = _cli(capsys, ["train", "constant", "--optimizer", optimizer,
                                       "--opt", f"{param.name}={CLI_TEXT[label]}"])
        _check_cli_refusal(code, out, err, param.name)
    assert RunStore().list_runs() == []


def _subprocess(argv: list[str], cache: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "LRVIZ_CACHE_DIR": str(cache), "TF_CPP_MIN_LOG_LEVEL": "2",
           "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.run([sys.executable, "-m", "lrviz", *argv], capture_output=True,
                          text=True, env=env, cwd=REPO_ROOT, timeout=60)


# One real process per kind of bad value, spread over parameters of every kind.
SUBPROCESS_CASES = [
    ["curve", "step", "--set", "drop_rate=NaN", "--epochs", "3", "--steps-per-epoch", "4"],
    ["curve", "constant", "--set", "lr=" + "1" + "0" * 400, "--epochs", "3", "--steps-per-epoch", "4"],
    ["curve", "multistep", "--set", "milestones=7", "--epochs", "3", "--steps-per-epoch", "4"],
    ["curve", "custom", "--set", "expression=🔥", "--epochs", "3", "--steps-per-epoch", "4"],
    ["curve", "reduce_on_plateau", "--set", "patience=" + LONG, "--epochs", "3", "--steps-per-epoch", "4"],
    ["curve", "constant", "--epochs", "1e308", "--steps-per-epoch", "4"],
    ["curve", "constant", "--epochs", "3", "--steps-per-epoch", "０"],
    ["train", "constant", "--epochs", "½"],
    ["train", "cyclic", "--set", "mode=" + LONG],
    ["train", "constant", "--optimizer", "adam", "--opt", "beta_1=inf"],
    ["train", "time_based", "--set", "compound=2"],
]


@pytest.mark.parametrize("argv", SUBPROCESS_CASES, ids=[" ".join(a)[:50] for a in SUBPROCESS_CASES])
def test_cli_subprocess_exits_2_with_one_line_and_writes_nothing(argv, tmp_cache):
    proc = _subprocess(argv, tmp_cache)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("error: Argument `"), proc.stderr[:500]
    assert "Traceback" not in proc.stderr and len(proc.stderr) < 500
    assert RunStore(tmp_cache / "lrviz.db").list_runs() == []


# -- the page (AppTest of the home page) ---------------------------------------------------------


def _home():
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(APP, default_timeout=60)
    # a short horizon keeps each of the hundreds of reruns below cheap; validation is the
    # same at any horizon
    at.session_state["lab.run.epochs"] = 5
    at.session_state["lab.run.train_size"] = 640
    at.run()
    assert not at.exception, at.exception
    return at


def _traces(at) -> list[str]:
    for chart in at.get("plotly_chart"):
        if chart.proto.id.endswith("-lab.chart"):
            return [t["name"] for t in json.loads(chart.proto.spec)["data"]]
    return []


def _errors(at) -> list[str]:
    return [e.value for e in at.error]


# Widgets let any number or text through to validation (DESIGN: the message is the one
# ParamError gives). Booleans and choices are a checkbox and a selectbox: a person cannot
# type a bad value into them, so the library and CLI tables cover those.
NUMBER_BAD = (-1.0, 1e308)
TEXT_BAD = ("", "½", "🔥", LONG, "[[[[", "30, sixty, 90")


def _page_problems(at, key: str, name: str, widget: str, value: Any, oracle, *,
                   drawn: list[str], missing: str | None) -> list[str]:
    """Set one widget to a bad value and list what went wrong (empty: all good).

    ``oracle(v)`` calls the library with the value the widget actually holds and raises
    ``ParamError`` if it is refused: the page must say exactly what the library says.
    """
    if widget == "number":
        at.number_input(key=key).set_value(value)
    else:
        at.text_input(key=key).input(value)
    at.run()
    shown = repr(value)[:30]
    if at.exception:
        return [f"{key}={shown}: exception {at.exception[0].value[:200]}"]
    held = at.session_state[key]
    try:
        oracle(held)
        refused = False
    except ParamError:
        refused = True
    problems = []
    errors = _errors(at)
    traces = _traces(at)
    if refused:
        if len(errors) != 1 or name not in errors[0] or "Received:" not in errors[0]:
            problems.append(f"{key}={shown}: expected one message naming {name}, got {errors}")
        if any(d not in traces for d in drawn) or (missing is not None and missing in traces):
            problems.append(f"{key}={shown}: traces {traces}, expected {drawn} without {missing}")
    elif errors or (missing is not None and missing not in traces):
        problems.append(f"{key}={shown}: accepted by the library, but the page shows {errors}, {traces}")
    return problems


def _reset(at, key: str, param: Param, widget: str) -> None:
    from lrviz.ui.widgets import initial_value

    if widget == "number":
        at.number_input(key=key).set_value(initial_value(param))
    else:
        at.text_input(key=key).input(initial_value(param))


def test_page_every_schedule_parameter_shows_one_message_and_others_still_draw():
    at = _home()
    problems: list[str] = []
    for spec in catalogue().values():
        other = "exponential" if spec.name == "constant" else "constant"
        at.multiselect(key="lab.chosen").set_value([other, spec.name]).run()
        assert _traces(at) == [other, spec.name], (spec.name, _errors(at))
        for i, param in enumerate(spec.params):
            if param.kind in ("bool", "choice"):
                continue
            widget = "number" if param.kind in ("float", "int") else "text"
            # numbers alternate -1 / 1e308 (both below/above every limit) to keep the page
            # run short; the library and CLI tables try every value on every parameter
            values = (NUMBER_BAD[i % 2],) if widget == "number" else TEXT_BAD
            if spec.name == "custom":
                values = values + ("__import__('os')", "9**9**9", "(" * 1000 + ")" * 1000)
            key = f"lab.{spec.name}.p.{param.name}"
            for value in values:
                if widget == "number" and param.kind == "int":
                    value = int(value) if abs(value) < 1e18 else 10**9
                problems += _page_problems(
                    at, key, param.name, widget, value,
                    lambda v, s=spec.name, n=param.name: build(s, {n: v}),
                    drawn=[other], missing=spec.name)
            _reset(at, key, param, widget)
    assert not problems, "\n".join(problems)


def test_page_every_run_setting_shows_one_message_naming_it():
    at = _home()
    problems: list[str] = []
    for param in RUN_PARAMS:
        if param.kind == "choice":
            continue
        key = f"lab.run.{param.name}"
        widget = "number" if param.kind in ("float", "int") else "text"
        values = ((-1, 10**9) if param.kind == "int" else NUMBER_BAD) if widget == "number" else TEXT_BAD
        for value in values:
            # a refused run setting stops every curve (the chart says so): nothing drawn
            problems += _page_problems(
                at, key, param.name, widget, value,
                lambda v, n=param.name: RunConfig.create("constant", **{n: v}),
                drawn=[], missing=None)
        _reset(at, key, param, widget)
    at.run()
    assert not at.exception and not _errors(at) and _traces(at)
    assert not problems, "\n".join(problems)


def test_page_every_optimizer_setting_shows_one_message_and_the_curve_still_draws():
    at = _home()
    at.multiselect(key="lab.chosen").set_value(["constant"]).run()
    problems: list[str] = []
    for optimizer, params in OPTIMIZERS.items():
        at.selectbox(key="lab.constant.optimizer").set_value(optimizer).run()
        for i, param in enumerate(params):
            if param.kind != "float":
                continue
            key = f"lab.constant.opt.{optimizer}.{param.name}"
            for value in (NUMBER_BAD[i % 2],):
                # optimizer settings only matter for training: the preview keeps drawing
                problems += _page_problems(
                    at, key, param.name, "number", value,
                    lambda v, o=optimizer, n=param.name: RunConfig.create("constant", None, None, o, {n: v}),
                    drawn=["constant"], missing=None)
            _reset(at, key, param, "number")
    assert not problems, "\n".join(problems)


def test_page_nan_and_inf_never_reach_the_chart_or_raise():
    # A browser's number field cannot send NaN or inf; AppTest can. Whatever the widget
    # makes of them, the page must not raise and must not draw a NaN/inf curve.
    at = _home()
    at.multiselect(key="lab.chosen").set_value(["constant", "step"]).run()
    for value in (float("nan"), float("inf"), float("-inf")):
        at.number_input(key="lab.step.p.drop_rate").set_value(value).run()
        assert not at.exception, at.exception
        errors = _errors(at)
        assert len(errors) <= 1 and all("drop_rate" in e for e in errors), errors
        assert "constant" in _traces(at)
        for chart in at.get("plotly_chart"):
            if chart.proto.id.endswith("-lab.chart"):
                assert "NaN" not in chart.proto.spec and "Infinity" not in chart.proto.spec
