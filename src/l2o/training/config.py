"""Run configs: what to train, on what, and how, read from TOML.

A config has three tables::

    [problem]                 # a family or preset name, plus any family field as an override
    family = "ls_32x25"
    noise_std = 0.0

    [solver]                  # a learned solver name, plus its constructor arguments
    name = "lgd"
    hidden = 1024

    [training]                # the meta-training settings (all optional; see TrainingConfig)
    steps = 500
    loss = "mean"

Unknown keys anywhere (top level, tables, family fields, solver arguments) and values
of the wrong type are ``ValueError``s that name the key and list the valid ones: a
misspelt ``lr`` must not silently become the default. ``RunConfig.to_toml()`` writes
the resolved config (every default filled in), which ``from_dict`` reads back to an
equal config.

Overrides ``"table.key=value"`` (``l2o train --set``; ``load_config(path, overrides)``)
replace or add one key of the file before it is validated, so they are checked exactly
like the file; the value is read as a TOML value (``1e-3``, ``10``, ``true``, ``"x"``,
``[1, 2]``), or as a string where it is not one (``lgd``)::

    >>> apply_overrides({"training": {"steps": 5}}, ["training.steps=10", "solver.name=lgd"])
    {'training': {'steps': 10}, 'solver': {'name': 'lgd'}}
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import tomli_w
import torch

from l2o.problems.family import ProblemFamily
from l2o.registry import FAMILIES, LEARNED, PRESETS, make_family
from l2o.training.unroll import LOSSES, REDUCTIONS

META_OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULES = ("constant", "step", "cosine")
DTYPES = ("float32", "float64")


def torch_dtype(name: str) -> torch.dtype:
    """"float32" / "float64" -> the torch dtype (ValueError otherwise)."""
    if name not in DTYPES:
        raise ValueError(f"dtype is {name!r}; expected one of {', '.join(DTYPES)}")
    return getattr(torch, name)


TABLES = ("problem", "solver", "training", "evaluation")


@dataclasses.dataclass(frozen=True)
class TrainingConfig:
    """The ``[training]`` table.

    Attributes:
        steps: meta-steps (one batch each).
        batch_size: instances per meta-step.
        unroll: horizon K, the number of solver iterations unrolled per batch.
        segment: truncation length; the unroll is cut into segments of this length and
            the solver state is detached between them (truncated backpropagation).
            ``segment = unroll`` (the default; 0 in a file means the same) is full
            backpropagation through all K iterations.
        update_per_segment: with truncation, take one meta-optimizer step per segment
            (Math-L2O's loop) instead of one per batch with the segment gradients summed.
        loss: meta-loss per segment, averaged over instances:
            "last" F at the segment's last iterate (with full backprop: F(x_K));
            "mean" the mean of F over the segment's iterates;
            "sum" their sum (the deep-unfolding baselines' sum of sum-rates over the layers);
            "weighted" the mean of F weighted by the iteration number k (later counts more);
            "log_gap" the mean of log(relative gap + log_eps), which needs the
            reference optimum of every training batch;
            "one_step" F at the next iterate with the state detached before every step
            (needs ``segment = 1``): the one-step loss of learned quasi-Newton step sizes
            (``lqn``). A solver's own regulariser (``lqn``'s lambda ||p - 1||^2) is added to
            any of them.
        log_eps: the eps of "log_gap".
        reduction: "mean" or "sum" of the per-instance losses over the batch ("sum" is
            LGD's code: with SGD it scales the step by the batch size), or "cvar": the
            mean over the worst ``tail`` fraction of the batch (trains for the slowest
            instances, for targets on every instance).
        tail: the fraction of the batch "cvar" averages, in (0, 1].
        meta_optimizer: "adam", "adamw" (decoupled weight decay, Loshchilov and Hutter) or "sgd".
        weight_decay: AdamW's decoupled weight decay (0.01 is PyTorch's default); must be 0 otherwise.
        lr: learning rate (the initial one under a schedule).
        momentum: SGD momentum (must be 0 with Adam).
        schedule: "constant"; "step" (lr times ``decay`` every ``decay_every`` steps);
            "cosine" (from lr to ``min_lr`` over ``steps``).
        decay, decay_every: the step schedule.
        min_lr: the cosine schedule's final value.
        grad_clip: clip the meta-gradient's global norm to this (0 = off).
        train_set_size: 0 samples a fresh batch every step; > 0 draws one fixed training
            set of that size once (LGD's NeurIPS setting) and batches from it.
        random_unroll: draw the unroll length of each step uniformly from
            [ceil(K/2), floor(3K/2)] (the estimator is still chosen from the nominal K).
        val_batch: size of the fixed held-out validation batch (0 = no validation; the
            last weights are then also the best).
        val_every: validate every this many steps (and after the last one).
        seed: of the training data, the validation batch, the random unroll lengths
            and the solver's random initialization.
        dtype: "float32" or "float64" (problems and the network's parameters).
        device: torch device of the training ("cpu", "cuda", ...).
        checkpoint_every: write a resumable checkpoint every this many steps
            (0 = only at the end).
        gradient_checkpointing: recompute each solver step in the backward pass instead
            of storing its activations (``torch.utils.checkpoint``), so the memory of a
            long unroll is K states instead of K sets of network activations.
        shards: 0 (the default) draws each meta-batch from one stream (one process only);
            S >= 1 cuts it into S shards of ``batch_size / S`` instances, shard s of step t
            drawn from a seed of (seed, t, s) alone, with its own meta-gradient, the step's
            gradient their mean (sum with reduction "sum"; "cvar" is then per shard). The
            shards divide over the processes of ``torchrun`` (``l2o.training.distributed``):
            one process or N give the same training.
    """

    steps: int = 500
    batch_size: int = 64
    unroll: int = 100
    segment: int = 0
    update_per_segment: bool = False
    loss: str = "mean"
    log_eps: float = 1e-8
    reduction: str = "mean"
    tail: float = 0.1
    meta_optimizer: str = "adam"
    lr: float = 1e-3
    momentum: float = 0.0
    schedule: str = "constant"
    decay: float = 0.1
    decay_every: int = 0
    min_lr: float = 0.0
    grad_clip: float = 0.0
    weight_decay: float = 0.0
    train_set_size: int = 0
    random_unroll: bool = False
    val_batch: int = 64
    val_every: int = 50
    seed: int = 0
    dtype: str = "float32"
    device: str = "cpu"
    checkpoint_every: int = 100
    gradient_checkpointing: bool = True
    shards: int = 0

    @property
    def torch_dtype(self):
        """The torch dtype of ``dtype``."""
        return torch_dtype(self.dtype)

    def __post_init__(self) -> None:
        if self.segment == 0:
            object.__setattr__(self, "segment", self.unroll)
        self.validate()

    def validate(self) -> None:
        """Check ranges and combinations; ``ValueError`` naming ``[training] key``."""

        def bad(key: str, expected: str) -> ValueError:
            return ValueError(f"[training] {key} = {getattr(self, key)!r}; expected {expected}")

        for key in ("steps", "batch_size", "unroll", "val_every"):
            if getattr(self, key) < 1:
                raise bad(key, "an integer >= 1")
        for key in ("train_set_size", "val_batch", "checkpoint_every", "seed", "decay_every", "shards"):
            if getattr(self, key) < 0:
                raise bad(key, "an integer >= 0")
        if not 1 <= self.segment <= self.unroll:
            raise bad("segment", f"an integer in [1, unroll = {self.unroll}] (0 or unroll: full backpropagation)")
        if self.loss == "one_step" and self.segment != 1:
            raise bad("segment", "1 with loss = 'one_step' (the state is detached before every step)")
        for key, choices in (("loss", LOSSES), ("reduction", REDUCTIONS), ("meta_optimizer", META_OPTIMIZERS),
                             ("schedule", SCHEDULES), ("dtype", DTYPES)):
            if getattr(self, key) not in choices:
                raise bad(key, f"one of {', '.join(map(repr, choices))}")
        for key in ("lr", "log_eps"):
            v = getattr(self, key)
            if not (math.isfinite(v) and v > 0):
                raise bad(key, "a number > 0")
        if not (math.isfinite(self.tail) and 0 < self.tail <= 1):
            raise bad("tail", "a fraction in (0, 1]")
        for key in ("grad_clip", "min_lr"):
            v = getattr(self, key)
            if not (math.isfinite(v) and v >= 0):
                raise bad(key, "a number >= 0")
        if not 0 <= self.momentum < 1:
            raise bad("momentum", "a number in [0, 1)")
        if not (math.isfinite(self.weight_decay) and self.weight_decay >= 0):
            raise bad("weight_decay", "a number >= 0")
        if self.weight_decay != 0 and self.meta_optimizer != "adamw":
            raise bad("weight_decay", "0 unless meta_optimizer = 'adamw'")
        if self.momentum != 0 and self.meta_optimizer != "sgd":
            raise bad("momentum",
                      f"0 with meta_optimizer = {self.meta_optimizer!r} (momentum is the SGD meta-optimizer's)")
        if not 0 < self.decay <= 1:
            raise bad("decay", "a number in (0, 1]")
        if self.schedule == "step" and self.decay_every < 1:
            raise bad("decay_every", "an integer >= 1 with schedule = 'step'")
        if self.shards and self.batch_size % self.shards:
            raise bad("shards", f"a divisor of batch_size = {self.batch_size} (shards of equal size)")
        if self.train_set_size and self.batch_size > self.train_set_size:
            raise bad("batch_size", f"<= train_set_size = {self.train_set_size}")
        try:
            torch.device(self.device)
        except (RuntimeError, ValueError):
            raise bad("device", "a torch device such as 'cpu' or 'cuda'") from None


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """A resolved run config: problem family (name + every field), learned solver (name +
    every constructor argument) and training settings.

    ``evaluation`` is the optional ``[evaluation]`` table as given: training does not read
    it; ``l2o.workflows.robustness.EvaluationConfig`` checks and resolves it where it is
    used (``l2o eval --ood``, and ``l2o train`` when it loads a config).
    """

    family: str
    family_params: dict[str, Any]
    solver: str
    solver_params: dict[str, Any]
    training: TrainingConfig
    evaluation: dict[str, Any] = dataclasses.field(default_factory=dict)

    # ----- construction --------------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunConfig:
        """Validate and resolve a config given as nested dicts (as ``tomllib`` returns)."""
        if not isinstance(data, Mapping):
            raise ValueError(f"a run config is a table with {', '.join(TABLES)}; got {type(data).__name__}")
        _check_keys("top level", data, TABLES)
        for table in ("problem", "solver"):
            if table not in data:
                tables = ", ".join(f"[{t}]" for t in TABLES)
                raise ValueError(f"missing table [{table}]; a run config has tables {tables}")
        for table in TABLES:
            if table in data and not isinstance(data[table], Mapping):
                raise ValueError(f"[{table}] must be a table, got {_type_name(data[table])}")
        training = _training_from(data.get("training", {}))
        family, family_params = _resolve_family(data["problem"])
        solver, solver_params = _resolve_solver(data["solver"], training)
        evaluation = _opaque_table(data.get("evaluation", {}))
        return cls(family=family, family_params=family_params, solver=solver, solver_params=solver_params,
                   training=training, evaluation=evaluation)

    def to_dict(self) -> dict[str, Any]:
        """The nested-dict form that ``from_dict`` reads (None values are left out: TOML has no null)."""
        strip = lambda d: {k: v for k, v in d.items() if v is not None}  # noqa: E731
        return {
            "problem": {"family": self.family, **strip(self.family_params)},
            "solver": {"name": self.solver, **strip(self.solver_params)},
            "training": dataclasses.asdict(self.training),
            "evaluation": _opaque_table(self.evaluation),
        }

    def to_toml(self) -> str:
        """The resolved config as TOML text."""
        return tomli_w.dumps(_toml_safe(self.to_dict()))

    # ----- what it describes ------------------------------------------------------------------
    def make_family(self) -> ProblemFamily:
        """The problem family (a preset with its fields, or a family)."""
        return make_family(self.family, **self.family_params)

    def make_solver(self, family: ProblemFamily | None = None, dtype=None):
        """A fresh (untrained) learned solver.

        Solvers tied to the problem data receive it here, not from the config: a
        constructor argument ``A`` (LISTA, ALISTA: the shared dictionary) or ``family``
        (IAIDNN: the problem sizes) gets the family (``family``, default
        ``self.make_family()``), and a ``dtype`` argument gets
        ``dtype`` (so float64 models are built exactly rather than cast).
        """
        factory = learned_factory(self.solver)
        accepted = _constructor_params(factory, context=True)
        kwargs = dict(self.solver_params)
        if "A" in accepted:
            kwargs["A"] = family if family is not None else self.make_family()
        if "family" in accepted:
            kwargs["family"] = family if family is not None else self.make_family()
        if "dtype" in accepted and dtype is not None:
            kwargs["dtype"] = dtype
        return factory(**kwargs)


def parse_override(text: str) -> tuple[str, str, Any]:
    """``"table.key=value"`` -> ``(table, key, value)``, the value read as a TOML value
    (``1e-3`` a float, ``10`` an integer, ``true`` a boolean, ``[1, 2]`` an array,
    ``"a b"`` a string) or, where it is not one, as the string itself (``lgd``).

    >>> parse_override("training.lr=1e-3")
    ('training', 'lr', 0.001)
    >>> parse_override("problem.family=lasso_250x500")
    ('problem', 'family', 'lasso_250x500')
    """
    key, eq, raw = text.partition("=")
    table, dot, name = key.strip().partition(".")
    if not eq or not dot or not table or not name.strip() or not raw.strip():
        raise ValueError(f"override {text!r} is not table.key=value (e.g. training.lr=1e-3)")
    if table not in TABLES:
        raise ValueError(f"override {text!r}: unknown table [{table}]; valid tables: {', '.join(TABLES)}")
    raw = raw.strip()
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    return table, name.strip(), value


def apply_overrides(data: Mapping[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """A copy of the config ``data`` (nested dicts, as ``tomllib`` returns) with each
    ``"table.key=value"`` of ``overrides`` set, in order (``parse_override``).

    >>> apply_overrides({"training": {"lr": 0.1}}, ["training.lr=1e-2"])
    {'training': {'lr': 0.01}}
    """
    out = {k: dict(v) if isinstance(v, Mapping) else v for k, v in data.items()}
    for text in overrides:
        table, key, value = parse_override(text)
        if table in out and not isinstance(out[table], Mapping):
            raise ValueError(f"override {text!r}: [{table}] is not a table in the config")
        out.setdefault(table, {})[key] = value
    return out


def load_config(path: str | Path, overrides: Sequence[str] = ()) -> RunConfig:
    """Read and validate a run config from a TOML file, with ``overrides``
    (``"table.key=value"``, see ``apply_overrides``) applied before validation.

    Raises ``ValueError`` naming the file for a missing, empty or unparsable file, and
    naming the key for an invalid config (and the overrides, when some were given).
    """
    p = Path(path)
    if not p.exists():
        raise ValueError(f"config file '{p}' does not exist")
    if not p.is_file():
        raise ValueError(f"config file '{p}' is not a regular file")
    text = p.read_bytes()
    if not text.strip():
        raise ValueError(f"config file '{p}' is empty")
    try:
        data = tomllib.loads(text.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"config file '{p}' is not valid TOML: {e}") from None
    where = f"{p} with {' '.join(overrides)}" if overrides else str(p)
    try:
        return RunConfig.from_dict(apply_overrides(data, overrides))
    except ValueError as e:
        raise ValueError(f"{where}: {e}") from None


# ----- learned solvers (the learned view of l2o.registry.SOLVERS) ---------------------------------


def learned_factory(name: str):
    """The class of the learned solver ``name`` (a ``LearnedOptimizer`` subclass)."""
    if name not in LEARNED:
        raise ValueError(f"[solver] name = {name!r} is not a learned solver; valid: {', '.join(sorted(LEARNED))}")
    return LEARNED[name].factory


# ----- validation helpers ----------------------------------------------------------------------------


def _type_name(v: Any) -> str:
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "an array",
            dict: "a table"}.get(type(v), type(v).__name__)


def _check_keys(where: str, data: Mapping[str, Any], valid) -> None:
    bad = [k for k in data if k not in valid]
    if bad:
        raise ValueError(f"unknown key(s) {', '.join(map(repr, bad))} in {where}; "
                         f"valid keys: {', '.join(sorted(valid))}")


_TYPES = {"int": int, "float": float, "bool": bool, "str": str}


def _coerce(where: str, key: str, value: Any, kind: type | None) -> Any:
    """Check ``value`` against the Python type ``kind`` (an int is accepted as a float)."""
    if isinstance(value, list):
        value = tuple(value)  # array arguments are tuples in Python (hashable, like their defaults)
    if kind is None or value is None:
        return value
    ok = (
        isinstance(value, bool) if kind is bool
        else isinstance(value, int) and not isinstance(value, bool) if kind is int
        else isinstance(value, (int, float)) and not isinstance(value, bool) if kind is float
        else isinstance(value, kind)
    )
    if not ok:
        expected = {bool: "a boolean (true/false)", int: "an integer", float: "a number", str: "a string"}.get(
            kind, kind.__name__)
        raise ValueError(f"{where} {key} = {value!r} is {_type_name(value)}; expected {expected}")
    return float(value) if kind is float else value


def _kind_of(annotation: Any, default: Any) -> type | None:
    """The simple type of a field or argument, from its annotation or its default."""
    if isinstance(annotation, str):
        simple = annotation.removesuffix(" | None").removeprefix("Optional[").removesuffix("]")
        if simple in _TYPES:
            return _TYPES[simple]
    elif annotation in (int, float, bool, str):
        return annotation
    if default is not None and default is not inspect.Parameter.empty and not isinstance(default, type):
        for t in (bool, int, float, str):
            if type(default) is t:
                return t
    return None


def _training_from(table: Mapping[str, Any]) -> TrainingConfig:
    fields = {f.name: f for f in dataclasses.fields(TrainingConfig)}
    _check_keys("[training]", table, fields)
    values = {k: _coerce("[training]", k, v, _kind_of(fields[k].type, fields[k].default)) for k, v in table.items()}
    return TrainingConfig(**values)


def _opaque_table(table: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of a table this module does not interpret (``[evaluation]``), arrays as lists."""
    return {str(k): list(v) if isinstance(v, (list, tuple)) else v for k, v in table.items()}


def _resolve_family(table: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    if "family" not in table:
        raise ValueError("[problem] needs family = a family or preset name (see `l2o list`)")
    name = table["family"]
    if not isinstance(name, str):
        raise ValueError(f"[problem] family = {name!r} is {_type_name(name)}; expected a family or preset name")
    if name in PRESETS:
        base = PRESETS[name][0]
        cls = type(base)
    elif name in FAMILIES:
        cls, base = FAMILIES[name].factory, None
    else:
        raise ValueError(f"[problem] family = {name!r} is not a family or preset; valid: "
                         f"{', '.join(sorted(list(FAMILIES) + list(PRESETS)))}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    overrides = {k: v for k, v in table.items() if k != "family"}
    bad = [k for k in overrides if k not in fields]
    if bad:
        raise ValueError(f"unknown key(s) {', '.join(map(repr, bad))} in [problem] for family {name!r}; "
                         f"valid keys: family, {', '.join(sorted(fields))}")
    values = {k: _coerce("[problem]", k, v, _kind_of(fields[k].type, fields[k].default)) for k, v in overrides.items()}
    try:
        family = base.replace(**values) if base is not None else cls(**values)
    except (TypeError, ValueError) as e:
        raise ValueError(f"[problem] {e}") from None
    return name, {k: getattr(family, k) for k in fields}


def _resolve_solver(table: Mapping[str, Any], training: TrainingConfig) -> tuple[str, dict[str, Any]]:
    if "name" not in table:
        raise ValueError("[solver] needs name = a learned solver name")
    name = table["name"]
    if not isinstance(name, str):
        raise ValueError(f"[solver] name = {name!r} is {_type_name(name)}; expected a learned solver name")
    factory = learned_factory(name)
    params = _constructor_params(factory)
    given = {k: v for k, v in table.items() if k != "name"}
    bad = [k for k in given if k not in params]
    if bad:
        raise ValueError(f"unknown key(s) {', '.join(map(repr, bad))} in [solver] for {name!r}; "
                         f"valid keys: name, {', '.join(sorted(params))}")
    resolved: dict[str, Any] = {}
    for k, p in params.items():
        if k in given:
            resolved[k] = _coerce("[solver]", k, given[k], _kind_of(p.annotation, p.default))
        elif k == "horizon":
            resolved[k] = training.unroll  # the horizon a solver is trained for is the unroll
        elif p.default is inspect.Parameter.empty:
            raise ValueError(f"[solver] {name!r} needs {k}")
        else:
            resolved[k] = p.default
    return name, resolved


#: Constructor arguments that come from the run, not the config: the problem data
#: (``A`` or ``family``, given the family) and the parameter dtype (given ``[training] dtype``).
CONTEXT_ARGS = ("A", "family", "dtype")


def _constructor_params(factory, context: bool = False) -> dict[str, inspect.Parameter]:
    """Named constructor arguments (with ``context``: including ``CONTEXT_ARGS``)."""
    params = inspect.signature(factory).parameters.values()
    return {p.name: p for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
            and (context or p.name not in CONTEXT_ARGS)}


def _toml_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _toml_safe(v) for k, v in value.items() if v is not None}
    if isinstance(value, tuple):
        return [_toml_safe(v) for v in value]
    return value  # tomli_w writes inf / nan
