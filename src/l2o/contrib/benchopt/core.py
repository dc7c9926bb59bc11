"""What l2o's benchopt solver files share: turning a benchmark's data into l2o instances
(with the benchmark's conventions converted exactly), resolving ``solver=`` to an l2o
solver, ``skip`` with a reason, and the callback loop.

The solver files (``lasso.py``, ``logreg_l2.py``) define ``class Solver(L2OSolver,
BaseSolver)`` with benchopt's literal class attributes (``name``, ``requirements``,
``parameters``, ``sampling_strategy``) and a ``Problem`` (``LassoProblem`` or
``LogregL2Problem``); everything else is here, importable without benchopt.

Conventions (benchopt's benchmark_lasso and benchmark_logreg_l2):

* LASSO: P(w) = 1/2 ||y - X w - c||^2 + lmbd ||w||_1, c = 0 unless ``fit_intercept``.
  l2o's ``LeastSquaresInstances`` is 1/2 ||A x - b||^2 + lam ||x||_1: lam = lmbd (no
  division by n_samples). With an intercept, minimizing over c gives c = mean(y - X w),
  so w solves the LASSO of the centred X and y, and c = mean(y) - mean(X) w; the result
  is ``beta = [w, c]`` (the benchmark's layout).
* l2 logistic: P(w) = sum_i log(1 + exp(-y_i x_i^T w)) + lmbd/2 ||w||^2, y in {-1, +1},
  no intercept. l2o's ``LogisticInstances(penalty="l2")`` is the MEAN loss + lam/2 ||w||^2,
  so lam = lmbd / n_samples and P = n_samples F.

Timing: ``set_objective`` (untimed) converts the arrays to float64 tensors on the device
and loads a pretrained model; ``run`` (timed) builds the instances (LASSO's Gram matrix,
the centring) and iterates; ``warm_up`` runs 10 iterations once so that a learned
solver's first call (about 2x slower, issue 12) is not on the clock.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor

from l2o.problems.base import Instances
from l2o.problems.lasso import LeastSquaresInstances
from l2o.problems.logistic import LogisticInstances
from l2o.registry import CLASSICAL, LEARNED, make_solver
from l2o.workflows.load import handover, load_solver

#: Largest dense copy (entries) made of a scipy.sparse design matrix; bigger ones are skipped.
MAX_DENSE_ENTRIES = 50_000_000


def as_dense(X: Any) -> np.ndarray | None:
    """``X`` as a dense float64 array, or None for a sparse matrix too big to densify.

    >>> as_dense([[1, 2], [3, 4]]).dtype
    dtype('float64')
    """
    if hasattr(X, "toarray"):  # scipy.sparse
        if X.shape[0] * X.shape[1] > MAX_DENSE_ENTRIES:
            return None
        X = X.toarray()
    return np.asarray(X, dtype=np.float64)


def resolve_device(device: str) -> torch.device:
    """``"auto"`` (cuda when available), ``"cpu"`` or ``"cuda[:i]"``; ValueError otherwise.

    >>> resolve_device("cpu")
    device(type='cpu')
    """
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise ValueError(f"device must be 'auto', 'cpu' or 'cuda[:i]', got {device!r}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r}, but torch sees no CUDA device")
    return dev


@dataclasses.dataclass
class LassoProblem:
    """benchmark_lasso's data as tensors: ``X (n_samples, n_features)``, ``y (n_samples,)``,
    ``lmbd``, ``fit_intercept``. ``instances()`` is l2o's batch of one (lam = lmbd, on the
    centred data with an intercept); ``result(w)`` the benchmark's ``beta``.

    >>> p = LassoProblem(torch.eye(3, dtype=torch.float64), torch.ones(3, dtype=torch.float64), 0.5, True)
    >>> inst = p.instances()
    >>> float(inst.lam[0]), inst.b.tolist()  # centred y
    (0.5, [[0.0, 0.0, 0.0]])
    >>> p.result(torch.zeros(1, 3, dtype=torch.float64)).tolist()  # w, then the intercept mean(y)
    [0.0, 0.0, 0.0, 1.0]
    """

    X: Tensor
    y: Tensor
    lmbd: float
    fit_intercept: bool = False

    kind: ClassVar[str] = "LASSO"
    instances_type: ClassVar[type] = LeastSquaresInstances

    @classmethod
    def from_objective(cls, device: torch.device, X: Any, y: Any, lmbd: float,
                       fit_intercept: bool = False, **_: Any) -> LassoProblem | str:
        """The problem, or the reason it cannot be built (a one-line string)."""
        Xd = as_dense(X)
        if Xd is None:
            return f"X is a sparse {X.shape[0]} x {X.shape[1]} matrix: too big for l2o's dense solvers"
        t = lambda a: torch.as_tensor(np.asarray(a, dtype=np.float64), device=device)  # noqa: E731
        return cls(t(Xd), t(y).reshape(-1), float(lmbd), bool(fit_intercept))

    def __post_init__(self) -> None:
        self._X_mean, self._y_mean = self.X.mean(0), self.y.mean()

    def instances(self) -> Instances:
        X, y = self.X, self.y
        if self.fit_intercept:
            X, y = X - self._X_mean, y - self._y_mean
        return LeastSquaresInstances(X, y[None], self.lmbd)

    def result(self, x: Tensor) -> np.ndarray:
        w = x[0].detach().to("cpu", torch.float64)
        if not self.fit_intercept:
            return w.numpy()
        c = (self._y_mean - self._X_mean @ w.to(self._X_mean)).to("cpu", torch.float64)
        return torch.cat([w, c.reshape(1)]).numpy()

    def objective(self, beta: np.ndarray) -> float:
        """The benchmark's P(beta) (for tests)."""
        X, y = self.X.cpu().numpy(), self.y.cpu().numpy()
        w, c = (beta[:-1], beta[-1]) if self.fit_intercept else (beta, 0.0)
        r = y - X @ w - c
        return float(0.5 * r @ r + self.lmbd * np.abs(w).sum())


@dataclasses.dataclass
class LogregL2Problem:
    """benchmark_logreg_l2's data as tensors: ``X (n_samples, n_features)``, ``y`` in
    {-1, +1}, ``lmbd``. ``instances()`` is l2o's batch of one with lam = lmbd / n_samples
    (l2o's logistic loss is the mean); ``result(w)`` the benchmark's ``beta``.

    >>> X = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], dtype=torch.float64)
    >>> p = LogregL2Problem(X, torch.tensor([1.0, -1.0, 1.0], dtype=torch.float64), 0.3)
    >>> w = torch.tensor([[0.2, -0.1]], dtype=torch.float64)
    >>> inst = p.instances()
    >>> float(inst.lam[0]) == 0.3 / 3, abs(3 * float(inst.objective(w)[0]) - p.objective(w[0].numpy())) < 1e-15
    (True, True)
    """

    X: Tensor
    y: Tensor
    lmbd: float

    kind: ClassVar[str] = "l2-regularized logistic regression"
    instances_type: ClassVar[type] = LogisticInstances

    @classmethod
    def from_objective(cls, device: torch.device, X: Any, y: Any, lmbd: float,
                       fit_intercept: bool = False, **_: Any) -> LogregL2Problem | str:
        """The problem, or the reason it cannot be built (a one-line string)."""
        if fit_intercept:
            return "fit_intercept=True: l2o's logistic family has no unpenalized intercept"
        labels = set(np.unique(np.asarray(y)).tolist())
        if not labels <= {-1.0, 1.0}:
            return f"labels must be -1 and +1 (benchmark_logreg_l2's convention), got {sorted(labels)[:5]}"
        Xd = as_dense(X)
        if Xd is None:
            return f"X is a sparse {X.shape[0]} x {X.shape[1]} matrix: too big for l2o's dense solvers"
        t = lambda a: torch.as_tensor(np.asarray(a, dtype=np.float64), device=device)  # noqa: E731
        return cls(t(Xd), t(y).reshape(-1), float(lmbd))

    def instances(self) -> Instances:
        n = self.y.shape[0]
        return LogisticInstances(self.X, self.y[None], self.lmbd / n, penalty="l2")

    def result(self, x: Tensor) -> np.ndarray:
        return x[0].detach().to("cpu", torch.float64).numpy()

    def objective(self, beta: np.ndarray) -> float:
        """The benchmark's P(beta) (for tests)."""
        z = self.y.cpu().numpy() * (self.X.cpu().numpy() @ beta)
        return float(np.logaddexp(0.0, -z).sum() + 0.5 * self.lmbd * beta @ beta)


def make_l2o_solver(name: str, problem: Any, device: torch.device) -> tuple[Any, str | None]:
    """``(solver, None)`` ready for ``problem`` (a ``LassoProblem`` / ``LogregL2Problem``),
    or ``(None, reason)``. ``name``: a classical solver, or a bundled pretrained name
    (loaded, moved to ``device``, wrapped in ``handover`` to its family's fallback).

    >>> import torch
    >>> X, y = torch.eye(4, dtype=torch.float64), torch.ones(4, dtype=torch.float64)
    >>> make_l2o_solver("fista_restart", LassoProblem(X, y, 0.1), torch.device("cpu"))[0].name
    'fista_restart'
    >>> print(make_l2o_solver("lista-lasso_50x100", LassoProblem(X, y, 0.1), torch.device("cpu"))[1])
    solver 'lista': problem A has shape (4, 4), model A (50, 100)
    """
    instances = problem.instances()
    if name in CLASSICAL:
        solver = make_solver(name)
    elif name in LEARNED:
        return None, (f"{name!r} is an untrained learned method; name a bundled pretrained solver "
                      f"('{name}-<preset>', l2o list --pretrained)")
    else:
        try:
            loaded = load_solver(name)
        except ValueError as e:
            return None, str(e)
        made = loaded.family.sample(1, 0)
        if not isinstance(made, problem.instances_type):
            return None, (f"{name!r} was trained on the {getattr(loaded.family, 'name', '?')} family, "
                          f"not on {problem.kind}")
        penalty = getattr(loaded.family, "penalty", None)
        if penalty is not None and penalty != getattr(instances, "penalty", penalty):
            return None, f"{name!r} was trained on {penalty}-penalized problems, this benchmark is l2-penalized"
        model = loaded.solver.to(device)
        reason = model.skip(instances)
        if reason is not None:
            return None, reason
        solver = handover(model, loaded.family, loaded.horizon)
    reason = solver.skip(instances)
    return (None, reason) if reason is not None else (solver, None)


class L2OSolver:
    """The benchopt ``Solver`` methods, for a class that also derives from
    ``benchopt.BaseSolver`` and sets ``Problem`` and the parameters ``solver`` and
    ``device`` (the solver files do). ``sampling_strategy = "callback"``: ``run(cb)``
    iterates while ``cb()`` is True; benchopt calls ``get_result`` off the clock.

    >>> from l2o.contrib.benchopt.lasso import Solver
    >>> s = Solver(); s.solver, s.device = "fista_restart", "cpu"  # benchopt sets these from `parameters`
    >>> rng = np.random.default_rng(0)
    >>> X, y = rng.standard_normal((20, 30)), rng.standard_normal(20)
    >>> s.skip(X=X, y=y, lmbd=1.0, fit_intercept=False)
    (False, None)
    >>> s.set_objective(X=X, y=y, lmbd=1.0, fit_intercept=False)
    >>> calls = iter(range(1000))
    >>> s.run(lambda: next(calls, None) is not None)  # 1000 iterations
    >>> beta = s.get_result()["beta"]
    >>> float(np.abs(X.T @ (y - X @ beta)).max()) <= 1.0 + 1e-8  # optimality: ||X^T r||_inf <= lmbd
    True
    """

    Problem: ClassVar[type] = LassoProblem
    #: iterations of ``warm_up`` (untimed)
    warm_up_iterations: ClassVar[int] = 10

    def _build(self, objective: dict[str, Any]) -> tuple[Any, Any, str | None]:
        device = resolve_device(str(self.device))
        problem = self.Problem.from_objective(device, **objective)
        if isinstance(problem, str):
            return None, None, problem
        solver, reason = make_l2o_solver(str(self.solver), problem, device)
        return problem, solver, reason

    def skip(self, **objective: Any) -> tuple[bool, str | None]:
        """(True, reason) for data this solver cannot take: a fixed-dimension learned
        solver on another shape or dictionary, a learned solver of another problem, an
        intercept or labels the problem does not have."""
        _, _, reason = self._build(objective)
        return (True, f"l2o[{self.solver}]: {reason}") if reason is not None else (False, None)

    def set_objective(self, **objective: Any) -> None:
        problem, solver, reason = self._build(objective)
        if reason is not None:
            raise ValueError(f"l2o[{self.solver}]: {reason}")
        self._problem, self._solver = problem, solver
        self._cuda = problem.X.device.type == "cuda"
        self._x = torch.zeros(1, problem.X.shape[1], dtype=torch.float64, device=problem.X.device)

    def warm_up(self) -> None:
        self.run_once(self.warm_up_iterations)

    def run(self, callback: Any) -> None:
        problem, solver = self._problem, self._solver
        with torch.no_grad():
            instances = problem.instances()
            state = solver.init(instances, instances.initial_point())
            self._x = state.x
            if self._cuda:
                torch.cuda.synchronize()
            while callback():
                state = solver.step(instances, state)
                if self._cuda:
                    torch.cuda.synchronize()
                self._x = state.x

    def get_result(self) -> dict[str, np.ndarray]:
        return {"beta": self._problem.result(self._x)}


__all__ = ["L2OSolver", "LassoProblem", "LogregL2Problem", "make_l2o_solver", "as_dense", "resolve_device",
           "MAX_DENSE_ENTRIES"]
