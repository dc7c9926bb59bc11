"""The MIMO family: random multi-cell multi-user channels (``MimoFamily``) and their geometry.

Rayleigh channels, or BSs on a hexagonal grid with users dropped in their cells, path
loss and log-normal shadowing (``"geometric"``); see ``MimoFamily``.
"""

from __future__ import annotations

import dataclasses
import math
from typing import ClassVar

import torch
from torch import Tensor

from l2o.problems.family import ProblemFamily
from l2o.problems.mimo.instances import MimoInstances
from l2o.problems.splits import Split, scaled


# ----- geometry ----------------------------------------------------------------------------------
def hexagonal_grid(cells: int, spacing: float) -> Tensor:
    """``(cells, 2)`` BS positions on a hexagonal grid, ring by ring around the origin
    (1 + 6 + 12 + ...), neighbours ``spacing`` apart (sqrt(3) R for cells of radius R)."""
    pts = [(0, 0)]
    ring = 0
    while len(pts) < cells:
        ring += 1
        q, r = ring, 0  # walk the hexagonal ring of axial radius `ring`
        for dq, dr in [(-1, 1), (-1, 0), (0, -1), (1, -1), (1, 0), (0, 1)]:
            for _ in range(ring):
                pts.append((q, r))
                q, r = q + dq, r + dr
    axial = torch.tensor(pts[:cells], dtype=torch.float64)
    x = spacing * (axial[:, 0] + axial[:, 1] / 2)
    y = spacing * (math.sqrt(3) / 2) * axial[:, 1]
    return torch.stack([x, y], -1)


def _uniform_in_hexagon(shape: tuple[int, ...], radius: float, g: torch.Generator) -> Tensor:
    """``(*shape, 2)`` points uniform in a pointy-top regular hexagon of circumradius ``radius``
    centred at 0 (6 equilateral triangles; uniform in a triangle by reflection)."""
    tri = torch.randint(0, 6, shape, generator=g)
    a = torch.rand(*shape, generator=g, dtype=torch.float64)
    b = torch.rand(*shape, generator=g, dtype=torch.float64)
    flip = a + b > 1
    a, b = torch.where(flip, 1 - a, a), torch.where(flip, 1 - b, b)
    ang0 = math.pi / 6 + tri.to(torch.float64) * (math.pi / 3)
    ang1 = ang0 + math.pi / 3
    x = radius * (a * torch.cos(ang0) + b * torch.cos(ang1))
    y = radius * (a * torch.sin(ang0) + b * torch.sin(ang1))
    return torch.stack([x, y], -1)


def _uniform_in_annulus(shape: tuple[int, ...], inner: float, outer: float, g: torch.Generator) -> Tensor:
    rho = torch.sqrt(inner**2 + (outer**2 - inner**2) * torch.rand(*shape, generator=g, dtype=torch.float64))
    phi = 2 * math.pi * torch.rand(*shape, generator=g, dtype=torch.float64)
    return torch.stack([rho * torch.cos(phi), rho * torch.sin(phi)], -1)


# ----- the family ---------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class MimoFamily(ProblemFamily):
    """Random multi-cell multi-user MIMO sum-rate problems (``MimoInstances``).

    Fields: ``cells`` K, ``users`` I per cell, ``tx_antennas`` M, ``rx_antennas`` N,
    ``streams`` d <= min(M, N), ``power`` P (every BS), ``noise`` sigma^2, ``weights``
    alpha (None: all ones; else K I values, cell-major: user i of cell k at k I + i).

    Channels (``channel``):

    * ``"rayleigh"``: every entry of every H_{ki,j} i.i.d. CN(0, 1) (interfering links as
      strong as direct ones, the setting of Shi et al. 2011 and of the deep-unfolding
      literature). P / sigma^2 is the SNR per receive antenna of an isotropic transmission.
    * ``"geometric"``: BSs on a hexagonal grid (spacing sqrt(3) ``cell_radius``); the
      users of cell k are dropped uniformly in the hexagon of circumradius ``cell_radius``
      around BS k (``layout="hexagonal"``) or in the disc of that radius
      (``layout="circular"``), at least ``min_distance`` from their BS. H_{ki,j} =
      sqrt(beta) times an i.i.d. CN(0, 1) matrix (the same small-scale draw as
      ``"rayleigh"`` for the same seed), with the large-scale gain
          beta = (max(dist, min_distance) / cell_radius)^(-path_loss_exponent) * 10^(s / 10),
      s ~ N(0, shadowing_db^2) i.i.d. per link. Normalization: a user at the cell edge has
      beta = 1 (without shadowing), so P / sigma^2 is the *cell-edge* SNR per receive
      antenna; users closer to their BS are stronger (up to
      (cell_radius / min_distance)^exponent).

    ``x0_shift`` s != 0 replaces the default start (MRT) by s * 1, the initial-point
    shift of the common interface; ``objective_shift`` exists for that interface too and
    must be 0 (WMMSE works on the precoders themselves). Rates are in nats.

    Example:
        >>> import l2o
        >>> from l2o.problems import MimoFamily
        >>> family = MimoFamily(cells=2, users=2, tx_antennas=4, rx_antennas=2, streams=1, power=10.0)
        >>> problem = family.sample(3, generator=0)
        >>> problem.precoder_shape, problem.dim  # V: (K, I, M, d) complex, packed as 2 K I M d reals
        ((2, 2, 4, 1), 32)
        >>> x0 = problem.initial_point()  # MRT at full power
        >>> result = l2o.run(l2o.make_solver("wmmse"), problem, x0=x0, max_iter=20, reference=None)
        >>> bool((problem.sum_rate(result.x) > problem.sum_rate(x0)).all())  # WMMSE raises the sum-rate
        True
        >>> bool(((problem.power(result.x) - 10.0).abs() < 1e-9).all())  # every BS at its budget
        True
    """

    #: The channel models this family draws (a subclass draws its own).
    CHANNELS: ClassVar[tuple[str, ...]] = ("rayleigh", "geometric")

    cells: int = 3
    users: int = 2
    tx_antennas: int = 4
    rx_antennas: int = 2
    streams: int = 2
    power: float = 10.0
    noise: float = 1.0
    weights: tuple[float, ...] | None = None
    channel: str = "rayleigh"
    layout: str = "hexagonal"
    cell_radius: float = 500.0
    min_distance: float = 35.0
    path_loss_exponent: float = 3.76
    shadowing_db: float = 0.0
    x0_shift: float = 0.0
    objective_shift: float = 0.0

    name = "mimo"
    #: The CVPR 2024 shifts are for vector variables; precoders have their own splits.
    cvpr_shifts = False
    default_solver = "wmmse"
    #: WMMSE and the linear precoders (ZF is left out where it does not fit, M < I d).
    baselines = smooth_baselines = ("wmmse", "mrt", "zf", "rzf")
    fallback = "wmmse"
    #: Channels read by ``l2o solve -p mimo`` (and ``--checkpoint`` of a MIMO run).
    file_format = "mimo"

    def natural_splits(self) -> list[Split]:
        """Other user counts and cells (the GNN shares weights across nodes), SNR, and
        the geometric channel model."""
        out = [Split(f"users_{u}", f"{u} users per cell", {"users": u})
               for u in sorted({max(1, self.users // 2), 2 * self.users}) if u != self.users]
        out += [
            Split(f"cells_{self.cells + 2}", f"{self.cells + 2} cells", {"cells": self.cells + 2}),
            scaled("power_x10", "power", 10.0 * self.power, "power budget P (10 dB more SNR)"),
            scaled("power_div10", "power", self.power / 10.0, "power budget P (10 dB less SNR)"),
        ]
        if self.channel == "rayleigh":
            out.append(Split("geometric", "path loss and user drops in hexagonal cells", {"channel": "geometric"}))
        return out

    def _check_real(self, field: str, positive: bool = True) -> float:
        v = getattr(self, field)
        real = not isinstance(v, bool) and isinstance(v, (int, float)) and math.isfinite(v)
        if not real or (v <= 0 if positive else v < 0):
            raise ValueError(f"{self.name}: {field} must be a finite number {'>' if positive else '>='} 0, got {v!r}")
        return float(v)

    def validate(self) -> None:
        self._check_positive_int("cells", "users", "tx_antennas", "rx_antennas", "streams")
        if self.streams > min(self.tx_antennas, self.rx_antennas):
            raise ValueError(
                f"{self.name}: streams must be <= min(tx_antennas, rx_antennas) = "
                f"{min(self.tx_antennas, self.rx_antennas)}, got {self.streams}"
            )
        for f in ("power", "noise", "cell_radius", "min_distance", "path_loss_exponent"):
            self._check_real(f)
        self._check_real("shadowing_db", positive=False)
        if self.weights is not None:
            w = self.weights
            n = self.cells * self.users
            if not isinstance(w, (tuple, list)) or len(w) != n:
                raise ValueError(
                    f"{self.name}: weights must be None or a tuple of cells*users = {n} numbers, got {w!r}"
                )
            if any(isinstance(a, bool) or not isinstance(a, (int, float)) or not math.isfinite(a) or a < 0 for a in w):
                raise ValueError(f"{self.name}: weights must be finite numbers >= 0, got {w!r}")
            if not any(a > 0 for a in w):
                raise ValueError(f"{self.name}: weights must not all be 0, got {w!r}")
        if self.channel not in self.CHANNELS:
            raise ValueError(f"{self.name}: channel must be {' or '.join(map(repr, self.CHANNELS))}, "
                             f"got {self.channel!r}")
        if self.layout not in ("hexagonal", "circular"):
            raise ValueError(f"{self.name}: layout must be 'hexagonal' or 'circular', got {self.layout!r}")
        if self.min_distance >= self.cell_radius:
            raise ValueError(
                f"{self.name}: min_distance must be < cell_radius = {self.cell_radius}, got {self.min_distance}"
            )
        s = self.x0_shift
        if isinstance(s, bool) or not isinstance(s, (int, float)) or not math.isfinite(s):
            raise ValueError(f"{self.name}: x0_shift must be a finite number, got {self.x0_shift!r}")
        if self.objective_shift != 0.0:
            raise ValueError(f"{self.name}: objective_shift is not supported (must be 0), got {self.objective_shift!r}")

    def base_stations(self) -> Tensor:
        """``(K, 2)`` BS positions (geometric channels)."""
        return hexagonal_grid(self.cells, math.sqrt(3) * self.cell_radius)

    def drop_users(self, batch_size: int, g: torch.Generator) -> Tensor:
        """``(B, K, I, 2)`` user positions, uniform in their cell, >= min_distance from their BS."""
        shape = (batch_size, self.cells, self.users)
        if self.layout == "circular":
            offset = _uniform_in_annulus(shape, self.min_distance, self.cell_radius, g)
        else:
            offset = _uniform_in_hexagon(shape, self.cell_radius, g)
            bad = offset.norm(dim=-1) < self.min_distance
            while bool(bad.any()):  # rejection of the small disc around the BS
                offset = torch.where(bad.unsqueeze(-1), _uniform_in_hexagon(shape, self.cell_radius, g), offset)
                bad = offset.norm(dim=-1) < self.min_distance
        return self.base_stations()[None, :, None, :] + offset

    def large_scale_gains(self, positions: Tensor, g: torch.Generator) -> Tensor:
        """``(B, K, I, K)`` beta[b, k, i, j] of the link BS j -> user (k, i) (see the class docstring)."""
        dist = torch.linalg.vector_norm(positions.unsqueeze(-2) - self.base_stations(), dim=-1)
        beta = (dist.clamp(min=self.min_distance) / self.cell_radius) ** (-self.path_loss_exponent)
        if self.shadowing_db > 0:
            beta = beta * 10.0 ** (self.shadowing_db * torch.randn(beta.shape, generator=g, dtype=torch.float64) / 10)
        return beta

    def sample_instances(self, batch_size: int, g: torch.Generator) -> MimoInstances:
        K, I, N, M = self.cells, self.users, self.rx_antennas, self.tx_antennas
        shape = (batch_size, K, I, K, N, M)
        re = torch.randn(shape, generator=g, dtype=torch.float64)
        im = torch.randn(shape, generator=g, dtype=torch.float64)
        H = torch.complex(re, im) / math.sqrt(2)
        if self.channel == "geometric":
            beta = self.large_scale_gains(self.drop_users(batch_size, g), g)
            H = H * beta.sqrt()[..., None, None]
        weights = None if self.weights is None else torch.tensor(self.weights, dtype=torch.float64).reshape(K, I)
        return MimoInstances(H, self.streams, float(self.noise), float(self.power), weights, float(self.x0_shift))
