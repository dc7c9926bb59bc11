"""The scenarios of Song, Wang, Li, Liu, Xu, *A Learning-only Method for Multi-Cell Multi-User
MIMO Sum Rate Maximization*, IEEE INFOCOM 2024 (§VI-A, Table II), after Zhao, Lu, Shi, Luo,
*Rethinking WMMSE: Can Its Complexity Scale Linearly With the Number of BS Antennas?*,
IEEE TSP 2023.

Geometry: B = ``cells`` BSs on a hexagonal grid, the central one at the origin, neighbours
``inter_bs_distance`` km apart (2.8 km: small inter-cell interference, 0.5 km: large).
The ``users`` UEs of cell k are uniform (by area) in the annulus of radii
``min_distance_km`` = 0.1 and ``max_distance_km`` = 0.3 around BS k (the paper says "uniform
at 0.1-0.3 km from the serving BS"; area-uniform is our reading).

Channels: every entry of H_{ki,j} (BS j -> user (k, i), N x M) is CN(0, 1) times
10^(-G / 20) with the path loss G = 128.1 + 37.6 log10(dist_km) dB of that link.

Noise (one per cell, from the channels of the instance):

    sigma_k^2 = 10^((1/U) sum_u log10(||H_{ku,k}||_F^2 / N)) * 10^(-SNR / 10),   SNR = 5 dB,

the geometric mean over the cell's users of the per-receive-antenna gain of their direct
channel, divided by the SNR. Power budget P = 10 W per BS, d = N streams per user.

The instances fold the per-cell noise into the channels (the paper's noise
normalisation, H_{ki,j} <- H_{ki,j} / sigma_k, and noise 1): user (k, i)'s rate
log det(I + S S^H J^{-1}) is unchanged when S and J^{1/2} are divided by sigma_k, so the
problem is exactly the same, with O(1) numbers instead of gains of ~1e-13.
``InfocomMimoFamily.sample_raw`` returns the unfolded channels, the noise and the geometry.
"""

from __future__ import annotations

import dataclasses
import math
from typing import ClassVar

import torch
from torch import Tensor

from l2o.problems.mimo.channel import direct_channels, pack, zero_forcing
from l2o.problems.mimo.family import MimoFamily, _uniform_in_annulus, hexagonal_grid
from l2o.problems.mimo.instances import MimoInstances
from l2o.problems.splits import Split

__all__ = ["path_loss_db", "cell_noise", "zf_equal_power", "InfocomMimoFamily", "INFOCOM_SCALES"]

#: Table II of the paper: scale -> (B, U, N_t, N_r).
INFOCOM_SCALES: dict[str, tuple[int, int, int, int]] = {
    "small": (2, 4, 8, 2), "moderate": (2, 8, 16, 2), "large": (2, 16, 32, 2),
}


def path_loss_db(distance_km: Tensor) -> Tensor:
    """G = 128.1 + 37.6 log10(distance in km), in dB (3GPP macro-cell path loss).

    >>> float(path_loss_db(torch.tensor(1.0, dtype=torch.float64)))
    128.1
    >>> round(float(path_loss_db(torch.tensor(0.1, dtype=torch.float64))), 10)  # 128.1 - 37.6
    90.5
    """
    return 128.1 + 37.6 * torch.log10(distance_km)


def cell_noise(H: Tensor, snr_db: float) -> Tensor:
    """Per-cell noise of the paper: ``(B, K, I, K, N, M)`` channels -> ``(B, K)`` sigma_k^2 =
    10^(mean_u log10(||H_{ku,k}||_F^2 / N)) 10^(-snr_db / 10).

    >>> H = torch.ones(1, 1, 2, 1, 2, 4, dtype=torch.complex128)  # ||H||_F^2 / N = 4 for both users
    >>> float(cell_noise(H, 10.0)[0, 0])  # 4 / 10
    0.4
    """
    gain = direct_channels(H).abs().square().sum((-2, -1)) / H.shape[-2]  # (B, K, I)
    return 10.0 ** (torch.log10(gain).mean(-1)) * 10.0 ** (-snr_db / 10.0)


def zf_equal_power(H: Tensor, streams: int, budget: Tensor) -> Tensor:
    """The paper's start: zero-forcing (``channel.zero_forcing``, needs M >= I d) with equal
    power, every user's precoder scaled to ||V_{ki}||_F^2 = P_k / I. ``(B, n)`` packed.

    >>> from l2o.problems.mimo import unpack
    >>> problem = InfocomMimoFamily(users=2, tx_antennas=4).sample(3, generator=0)
    >>> V = unpack(zf_equal_power(problem.H, 2, problem.budget), problem.precoder_shape)
    >>> power = V.abs().square().sum((-2, -1))[0]  # P / I = 10 / 2 for every user
    >>> power.shape, bool(torch.allclose(power, torch.full_like(power, 5.0), rtol=1e-12))
    (torch.Size([2, 2]), True)
    """
    B, K, I, _, N, M = H.shape
    x = zero_forcing(H, streams, budget)
    V = torch.view_as_complex(x.reshape(B, K, I, M, streams, 2))
    p = V.abs().square().sum((-2, -1))
    scale = torch.where(p > 0, (budget[:, :, None] / I / torch.where(p > 0, p, torch.ones_like(p))).sqrt(),
                        torch.zeros_like(p))
    return pack(V * scale.to(V.dtype)[..., None, None])


@dataclasses.dataclass(frozen=True)
class InfocomMimoFamily(MimoFamily):
    """The multi-cell MIMO scenarios of the INFOCOM 2024 paper (see the module docstring).

    Fields of ``MimoFamily`` (``cells`` B, ``users`` U, ``tx_antennas`` N_t,
    ``rx_antennas`` N_r, ``streams`` d = N_r, ``power`` P = 10) plus ``inter_bs_distance``
    (km, 2.8 or 0.5 in the paper), ``min_distance_km`` / ``max_distance_km`` (0.1 / 0.3)
    and ``snr_db`` (5). ``noise`` must stay 1: the per-cell noise is folded into the
    channels. The other geometric fields of ``MimoFamily`` are unused.

    Example (the paper's small scale):
        >>> from l2o.problems.mimo.infocom import InfocomMimoFamily
        >>> family = InfocomMimoFamily(cells=2, users=4, tx_antennas=8, rx_antennas=2, streams=2)
        >>> problem = family.sample(5, generator=0)
        >>> problem.H.shape, float(problem.noise[0])  # H[b, k, i, j]: BS j -> user (k, i), noise folded
        (torch.Size([5, 2, 4, 2, 2, 8]), 1.0)
        >>> raw = family.sample_raw(5, generator=0)
        >>> sorted(raw)
        ['H', 'bs', 'distance_km', 'noise', 'users']
    """

    cells: int = 2
    users: int = 4
    tx_antennas: int = 8
    rx_antennas: int = 2
    streams: int = 2
    power: float = 10.0
    noise: float = 1.0
    channel: str = "infocom"
    CHANNELS: ClassVar[tuple[str, ...]] = ("infocom",)
    inter_bs_distance: float = 2.8
    min_distance_km: float = 0.1
    max_distance_km: float = 0.3
    snr_db: float = 5.0

    #: ``l2o eval``'s baselines: WMMSE (converging), the paper's WMMSE and the linear precoders.
    baselines = smooth_baselines = ("wmmse", "wmmse_paper", "mrt", "zf", "rzf")

    def natural_splits(self) -> list[Split]:
        """Other user counts and cells (transfer without retraining) and the other
        interference level (2.8 km <-> 0.5 km)."""
        out = [Split(f"users_{u}", f"{u} users per cell", {"users": u})
               for u in sorted({max(1, self.users // 2), 2 * self.users}) if u != self.users]
        out.append(Split(f"cells_{self.cells + 1}", f"{self.cells + 1} cells", {"cells": self.cells + 1}))
        other = 0.5 if self.inter_bs_distance != 0.5 else 2.8
        out.append(Split(f"distance_{other:g}km", f"inter-BS distance {other:g} km", {"inter_bs_distance": other}))
        return out

    def validate(self) -> None:
        super().validate()  # sizes, power, weights, shifts; channel in CHANNELS
        if self.noise != 1.0:
            raise ValueError(f"{self.name}: noise must be 1 (the per-cell noise is folded into the channels; "
                             f"set snr_db instead), got {self.noise!r}")
        for f in ("inter_bs_distance", "min_distance_km", "max_distance_km"):
            self._check_real(f)
        v = self.snr_db
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise ValueError(f"{self.name}: snr_db must be a finite number, got {v!r}")
        if not self.min_distance_km < self.max_distance_km:
            raise ValueError(f"{self.name}: min_distance_km must be < max_distance_km = {self.max_distance_km}, "
                             f"got {self.min_distance_km}")

    def base_stations(self) -> Tensor:
        """``(K, 2)`` BS positions in km (hexagonal grid, ``inter_bs_distance`` apart, BS 0 at 0)."""
        return hexagonal_grid(self.cells, float(self.inter_bs_distance))

    def sample_raw(self, batch_size: int, generator: int | torch.Generator | None = None) -> dict[str, Tensor]:
        """The unfolded draw, float64: ``H`` ``(B, K, I, K, N, M)`` (path loss included),
        ``noise`` ``(B, K)`` sigma_k^2, ``users`` ``(B, K, I, 2)`` positions (km), ``bs``
        ``(K, 2)``, ``distance_km`` ``(B, K, I, K)`` (user (k, i) to BS j)."""
        g = generator if isinstance(generator, torch.Generator) else torch.Generator().manual_seed(
            0 if generator is None else int(generator))
        K, I, N, M = self.cells, self.users, self.rx_antennas, self.tx_antennas
        shape = (batch_size, K, I, K, N, M)
        re = torch.randn(shape, generator=g, dtype=torch.float64)
        im = torch.randn(shape, generator=g, dtype=torch.float64)
        small_scale = torch.complex(re, im) / math.sqrt(2)
        bs = self.base_stations()
        users = bs[None, :, None, :] + _uniform_in_annulus((batch_size, K, I), self.min_distance_km,
                                                           self.max_distance_km, g)
        dist = torch.linalg.vector_norm(users.unsqueeze(-2) - bs, dim=-1)  # (B, K, I, K)
        amplitude = 10.0 ** (-path_loss_db(dist) / 20.0)
        H = small_scale * amplitude[..., None, None]
        return {"H": H, "noise": cell_noise(H, float(self.snr_db)), "users": users, "bs": bs, "distance_km": dist}

    def sample_instances(self, batch_size: int, g: torch.Generator) -> MimoInstances:
        raw = self.sample_raw(batch_size, g)
        H = raw["H"] / raw["noise"].sqrt()[:, :, None, None, None, None]
        K, I = self.cells, self.users
        weights = None if self.weights is None else torch.tensor(self.weights, dtype=torch.float64).reshape(K, I)
        return MimoInstances(H, self.streams, 1.0, float(self.power), weights, float(self.x0_shift))
