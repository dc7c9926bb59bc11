"""Logistic-regression instances from the datasets that scikit-learn ships.

The papers' real-data settings (UCI Ionosphere, Spambase) need downloads that are
not possible here; scikit-learn's bundled breast-cancer and digits data take their
place. A batch is made of random subsamples (without replacement) of the rows of
one standardized dataset, so instances share their distribution but not their data.

The real-data splits of the synthetic ``LogisticFamily`` (train on Gaussian features,
test on a bundled dataset) are built here (``real_data_splits``) and registered for it.
"""

from __future__ import annotations

import dataclasses

import torch

from l2o.problems.base import Instances
from l2o.problems.family import ProblemFamily
from l2o.problems.logistic import PENALTIES, LogisticFamily, LogisticInstances, logistic_solver
from l2o.problems.splits import Split, lam_splits, register_splits

DATASETS = {
    "breast_cancer": "scikit-learn breast cancer (569 x 30), malignant vs benign",
    "digits": "scikit-learn digits (1797 x 64), digit >= 5 vs < 5",
}


def load_dataset(name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Standardized features ``(N, d)`` and labels in {-1, +1} ``(N,)``, float64."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {sorted(DATASETS)}")
    try:
        from sklearn import datasets
    except ImportError as exc:  # pragma: no cover - scikit-learn is a dependency
        raise ImportError("the dataset families need scikit-learn: pip install scikit-learn") from exc
    if name == "breast_cancer":
        X, y = datasets.load_breast_cancer(return_X_y=True)
        y = 2.0 * y - 1.0
    else:
        X, y = datasets.load_digits(return_X_y=True)
        y = torch.where(torch.as_tensor(y) >= 5, 1.0, -1.0).numpy()
    X = torch.as_tensor(X, dtype=torch.float64)
    std = X.std(0)
    X = (X - X.mean(0)) / torch.where(std > 0, std, torch.ones_like(std))
    return X, torch.as_tensor(y, dtype=torch.float64)


@dataclasses.dataclass(frozen=True)
class DatasetLogisticFamily(ProblemFamily):
    """Regularized logistic regression on random row-subsamples of a bundled dataset.

    ``subsample`` in (0, 1] is the fraction of rows per instance (1.0: every instance
    is the full dataset).

    Example:
        >>> import l2o
        >>> from l2o.problems import DatasetLogisticFamily
        >>> family = DatasetLogisticFamily(dataset="breast_cancer", lam=0.01, penalty="l2", subsample=0.5)
        >>> problem = family.sample(2, generator=0)
        >>> tuple(problem.X.shape)  # 284 of the 569 rows per instance, 30 standardized features
        (2, 284, 30)
        >>> result = l2o.solve(l2o.make_solver("newton"), problem, tol=1e-10)
        >>> bool(result.converged.all()), bool(result.certificate.max() <= 1e-10)
        (True, True)
    """

    dataset: str = "breast_cancer"
    lam: float = 0.01
    penalty: str = "l1"
    subsample: float = 0.8
    x0_shift: float = 0.0
    objective_shift: float = 0.0

    name = "logistic_dataset"
    file_format = "logistic"

    @classmethod
    def solver_for(cls, problem: Instances) -> str:
        return logistic_solver(problem)

    def natural_splits(self) -> list[Split]:
        """The other bundled dataset, and lam halved / doubled."""
        others = [d for d in sorted(DATASETS) if d != self.dataset]
        return [
            *[Split(d, f"scikit-learn {d}", {"dataset": d}) for d in others],
            *lam_splits(self.lam),
        ]

    def validate(self) -> None:
        if self.dataset not in DATASETS:
            raise ValueError(f"logistic_dataset: unknown dataset {self.dataset!r}; choose one of {sorted(DATASETS)}")
        if self.penalty not in PENALTIES:
            raise ValueError(f"logistic_dataset: penalty must be one of {PENALTIES}, got {self.penalty!r}")
        if self.lam < 0:
            raise ValueError(f"logistic_dataset: lam must be >= 0, got {self.lam}")
        if not 0 < self.subsample <= 1:
            raise ValueError(f"logistic_dataset: subsample must be in (0, 1], got {self.subsample}")

    def sample_instances(self, batch_size: int, g: torch.Generator) -> LogisticInstances:
        X, y = load_dataset(self.dataset)
        n_rows = max(2, int(round(self.subsample * X.shape[0])))
        if n_rows == X.shape[0]:
            return LogisticInstances(X, y.expand(batch_size, -1).clone(), self.lam, self.penalty, self.x0_shift)
        rows = torch.rand(batch_size, X.shape[0], generator=g).argsort(-1)[:, :n_rows]
        return LogisticInstances(X[rows], y[rows], self.lam, self.penalty, self.x0_shift)


def real_data_splits(family: LogisticFamily) -> list[Split]:
    """The natural splits of the synthetic logistic family on real data: 80% subsamples of
    the bundled breast-cancer and digits datasets, with the family's lam and penalty."""
    return [
        Split("breast_cancer", "scikit-learn breast cancer (569 x 30), 80% subsamples",
              family=DatasetLogisticFamily(dataset="breast_cancer", lam=family.lam, penalty=family.penalty)),
        Split("digits", "scikit-learn digits (1797 x 64, >= 5 vs < 5), 80% subsamples",
              family=DatasetLogisticFamily(dataset="digits", lam=family.lam, penalty=family.penalty)),
    ]


register_splits(LogisticFamily, real_data_splits)
