"""The batched engine: many runs of one model shape trained together in one computation.

Runs that share the model shape, data sample, validation setup, batch size, epochs and
seed (hence the initial weights and the batch order) but differ in schedule and optimizer
settings are stacked: every weight gets a leading run axis, the first layer is one wide
matmul ``x @ W1`` with ``W1`` of shape ``[784, K * h1]``, later layers are batched
matmuls, the per-run losses are summed and one ``tf.function`` step updates all runs,
each with its own learning rate (row ``k`` of a ``[K, total_steps]`` table built from the
run's ``lr_curve``) and its own optimizer state. Small MLPs leave most of a CPU idle
between tiny matrix products; sharing each batch across K runs does far more work per
step. Each run reports to its own sink exactly as a single run does.

Equivalence with ``run_training``: the initial weights come from ``build_model(hidden,
seed)`` after ``keras.utils.set_random_seed(seed)``, and the batch order is the one
``model.fit(..., shuffle=True)`` uses under that global seed (see ``fit_batch_order``).
The optimizer updates are Keras 3's own formulas written element-wise with per-run
hyper-parameters.

Runs the engine cannot stack (an adaptive schedule such as ``reduce_on_plateau``, an
optimizer without a stacked update, or nothing to share with) fall back to single runs
through ``run_training``; ``group_runs`` decides.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

if TYPE_CHECKING:  # import-time stays free of TensorFlow for type checkers only
    from lrviz.config import RunConfig
    from lrviz.store import RunStore

# Optimizers with a stacked update below; others fall back to single runs.
STACKED_OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop", "adagrad")

_EVAL_CHUNK = 2_000  # validation images per forward pass (bounds memory at K * chunk * h1)


# --------------------------------------------------------------------------- grouping

def group_key(config: "RunConfig") -> tuple | None:
    """What runs must share to be stacked, or None when this run must train alone."""
    from lrviz.schedules import catalogue

    if config.optimizer not in STACKED_OPTIMIZERS or catalogue()[config.schedule].adaptive:
        return None
    split = config.validation_split if config.validation == "split" else None
    return (tuple(config.hidden), config.train_size, config.sample_seed, config.validation,
            split, config.batch_size, config.epochs, config.seed)


def group_runs(configs: Sequence["RunConfig"]) -> list[list[int]]:
    """Indices of ``configs`` split into stackable groups; a group of one is a single run.

    Groups keep the order of first appearance, and the order of runs inside a group.
    """
    groups: dict[Any, list[int]] = {}
    for i, config in enumerate(configs):
        key = group_key(config)
        groups.setdefault(("single", i) if key is None else key, []).append(i)
    return list(groups.values())


# --------------------------------------------------------------------------- batch order

def fit_batch_order(n: int, seed: int) -> np.ndarray:
    """The sample order ``model.fit(x, y, shuffle=True)`` uses after
    ``keras.utils.set_random_seed(seed)``.

    Keras 3's array adapter draws ``tf.random.shuffle(tf.range(n))`` inside a one-element
    ``tf.data`` map; with a global seed and no op seed, that op's seed comes from the
    graph-level seed and the op's position in the map's function graph, so rebuilding the
    same map reproduces it. A fresh iterator every epoch re-runs the op from its initial
    state, so (a Keras quirk) every epoch uses the same permutation.
    """
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    ds = tf.data.Dataset.range(1).map(lambda _: tf.random.shuffle(tf.range(n, dtype=tf.int64)))
    return next(iter(ds)).numpy()


def batches(order: np.ndarray, batch_size: int) -> list[np.ndarray]:
    """Split an epoch's order into batches as Keras does (the last one may be partial)."""
    return [order[i:i + batch_size].astype(np.int32) for i in range(0, len(order), batch_size)]


# --------------------------------------------------------------------------- the stack

@dataclass
class _Family:
    """Runs of one optimizer inside a stack: their weights and slots share a run axis."""

    optimizer: str
    members: list[int]  # positions in the group
    hp: dict[str, Any]  # hyper-parameter name -> float32 [K_f] tensor
    params: list[Any]  # tf.Variables: W1 [784, K*h1], b1 [K*h1], then [K, ...]
    slots: dict[str, list[Any]]  # slot name -> one tf.Variable per param


def _stack_params(weights: list[list[np.ndarray]]) -> list[np.ndarray]:
    """Per-run Keras weights [W1, b1, W2, b2, ...] -> stacked arrays (first layer wide)."""
    out = [np.concatenate([w[0] for w in weights], axis=1),
           np.concatenate([w[1] for w in weights], axis=0)]
    for j in range(2, len(weights[0])):
        out.append(np.stack([w[j] for w in weights]))
    return out


def _unstack_params(stacked: list[np.ndarray], k: int) -> list[list[np.ndarray]]:
    """Inverse of ``_stack_params`` for ``k`` runs."""
    h1 = stacked[1].shape[0] // k
    runs = []
    for i in range(k):
        w = [stacked[0][:, i * h1:(i + 1) * h1], stacked[1][i * h1:(i + 1) * h1]]
        w += [s[i] for s in stacked[2:]]
        runs.append(w)
    return runs


def _hyper(optimizer: str, params: dict) -> dict[str, float]:
    """The settings each stacked update reads, with Keras's defaults where lrviz has none."""
    p = dict(params)
    if optimizer == "sgd":
        return {"momentum": p.get("momentum", 0.0), "nesterov": float(bool(p.get("nesterov", False)))}
    if optimizer in ("adam", "adamw"):
        return {"beta_1": p.get("beta_1", 0.9), "beta_2": p.get("beta_2", 0.999),
                "epsilon": p.get("epsilon", 1e-7), "weight_decay": p.get("weight_decay", 0.0)}
    if optimizer == "rmsprop":
        return {"rho": p.get("rho", 0.9), "momentum": p.get("momentum", 0.0),
                "epsilon": p.get("epsilon", 1e-7)}
    if optimizer == "adagrad":
        return {"initial_accumulator_value": p.get("initial_accumulator_value", 0.1),
                "epsilon": p.get("epsilon", 1e-7)}
    raise ValueError(f"Argument `optimizer` has no stacked update. Received: optimizer={optimizer!r}")


_SLOTS = {"sgd": ("momentum",), "adam": ("m", "v"), "adamw": ("m", "v"),
          "rmsprop": ("velocity", "momentum"), "adagrad": ("accumulator",)}


class StackedMLP:
    """K runs of one MLP as stacked TensorFlow variables, with a fused train step.

    ``weights[k]`` are run k's initial Keras weights ``[W1, b1, W2, b2, ...]``;
    ``lr_table`` is ``[K, total_steps]``; ``optimizers``/``opt_params`` per run.
    """

    def __init__(self, weights: list[list[np.ndarray]], lr_table: np.ndarray,
                 optimizers: list[str], opt_params: list[dict], *, jit_compile: bool = False,
                 slots: list[dict[str, list[np.ndarray]]] | None = None, iteration: int = 0):
        import tensorflow as tf

        self.args = (lr_table, optimizers, opt_params)
        self.k = len(weights)
        self.n_layers = len(weights[0]) // 2
        self.jit_compile = jit_compile
        self.families: list[_Family] = []
        for name in dict.fromkeys(optimizers):  # first-appearance order
            members = [i for i, o in enumerate(optimizers) if o == name]
            hps = [_hyper(name, opt_params[i]) for i in members]
            hp = {key: tf.constant([h[key] for h in hps], tf.float32) for key in hps[0]}
            stacked = _stack_params([weights[i] for i in members])
            params = [tf.Variable(a.astype(np.float32)) for a in stacked]
            fam_slots = {}
            for sname in _SLOTS[name]:
                if slots is not None:
                    arrays = _stack_params([slots[i][sname] for i in members])
                    fam_slots[sname] = [tf.Variable(a.astype(np.float32)) for a in arrays]
                    continue
                # Adagrad starts from its per-run initial accumulator value, others from 0.
                start = hp["initial_accumulator_value"] if sname == "accumulator" else tf.zeros([len(members)])
                fam_slots[sname] = [tf.Variable(tf.zeros_like(p) + self._bcast(start, j, stacked))
                                    for j, p in enumerate(params)]
            self.families.append(_Family(name, members, hp, params, fam_slots))
        # The family order is the order of the logits' run axis; map it back to the group's.
        self.order = [i for f in self.families for i in f.members]
        lr_rows = lr_table[self.order].astype(np.float32)
        self.lr_table = tf.constant(lr_rows)
        self.active = tf.Variable(tf.ones([self.k], tf.bool))
        self.loss_sum = tf.Variable(tf.zeros([self.k], tf.float32))
        self.correct = tf.Variable(tf.zeros([self.k], tf.float32))
        self.seen = tf.Variable(tf.zeros([self.k], tf.float32))
        self.iterations = tf.Variable(iteration, dtype=tf.int64)
        self.last_step = tf.Variable(tf.fill([self.k], tf.constant(iteration - 1, tf.int64)))
        self._train_step = None
        self._eval = None

    # ---- helpers -------------------------------------------------------------------
    @staticmethod
    def _bcast(vec, j: int, like) -> Any:
        """A per-run [K_f] vector shaped to broadcast against param ``j`` of a family."""
        import tensorflow as tf

        shape = like[j].shape
        if j == 0:  # [784, K*h1]
            return tf.repeat(vec, shape[1] // vec.shape[0])[None, :]
        if j == 1:  # [K*h1]
            return tf.repeat(vec, shape[0] // vec.shape[0])
        return tf.reshape(vec, [-1] + [1] * (len(shape) - 1))

    def _forward(self, x):
        """Logits [K, B, classes] in family order."""
        import tensorflow as tf

        out = []
        for f in self.families:
            kf = len(f.members)
            p = f.params
            h = tf.nn.relu(tf.matmul(x, p[0]) + p[1])  # the wide first layer
            h = tf.transpose(tf.reshape(h, [-1, kf, p[0].shape[1] // kf]), [1, 0, 2])
            for layer in range(1, self.n_layers):
                w, b = p[2 * layer], p[2 * layer + 1]
                h = tf.linalg.matmul(h, w) + b[:, None, :]
                if layer < self.n_layers - 1:
                    h = tf.nn.relu(h)
            out.append(h)
        return tf.concat(out, axis=0) if len(out) > 1 else out[0]

    @staticmethod
    def _losses(logits, y):
        import tensorflow as tf

        yk = tf.broadcast_to(y[None, :], tf.shape(logits)[:2])
        xent = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=yk, logits=logits)
        hit = tf.cast(tf.equal(tf.argmax(logits, axis=-1, output_type=yk.dtype), yk), tf.float32)
        return tf.reduce_mean(xent, axis=1), tf.reduce_sum(hit, axis=1)

    def _update(self, f: _Family, grads, lr, step) -> list[tuple[Any, Any, int]]:
        """Keras 3's update for the family's optimizer, per run: (variable, new value,
        param index) triples."""
        import tensorflow as tf

        b = lambda vec, j: self._bcast(vec, j, f.params)  # noqa: E731
        t = tf.cast(step + 1, tf.float32)
        flags = {key: (bool(np.all(v.numpy() > 0)), bool(np.any(v.numpy() > 0))) for key, v in f.hp.items()}

        def pick(key, j, yes, no):
            # Decided while tracing when every run agrees: no per-element select at run time.
            every, some = flags[key]
            return yes if every else no if not some else tf.where(b(f.hp[key], j) > 0, yes, no)

        pairs = []
        for j, (var, g) in enumerate(zip(f.params, grads)):
            lr_j = b(lr, j)
            w = var
            if f.optimizer == "sgd":
                mom = b(f.hp["momentum"], j)
                m = mom * f.slots["momentum"][j] - g * lr_j
                # Nesterov: w += momentum * m - lr * g; else w += m (momentum 0 is plain SGD).
                w = w + pick("nesterov", j, mom * m - g * lr_j, m)
                pairs.append((f.slots["momentum"][j], m, j))
            elif f.optimizer in ("adam", "adamw"):
                b1, b2, eps = b(f.hp["beta_1"], j), b(f.hp["beta_2"], j), b(f.hp["epsilon"], j)
                if f.optimizer == "adamw":  # Keras decays before the update, with the same LR
                    w = w - w * b(f.hp["weight_decay"], j) * lr_j
                alpha = lr_j * tf.sqrt(1 - tf.pow(b2, t)) / (1 - tf.pow(b1, t))
                m = f.slots["m"][j] + (g - f.slots["m"][j]) * (1 - b1)
                v = f.slots["v"][j] + (tf.square(g) - f.slots["v"][j]) * (1 - b2)
                w = w - (m * alpha) / (tf.sqrt(v) + eps)
                pairs += [(f.slots["m"][j], m, j), (f.slots["v"][j], v, j)]
            elif f.optimizer == "rmsprop":
                rho, mom, eps = b(f.hp["rho"], j), b(f.hp["momentum"], j), b(f.hp["epsilon"], j)
                vel = rho * f.slots["velocity"][j] + (1 - rho) * tf.square(g)
                inc = (lr_j * g) / tf.sqrt(vel + eps)
                mo = mom * f.slots["momentum"][j] + inc
                w = w - pick("momentum", j, mo, inc)
                pairs += [(f.slots["velocity"][j], vel, j), (f.slots["momentum"][j], mo, j)]
            elif f.optimizer == "adagrad":
                acc = f.slots["accumulator"][j] + tf.square(g)
                w = w - (lr_j * g) / tf.sqrt(acc + b(f.hp["epsilon"], j))
                pairs.append((f.slots["accumulator"][j], acc, j))
            pairs.append((var, w, j))
        return pairs

    def _apply(self, grads, lr, step, active) -> None:
        """All families' updates; runs with ``active`` False keep weights and slots."""
        import tensorflow as tf

        pos = start = 0
        for f in self.families:
            kf, n = len(f.members), len(f.params)
            on = active[pos:pos + kf]
            for var, value, j in self._update(f, grads[start:start + n], lr[pos:pos + kf], step):
                # The select fuses into the update; a tf.cond skipping it when all runs are
                # active measured slower (and traced twice as long).
                var.assign(tf.where(self._bcast(on, j, f.params), value, var))
            pos += kf
            start += n

    # ---- compiled functions ------------------------------------------------------------
    def _build(self) -> None:
        import tensorflow as tf

        variables = [p for f in self.families for p in f.params]

        def train_step(x, y):
            step = self.iterations
            lr = self.lr_table[:, tf.cast(step, tf.int32)]
            with tf.GradientTape() as tape:
                losses, hits = self._losses(self._forward(x), y)
                total = tf.reduce_sum(losses)
            grads = tape.gradient(total, variables)
            active = self.active.read_value()
            apply(grads, lr, step, active)
            bsz = tf.cast(tf.shape(y)[0], tf.float32)
            self.loss_sum.assign_add(tf.where(active, losses * bsz, 0.0))
            self.correct.assign_add(tf.where(active, hits, 0.0))
            self.seen.assign_add(tf.where(active, bsz, 0.0))
            # A non-finite loss keeps this step's update (as Keras applies it before any
            # callback sees the loss) and freezes the run from the next step on.
            self.last_step.assign(tf.where(active, step, self.last_step))
            self.active.assign(tf.logical_and(active, tf.math.is_finite(losses)))
            self.iterations.assign_add(1)

        def evaluate(x, y):
            losses, hits = self._losses(self._forward(x), y)
            return losses * tf.cast(tf.shape(y)[0], tf.float32), hits

        # XLA fuses the element-wise optimizer maths into one pass over each weight; the
        # matmuls stay with TensorFlow's own kernels (XLA's CPU dots measured far slower).
        apply = tf.function(self._apply, jit_compile=self.jit_compile)
        # One trace for every batch size (the last batch is partial; validation chunks vary).
        spec = [tf.TensorSpec([None, self.families[0].params[0].shape[0]], tf.float32),
                tf.TensorSpec([None], tf.int32)]
        self._train_step = tf.function(train_step, input_signature=spec)
        self._eval = tf.function(evaluate, input_signature=spec)

    # ---- public --------------------------------------------------------------------
    def start_epoch(self, x_all, y_all) -> None:
        """Reset the epoch's running metrics (and trace the step on first use)."""
        self._x, self._y = x_all, y_all
        if self._train_step is None:
            self._build()
        for v in (self.loss_sum, self.correct, self.seen):
            v.assign(v * 0.0)

    def step(self, idx: np.ndarray) -> None:
        """One optimizer step of every active run on the batch ``idx``."""
        # Gathering the batch in numpy keeps the big sample out of the compiled step.
        self._train_step(self._x[idx], self._y[idx])

    def collect(self) -> dict[str, np.ndarray]:
        """The epoch's per-run training loss and accuracy so far (group order)."""
        seen = np.maximum(self.seen.numpy(), 1.0)
        return self._to_group({"loss": self.loss_sum.numpy() / seen,
                               "accuracy": self.correct.numpy() / seen})

    def last_active_step(self) -> np.ndarray:
        """Per run, the last global step it trained (group order)."""
        return self._to_group({"s": self.last_step.numpy()})["s"]

    def evaluate(self, x_val, y_val) -> dict[str, np.ndarray]:
        """Per-run val_loss and val_accuracy (group order) over the whole validation set."""
        import tensorflow as tf

        if self._eval is None:
            self._build()
        loss = np.zeros(self.k, np.float64)
        hits = np.zeros(self.k, np.float64)
        for i in range(0, len(y_val), _EVAL_CHUNK):
            l_sum, h = self._eval(tf.constant(x_val[i:i + _EVAL_CHUNK]), tf.constant(y_val[i:i + _EVAL_CHUNK]))
            loss += l_sum.numpy()
            hits += h.numpy()
        return self._to_group({"val_loss": loss / len(y_val), "val_accuracy": hits / len(y_val)})

    def active_mask(self) -> np.ndarray:
        return self._to_group({"a": self.active.numpy()})["a"]

    def deactivate(self, group_positions: Sequence[int]) -> None:
        """Stop updating these runs (cancel): their weights and slots freeze."""
        mask = self.active.numpy()
        for g in group_positions:
            mask[self.order.index(g)] = False
        self.active.assign(mask)

    def run_state(self) -> tuple[list[list[np.ndarray]], list[dict[str, list[np.ndarray]]]]:
        """Current per-run weights (Keras layout) and optimizer slots, in group order."""
        weights: dict[int, list[np.ndarray]] = {}
        slots: dict[int, dict[str, list[np.ndarray]]] = {}
        for f in self.families:
            kf = len(f.members)
            for pos, w in zip(f.members, _unstack_params([p.numpy() for p in f.params], kf)):
                weights[pos] = w
                slots[pos] = {}
            for sname, variables in f.slots.items():
                for pos, arrs in zip(f.members, _unstack_params([v.numpy() for v in variables], kf)):
                    slots[pos][sname] = arrs
        return [weights[i] for i in range(self.k)], [slots[i] for i in range(self.k)]

    def subset(self, positions: Sequence[int]) -> "StackedMLP":
        """A new stack of only these runs (group positions), carrying their full state."""
        weights, slots = self.run_state()
        table, optimizers, opt_params = self.args
        pos = list(positions)
        new = StackedMLP([weights[i] for i in pos], table[pos], [optimizers[i] for i in pos],
                         [opt_params[i] for i in pos], jit_compile=self.jit_compile,
                         slots=[slots[i] for i in pos], iteration=int(self.iterations.numpy()))
        # The epoch's running metrics and masks go along: a mid-epoch shrink is invisible.
        for name in ("loss_sum", "correct", "seen", "active", "last_step"):
            mine = self._to_group({name: getattr(self, name).numpy()})[name][pos]
            getattr(new, name).assign(mine[new.order])
        if self._train_step is not None:
            new._x, new._y = self._x, self._y
            new._build()
        return new

    def _to_group(self, values: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        inv = np.argsort(self.order)
        return {k: np.asarray(v)[inv] for k, v in values.items()}


# --------------------------------------------------------------------------- training

_CHECK_EVERY = 20  # steps between polls for cancels (sinks throttle themselves) and divergence


def initial_weights(hidden: Sequence[int], seed: int) -> list[np.ndarray]:
    """The weights a single run of this shape and seed starts from (``run_training``'s order:
    global seed first, then ``build_model``)."""
    import keras

    from lrviz.training.model import build_model

    keras.utils.set_random_seed(seed)
    return build_model(tuple(hidden), seed).get_weights()


def lr_table(configs: Sequence["RunConfig"]) -> np.ndarray:
    """[K, epochs * steps_per_epoch]: the LR each run applies at each optimizer step."""
    from lrviz.schedules import build, lr_curve

    return np.stack([lr_curve(build(c.schedule, c.schedule_params, c.granularity),
                              c.epochs, c.steps_per_epoch) for c in configs])


class _Group:
    """The training loop of one stack: which runs are live, reporting, shrinking."""

    def __init__(self, configs, sinks, stack, table, x_val, y_val, outcome_cls):
        self.configs, self.sinks, self.stack, self.table = configs, sinks, stack, table
        self.x_val, self.y_val, self.Outcome = x_val, y_val, outcome_cls
        self.live = list(range(len(configs)))  # group index of each stack position
        self.outcomes: list[Any] = [None] * len(configs)
        self.spe, self.epochs = configs[0].steps_per_epoch, configs[0].epochs

    def run(self, x_train, y_train, order) -> list[Any]:
        for epoch in range(self.epochs):
            start = time.perf_counter()
            self.stack.start_epoch(x_train, y_train)
            for step, idx in enumerate(order):
                if step and step % _CHECK_EVERY == 0:
                    self._poll(epoch, start)
                    if not self.live:
                        return self.outcomes
                self.stack.step(idx)
            self._end_epoch(epoch, start)
            if not self.live:
                break
        return self.outcomes

    def _poll(self, epoch: int, start: float) -> None:
        """Mid-epoch: drop cancelled runs (their half epoch is not reported, as with a
        single run) and report diverged ones now, so the stack stops computing them."""
        active = self.stack.active_mask()
        cancel = [p for p, i in enumerate(self.live) if active[p] and self.sinks[i].should_stop()]
        diverged = [p for p in range(len(self.live)) if not active[p] and p not in cancel]
        for p in cancel:
            i = self.live[p]
            self.outcomes[i] = self.Outcome("cancelled", epoch)
        if diverged:
            self._report(epoch, start, diverged, self.stack.subset(diverged))
        if cancel or diverged:
            keep = [p for p in range(len(self.live)) if p not in cancel and p not in diverged]
            self._shrink(keep)

    def _end_epoch(self, epoch: int, start: float) -> None:
        self._report(epoch, start, list(range(len(self.live))), self.stack)
        keep = []
        for p, i in enumerate(self.live):
            if self.outcomes[i] is not None:
                continue
            if epoch + 1 == self.epochs:
                self.outcomes[i] = self.Outcome("finished", self.epochs)
            elif self.sinks[i].should_stop():
                self.outcomes[i] = self.Outcome("cancelled", epoch + 1)
            else:
                keep.append(p)
        if len(keep) < len(self.live):
            self._shrink(keep)

    def _report(self, epoch: int, start: float, positions: list[int], stack: "StackedMLP") -> None:
        """Send the epoch to the sinks of ``positions`` (``stack`` holds exactly those runs,
        or all live runs); a non-finite loss ends the run ``diverged``."""
        own = stack is not self.stack
        train = stack.collect()
        val = stack.evaluate(self.x_val, self.y_val)
        last_step = stack.last_active_step()
        seconds = time.perf_counter() - start
        first_step = epoch * self.spe
        for n, p in enumerate(positions):
            s = n if own else p
            i = self.live[p]
            steps = min(self.spe, int(last_step[s]) - first_step + 1)
            lrs = self.table[i, first_step:first_step + steps].astype(np.float32).astype(np.float64)
            metrics = {"loss": float(train["loss"][s]), "accuracy": float(train["accuracy"][s]),
                       "val_loss": float(val["val_loss"][s]), "val_accuracy": float(val["val_accuracy"][s]),
                       "learning_rate": float(lrs[0])}
            self.sinks[i].on_step_lr(first_step, lrs)
            self.sinks[i].on_epoch(epoch + 1, metrics, seconds)
            if not np.isfinite(metrics["loss"]):
                self.outcomes[i] = self.Outcome("diverged", epoch + 1)

    def _shrink(self, keep: list[int]) -> None:
        # Dropping ended runs from the stack saves their share of every later step.
        if keep:
            self.stack = self.stack.subset(keep)
        self.live = [self.live[p] for p in keep]


def train_stacked(configs: Sequence["RunConfig"], sinks: Sequence[Any], *,
                  jit_compile: bool = False) -> list[Any]:
    """Train one compatible group (``group_key`` equal for all) in one stacked computation.

    Each sink receives what ``run_training`` would send: ``on_step_lr`` then ``on_epoch``
    at every epoch end, epochs numbered from 1, seconds = the group's epoch wall time
    (for a run that diverged, the time until its epoch was reported).
    """
    from lrviz.data import load_sample
    from lrviz.training.run import Outcome

    keys = {group_key(c) for c in configs}
    if len(keys) != 1 or None in keys:
        raise ValueError("Argument `configs` must be one stackable group (see group_runs). "
                         f"Received: {len(configs)} configs in {len(keys)} groups")
    first = configs[0]
    outcomes: list[Any] = [None] * len(configs)
    for i, sink in enumerate(sinks):
        if sink.should_stop():  # cancelled while queued/setting up, as run_training does
            outcomes[i] = Outcome("cancelled", 0)
    live = [i for i in range(len(configs)) if outcomes[i] is None]
    if not live:
        return outcomes

    sample = load_sample(first.train_size, first.sample_seed, first.validation, first.validation_split)
    x_train = sample.x_train.reshape(len(sample.x_train), -1).astype(np.float32)
    x_val = sample.x_val.reshape(len(sample.x_val), -1).astype(np.float32)
    init = initial_weights(first.hidden, first.seed)
    order = batches(fit_batch_order(len(x_train), first.seed), first.batch_size)
    if len(order) != first.steps_per_epoch:
        raise RuntimeError(f"The sample gives {len(order)} batches per epoch, the config "
                           f"{first.steps_per_epoch}")
    table = lr_table([configs[i] for i in live])
    stack = StackedMLP([init] * len(live), table, [configs[i].optimizer for i in live],
                       [configs[i].optimizer_params for i in live], jit_compile=jit_compile)
    group = _Group([configs[i] for i in live], [sinks[i] for i in live], stack, table,
                   x_val, sample.y_val.astype(np.int32), Outcome)
    for i, out in zip(live, group.run(x_train, sample.y_train.astype(np.int32), order)):
        outcomes[i] = out
    return outcomes


def train_batched(configs: Sequence["RunConfig"], sinks: Sequence[Any], *,
                  jit_compile: bool = False) -> list[Any]:
    """Train ``configs`` (each into its sink): stackable groups together, the rest alone.

    Returns one ``Outcome`` per config, in order. Groups run one after another.
    """
    from lrviz.training.run import run_training

    if len(configs) != len(sinks):
        raise ValueError(f"Argument `sinks` must have one sink per config. "
                         f"Received: {len(configs)} configs, {len(sinks)} sinks")
    outcomes: list[Any] = [None] * len(configs)
    for group in group_runs(configs):
        if len(group) == 1:
            outcomes[group[0]] = run_training(configs[group[0]], sinks[group[0]])
            continue
        for i, out in zip(group, train_stacked([configs[i] for i in group], [sinks[i] for i in group],
                                               jit_compile=jit_compile)):
            outcomes[i] = out
    return outcomes


def train_group(run_ids: Sequence[str], store: "RunStore", *, wrap: Any = None,
                jit_compile: bool = False) -> dict[str, str]:
    """Train stored runs together (``train_batched``) with ``StoreSink``s and record how
    each ended; returns run id -> final status.

    Runs are claimed with a compare-and-set (queued -> running), so a run a worker took
    first is left to it. An exception marks every claimed run ``failed`` with its text.
    ``wrap(run_id, store_sink) -> sink`` (optional) wraps each sink, e.g. to print
    progress or mirror to a tracker.
    """
    import os

    from lrviz.config import RunConfig
    from lrviz.store import StoreSink

    claimed = [rid for rid in run_ids if store.set_status(rid, "running", only_if="queued")]
    # to_dict() stores an unused validation_split as None; from_dict fills the default.
    configs = [RunConfig.from_dict({k: v for k, v in store.get(rid).config.items() if v is not None})
               for rid in claimed]
    run_sinks: list[Any] = []
    for rid in claimed:
        store.heartbeat(rid, os.getpid())  # reconcile checks this pid, as for a worker's run
        sink = StoreSink(store, rid)
        run_sinks.append(wrap(rid, sink) if wrap is not None else sink)
    statuses: dict[str, str] = {}
    try:
        outcomes = train_batched(configs, run_sinks, jit_compile=jit_compile)
        for rid, out in zip(claimed, outcomes):
            store.set_status(rid, out.status, error=out.error, only_if="running")
    except Exception as exc:
        for rid in claimed:
            store.set_status(rid, "failed", error=f"{type(exc).__name__}: {exc}", only_if="running")
        raise
    finally:
        for rid in claimed:
            statuses[rid] = store.get(rid).status
    return statuses
