"""Keras code that reproduces a schedule in a person's own project.

``keras_snippet`` returns a short, runnable Python snippet with the person's values
filled in. Epoch granularity: a ``keras.callbacks.LearningRateScheduler`` around a plain
``lr_at(step)`` function. Batch granularity: the ``keras.optimizers.schedules`` class
that computes the same thing where Keras has one, else a small ``LearningRateSchedule``
subclass holding the table of ``lr_at`` values. The snippet defines ``optimizer`` and,
for epoch granularity, ``callback``. Values are written with ``repr`` and the custom
expression is rewritten from its checked syntax tree, so nothing typed is pasted raw.
"""

from __future__ import annotations

from lrviz.schedules.catalogue import Schedule, horizon
from lrviz.schedules.custom import compile_expression

_HEADER = """\
import math

import keras

EPOCHS = {epochs}
STEPS_PER_EPOCH = {spe}  # optimizer steps (batches) per epoch
TOTAL_STEPS = EPOCHS * STEPS_PER_EPOCH
"""

_TABLE_CLASS = '''
class TabulatedSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """The LR of every optimizer step, looked up by step (the last value is held)."""

    def __init__(self, values):
        self.values = [float(v) for v in values]

    def __call__(self, step):
        table = keras.ops.convert_to_tensor(self.values, dtype="float32")
        index = keras.ops.minimum(keras.ops.cast(step, "int32"), len(self.values) - 1)
        return keras.ops.take(table, index)

    def get_config(self):
        return {"values": self.values}


learning_rate = TabulatedSchedule([lr_at(step) for step in range(TOTAL_STEPS)])
'''


def _f(x: float) -> str:
    return repr(float(x))


def _body(s: Schedule, h) -> str:
    """The body of ``lr_at(step)``: the schedule at one optimizer step, plain Python."""
    p, name = s.params, s.name
    if name == "constant":
        return f"return {_f(p['lr'])}"
    if name == "keras_legacy_decay":
        return f"return {_f(p['initial_lr'])} / (1 + {_f(p['decay'])} * step)"
    if name == "time_based":
        if not p["compound"]:
            return f"t = step / STEPS_PER_EPOCH\nreturn {_f(p['initial_lr'])} / (1 + {_f(p['decay'])} * t)"
        return (f"t = step / STEPS_PER_EPOCH\nepoch = math.floor(t)\nlr = {_f(p['initial_lr'])}\n"
                f"for e in range(1, epoch + 1):  # the article's lr_e = lr_(e-1) / (1 + decay * e)\n"
                f"    lr /= 1 + {_f(p['decay'])} * e\n"
                f"return lr * (1 + {_f(p['decay'])} * (epoch + 1)) ** -(t - epoch)")
    if name == "step":
        return (f"return {_f(p['initial_lr'])} * {_f(p['drop_rate'])} ** "
                f"math.floor(step / {h.steps(p['epochs_drop'])})")
    if name == "exponential":
        return f"return {_f(p['initial_lr'])} * math.exp(-{_f(p['k'])} * step / STEPS_PER_EPOCH)"
    if name == "polynomial":
        return (f"frac = min(step, TOTAL_STEPS) / TOTAL_STEPS\n"
                f"return ({_f(p['initial_lr'])} - {_f(p['end_lr'])}) * (1 - frac) ** {_f(p['power'])}"
                f" + {_f(p['end_lr'])}")
    if name == "multistep":
        marks = [h.steps0(m) for m in p["milestones"]]
        return f"drops = sum(step >= m for m in {marks})\nreturn {_f(p['initial_lr'])} * {_f(p['gamma'])} ** drops"
    if name == "cosine":
        warm = h.steps0(p["warmup_epochs"])
        lines = [f"if step < {warm}:\n    return {_f(p['initial_lr'])} * step / {warm}"] if warm else []
        lines.append(f"frac = min(1.0, max(0.0, (step - {warm}) / {max(h.last - warm, 1)}))")
        lines.append(f"return {_f(p['min_lr'])} + ({_f(p['initial_lr'])} - {_f(p['min_lr'])}) * 0.5 * "
                     f"(1 + math.cos(math.pi * frac))")
        return "\n".join(lines)
    if name == "cosine_restarts":
        return (f"start, length, scale = 0, {h.steps(p['first_cycle_epochs'])}, 1.0\n"
                f"while step >= start + length:  # find the cycle holding this step\n"
                f"    start, length, scale = start + length, length * {_f(p['t_mul'])}, scale * {_f(p['m_mul'])}\n"
                f"pos = (step - start) / length\n"
                f"return {_f(p['min_lr'])} + ({_f(p['initial_lr'])} - {_f(p['min_lr'])}) * scale * 0.5 * "
                f"(1 + math.cos(math.pi * pos))")
    if name == "cyclic":
        half = h.steps(p["step_size_epochs"])
        scale = {"triangular": "1.0", "triangular2": "1 / 2 ** (cycle - 1)",
                 "exp_range": f"{_f(p['gamma'])} ** step"}[p["mode"]]
        return (f"cycle = math.floor(1 + step / {2 * half})\n"
                f"x = abs(step / {half} - 2 * cycle + 1)\n"
                f"return {_f(p['base_lr'])} + ({_f(p['max_lr'])} - {_f(p['base_lr'])}) * max(0.0, 1 - x) * {scale}")
    if name == "one_cycle":
        start = p["max_lr"] / p["div_factor"]
        low = start / p["final_div_factor"]
        up_end = p["pct_start"] * h.n - h.unit
        if p["anneal"] == "cos":
            anneal = "def anneal(a, b, pct):\n    return b + (a - b) / 2 * (1 + math.cos(math.pi * pct))\n"
        else:
            anneal = "def anneal(a, b, pct):\n    return (b - a) * pct + a\n"
        return (anneal + f"if step <= {up_end!r}:\n"
                f"    return anneal({_f(start)}, {_f(p['max_lr'])}, step / {up_end!r} if {up_end!r} > 0 else 1.0)\n"
                f"pct = (step - {up_end!r}) / ({h.last} - {up_end!r}) if {h.last} > {up_end!r} else 1.0\n"
                f"return anneal({_f(p['max_lr'])}, {_f(low)}, pct)")
    if name == "warmup_stable_decay":
        warm, decay = h.steps0(p["warmup_epochs"]), h.steps0(p["decay_epochs"])
        peak = _f(p["peak_lr"])
        lines = [f"up = {peak} * min(1.0, step / {warm})" if warm else f"up = {peak}"]
        if decay:
            start = h.n - decay
            lines.append(f"frac = min(1.0, max(0.0, (step - {start}) / {max(h.last - start, 1)}))")
            lines.append(f"return min(up, {peak} + ({_f(p['min_lr'])} - {peak}) * frac)")
        else:
            lines.append("return up")
        return "\n".join(lines)
    if name == "inverse_sqrt":
        warm = h.steps(p["warmup_epochs"])
        return (f"if step < {warm}:\n    return {_f(p['initial_lr'])} * step / {warm}\n"
                f"return {_f(p['initial_lr'])} * math.sqrt({warm} / step)")
    if name == "custom":
        python = compile_expression(p["expression"]).python
        return ("t = step / STEPS_PER_EPOCH\nepoch = step // STEPS_PER_EPOCH\n"
                "epochs, steps_per_epoch = EPOCHS, STEPS_PER_EPOCH\n"
                f"return {python}")
    raise AssertionError(f"no snippet for {name}")


def _native(s: Schedule, h) -> str | None:
    """A ``keras.optimizers.schedules`` expression computing the same per-step LR, if any."""
    p, name, ks = s.params, s.name, "keras.optimizers.schedules"
    if name == "constant":
        return _f(p["lr"])
    if name == "keras_legacy_decay":
        return (f"{ks}.InverseTimeDecay(\n    initial_learning_rate={_f(p['initial_lr'])}, "
                f"decay_steps=1, decay_rate={_f(p['decay'])})")
    if name == "exponential":
        return (f"{ks}.ExponentialDecay(\n    initial_learning_rate={_f(p['initial_lr'])}, "
                f"decay_steps=STEPS_PER_EPOCH,\n    decay_rate=math.exp(-{_f(p['k'])}))")
    if name == "step":
        return (f"{ks}.ExponentialDecay(\n    initial_learning_rate={_f(p['initial_lr'])}, "
                f"decay_steps={h.steps(p['epochs_drop'])},\n    decay_rate={_f(p['drop_rate'])}, staircase=True)")
    if name == "polynomial":
        return (f"{ks}.PolynomialDecay(\n    initial_learning_rate={_f(p['initial_lr'])}, "
                f"decay_steps=TOTAL_STEPS,\n    end_learning_rate={_f(p['end_lr'])}, power={_f(p['power'])})")
    if name == "multistep" and p["milestones"]:
        # Keras keeps values[i] while step <= boundaries[i]: boundary = milestone step - 1.
        bounds = [h.steps0(m) - 1 for m in p["milestones"]]
        values = [p["initial_lr"] * p["gamma"] ** i for i in range(len(bounds) + 1)]
        return (f"{ks}.PiecewiseConstantDecay(\n    boundaries={bounds},\n"
                f"    values={[float(v) for v in values]})")
    if name == "cosine":
        warm = h.steps0(p["warmup_epochs"])
        alpha = p["min_lr"] / p["initial_lr"]
        extra = f",\n    warmup_target={_f(p['initial_lr'])}, warmup_steps={warm}" if warm else ""
        start = 0.0 if warm else p["initial_lr"]
        return (f"{ks}.CosineDecay(\n    initial_learning_rate={_f(start)}, "
                f"decay_steps={max(h.last - warm, 1)}, alpha={alpha!r}{extra})")
    if name == "cosine_restarts":
        return (f"{ks}.CosineDecayRestarts(\n    initial_learning_rate={_f(p['initial_lr'])}, "
                f"first_decay_steps={h.steps(p['first_cycle_epochs'])},\n    t_mul={_f(p['t_mul'])}, "
                f"m_mul={_f(p['m_mul'])}, alpha={p['min_lr'] / p['initial_lr']!r})")
    return None


def keras_snippet(schedule: Schedule, epochs: int, steps_per_epoch: int) -> str:
    """Runnable Keras code reproducing ``schedule`` over ``epochs`` x ``steps_per_epoch``."""
    h = horizon(epochs, steps_per_epoch, schedule.granularity)
    head = f"# lrviz: {schedule.spec.title} ({schedule.name}), granularity {schedule.granularity}\n"
    head += _HEADER.format(epochs=h.epochs, spe=h.spe)
    if schedule.name == "reduce_on_plateau":
        p = schedule.params
        return head + (
            f"\noptimizer = keras.optimizers.SGD(learning_rate={_f(p['initial_lr'])})\n"
            f"callback = keras.callbacks.ReduceLROnPlateau(\n    monitor={p['monitor']!r}, "
            f"factor={_f(p['factor'])}, patience={p['patience']}, min_lr={_f(p['min_lr'])})\n"
            "# model.compile(optimizer=optimizer, ...)\n"
            "# model.fit(..., epochs=EPOCHS, callbacks=[callback])\n")
    native = _native(schedule, h) if schedule.granularity == "batch" else None
    if native is not None:
        return head + (f"\nlearning_rate = {native}\n"
                       "optimizer = keras.optimizers.SGD(learning_rate=learning_rate)\n"
                       "# model.compile(optimizer=optimizer, ...); model.fit(..., epochs=EPOCHS)\n")
    body = "\n".join("    " + line for line in _body(schedule, h).splitlines())
    func = f'\n\ndef lr_at(step):\n    """The LR applied at optimizer step `step` (from 0)."""\n{body}\n'
    if schedule.granularity == "epoch":
        return head + func + (
            "\n\ndef schedule(epoch, lr):\n"
            "    return float(lr_at(epoch * STEPS_PER_EPOCH))  # held for the whole epoch\n\n\n"
            "callback = keras.callbacks.LearningRateScheduler(schedule)\n"
            "optimizer = keras.optimizers.SGD(learning_rate=schedule(0, None))\n"
            "# model.compile(optimizer=optimizer, ...)\n"
            "# model.fit(..., epochs=EPOCHS, callbacks=[callback])\n")
    return head + func + "\n" + _TABLE_CLASS + (
        "optimizer = keras.optimizers.SGD(learning_rate=learning_rate)\n"
        "# model.compile(optimizer=optimizer, ...); model.fit(..., epochs=EPOCHS)\n")

