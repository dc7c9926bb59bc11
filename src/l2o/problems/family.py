"""Problem families: frozen dataclasses of hyperparameters that sample batches."""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any, ClassVar

import torch

from l2o.problems.base import Instances
from l2o.problems.shift import shifted

#: Baselines of ``l2o eval`` (registry names of classical solvers) for composite or
#: constrained problems (r != 0) ...
NONSMOOTH_BASELINES: tuple[str, ...] = ("ista", "fista", "fista_restart", "adam")
#: ... and for smooth ones.
SMOOTH_BASELINES: tuple[str, ...] = ("gd", "nesterov", "fista_restart", "adam", "lbfgs")


def make_generator(seed: int | torch.Generator | None) -> torch.Generator:
    """A CPU ``torch.Generator`` from a seed (``None`` -> seed 0, so runs are reproducible)."""
    if isinstance(seed, torch.Generator):
        return seed
    g = torch.Generator()
    g.manual_seed(0 if seed is None else int(seed))
    return g


@dataclasses.dataclass(frozen=True)
class ProblemFamily(ABC):
    """A distribution over problem instances.

    Subclasses are frozen dataclasses whose fields are the hyperparameters (sizes,
    distributions, regularization) and the out-of-distribution knobs; every family
    has ``x0_shift`` (start at ``x0_shift * 1``) and ``objective_shift`` (solve
    F(x + t) with ``t = objective_shift * 1``), the shifts of Song et al. (CVPR 2024).
    Data are drawn in float64 on the CPU from an explicit generator and then cast,
    so one seed gives the same instances in every dtype and on every device.
    """

    name: ClassVar[str] = "family"
    #: Whether the CVPR 2024 shifts (x0_shift, objective_shift) apply to this family.
    cvpr_shifts: ClassVar[bool] = True

    # ----- declared defaults (registry names of classical solvers, io kinds) -------------
    #: The solver ``l2o solve`` uses when none is named (``solver_for`` refines it by the
    #: instances' structure).
    default_solver: ClassVar[str] = "fista_restart"
    #: The baselines of ``l2o eval`` for nonsmooth instances (r != 0) ...
    baselines: ClassVar[tuple[str, ...]] = NONSMOOTH_BASELINES
    #: ... and for smooth ones (``baselines_for`` picks by ``problem.has_nonsmooth``).
    smooth_baselines: ClassVar[tuple[str, ...]] = SMOOTH_BASELINES
    #: The classical solver a safeguard falls back to.
    fallback: ClassVar[str] = "fista_restart"
    #: The ``l2o solve`` file format (``l2o.io`` kind) its instances are read in, or None
    #: (no format: ``l2o solve --checkpoint`` refuses runs of the family).
    file_format: ClassVar[str | None] = None
    #: The ``lam`` a file read in ``file_format`` for this family takes when it has none and
    #: none is given (None: the format's own rule, for LASSO a required key).
    file_lam: ClassVar[float | None] = None

    @classmethod
    def solver_for(cls, problem: Instances) -> str:
        """The default solver for ``problem``, instances of this family (or read in its
        ``file_format``): ``default_solver`` unless the family refines it."""
        return cls.default_solver

    @classmethod
    def baselines_for(cls, problem: Instances) -> tuple[str, ...]:
        """The default baselines for ``problem``: ``baselines`` if it is nonsmooth, else
        ``smooth_baselines``."""
        return cls.baselines if problem.has_nonsmooth else cls.smooth_baselines

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ``ValueError`` naming the bad field; called on construction."""

    def _check_positive_int(self, *fields: str) -> None:
        for f in fields:
            v = getattr(self, f)
            if not isinstance(v, int) or v <= 0:
                raise ValueError(f"{self.name}: {f} must be a positive integer, got {v!r}")

    @abstractmethod
    def sample_instances(self, batch_size: int, g: torch.Generator) -> Instances:
        """Draw ``batch_size`` unshifted instances in float64 on the CPU."""

    def sample(
        self,
        batch_size: int,
        generator: int | torch.Generator | None = None,
        dtype: torch.dtype = torch.float64,
        device: torch.device | str = "cpu",
    ) -> Instances:
        """Sample a batch of ``batch_size`` instances.

        Args:
            batch_size: B >= 1.
            generator: a ``torch.Generator`` or an integer seed (default 0).
            dtype, device: of the returned instances.
        """
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        inst = self.sample_instances(batch_size, make_generator(generator))
        if dtype != torch.float64 or torch.device(device) != torch.device("cpu"):
            inst = inst.to(dtype=dtype, device=device)
        if self.objective_shift != 0.0:
            inst = shifted(inst, float(self.objective_shift))
        return inst

    def replace(self, **changes: Any) -> ProblemFamily:
        """A copy with some hyperparameters changed (used to build OOD splits)."""
        return dataclasses.replace(self, **changes)

    def natural_splits(self) -> list[Split]:
        """The family's own out-of-distribution splits (data scale, noise, sparsity,
        conditioning, dimension, ...); the common ones and ``family_splits`` are in
        ``l2o.problems.splits``."""
        return []


@dataclasses.dataclass(frozen=True)
class Split:
    """A named test distribution derived from a training family.

    Attributes:
        name: what ``--split`` and configs call it.
        description: one line for reports.
        changes: field changes applied to the training family (``family.replace``).
        family: a replacement family (a different family type, such as a bundled real
            dataset), used instead of ``changes`` when set.
        kind: "id", "cvpr" (the CVPR 2024 shifts) or "natural".
    """

    name: str
    description: str
    changes: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    family: ProblemFamily | None = None
    kind: str = "natural"

    def apply(self, base: ProblemFamily) -> ProblemFamily:
        """The family this split samples from, given the training family ``base``."""
        if self.family is not None:
            return self.family.replace(x0_shift=base.x0_shift, objective_shift=base.objective_shift)
        return base.replace(**self.changes) if self.changes else base
