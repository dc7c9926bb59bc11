"""``l2o.problems.mimo.family``: MimoFamily, its channel models and presets.

The geometric channel model is checked against a replay of its draws (path loss exactly
(d / R)^-exponent) and statistically; field validation names the field.
"""

from __future__ import annotations

import math

import pytest
import torch

import l2o
from l2o.problems import MimoFamily, make_generator
from l2o.registry import PRESETS, make_family

SMALL = MimoFamily(cells=3, users=2, tx_antennas=4, rx_antennas=2, streams=2, power=10.0, noise=1.0)


def test_same_seed_same_channels_and_dtypes():
    a, b, c = SMALL.sample(5, 3), SMALL.sample(5, 3), SMALL.sample(5, 4)
    assert torch.equal(a.H, b.H) and not torch.equal(a.H, c.H)
    f32 = SMALL.sample(5, 3, dtype=torch.float32)
    assert f32.H.dtype == torch.complex64 and f32.noise.dtype == torch.float32 and f32.dtype == torch.float32
    assert torch.equal(f32.H, a.H.to(torch.complex64))
    x = a.initial_point()
    torch.testing.assert_close(f32.sum_rate(x.float()).double(), a.sum_rate(x), rtol=1e-5, atol=0)
    # the channels are CN(0, 1): E|h|^2 = 1, E h = 0, real and imaginary parts of variance 1/2
    H = SMALL.sample(400, 0).H
    assert abs(float(H.abs().square().mean()) - 1.0) < 0.02
    assert abs(float(H.real.square().mean()) - 0.5) < 0.01 and abs(complex(H.mean())) < 0.01


def _replay_positions(fam: MimoFamily, batch: int, seed: int) -> torch.Tensor:
    g = make_generator(seed)
    shape = (batch, fam.cells, fam.users, fam.cells, fam.rx_antennas, fam.tx_antennas)
    torch.randn(shape, generator=g, dtype=torch.float64)
    torch.randn(shape, generator=g, dtype=torch.float64)
    return fam.drop_users(batch, g)


@pytest.mark.parametrize("layout", ["hexagonal", "circular"])
def test_geometric_channel_is_exact_path_loss_times_rayleigh(layout):
    """Same seed: H_geometric = sqrt((dist / R)^-exponent) H_rayleigh, link by link; users
    are in their cell (hexagonal: closer to their own BS than to any other)."""
    fam = MimoFamily(cells=7, users=3, tx_antennas=2, rx_antennas=2, streams=1, channel="geometric", layout=layout,
                     cell_radius=200.0, min_distance=20.0, path_loss_exponent=3.5)
    geo = fam.sample(6, 11)
    ray = fam.replace(channel="rayleigh").sample(6, 11)
    pos = _replay_positions(fam, 6, 11)
    bs = fam.base_stations()
    dist = torch.linalg.vector_norm(pos.unsqueeze(-2) - bs, dim=-1)  # (B, K, I, K)
    own = torch.diagonal(dist, dim1=1, dim2=3)
    assert bool((own >= 20.0).all()) and bool((own <= 200.0 + 1e-9).all())
    if layout == "hexagonal":
        assert torch.equal(dist.argmin(-1), torch.arange(7).reshape(1, 7, 1).expand(6, 7, 3))
    beta = (dist.clamp(min=20.0) / 200.0) ** -3.5
    torch.testing.assert_close(geo.H, ray.H * beta.sqrt()[..., None, None], rtol=1e-12, atol=0)
    # the grid: 7 cells = centre + first ring, neighbours sqrt(3) R apart
    d_bs = torch.linalg.vector_norm(bs[1:] - bs[0], dim=-1)
    torch.testing.assert_close(d_bs, torch.full((6,), math.sqrt(3) * 200.0, dtype=torch.float64))


def test_geometric_far_users_are_weaker_with_shadowing():
    """Statistical: with 8 dB shadowing, users in the outer half of their cell have a mean
    own-channel gain (in dB) well below the inner ones, and cross-cell links are weaker
    than own links on average."""
    fam = MimoFamily(cells=3, users=4, tx_antennas=2, rx_antennas=2, streams=1, channel="geometric",
                     shadowing_db=8.0)
    B = 300
    p = fam.sample(B, 5)
    pos = _replay_positions(fam, B, 5)
    dist = torch.linalg.vector_norm(pos - fam.base_stations()[None, :, None, :], dim=-1)  # own BS, (B, K, I)
    gain_db = 10 * torch.log10(torch.diagonal(p.H, dim1=1, dim2=3).abs().square().mean((-3, -2)).permute(0, 2, 1))
    inner = gain_db[dist < 0.5 * fam.cell_radius].mean()
    outer = gain_db[dist > 0.7 * fam.cell_radius].mean()
    assert float(inner - outer) > 10.0  # path loss alone: 37.6 log10 of the distance ratio
    link_db = 10 * torch.log10(p.H.abs().square().mean((-2, -1)))  # (B, K, I, K)
    own_db = torch.diagonal(link_db, dim1=1, dim2=3).mean()
    eye = torch.eye(3, dtype=torch.bool)[None, :, None, :].expand_as(link_db)
    assert float(own_db - link_db[~eye].mean()) > 10.0


@pytest.mark.parametrize(
    "changes,field",
    [
        ({"cells": 0}, "cells"), ({"users": -1}, "users"), ({"tx_antennas": 2.5}, "tx_antennas"),
        ({"rx_antennas": 0}, "rx_antennas"), ({"streams": 3}, "streams"), ({"power": 0.0}, "power"),
        ({"power": float("inf")}, "power"), ({"noise": -1.0}, "noise"), ({"weights": (1.0, 2.0)}, "weights"),
        ({"weights": (1.0, -1.0, 1.0, 1.0, 1.0, 1.0)}, "weights"), ({"weights": (0.0,) * 6}, "weights"),
        ({"channel": "ricean"}, "channel"), ({"layout": "square"}, "layout"), ({"cell_radius": 0.0}, "cell_radius"),
        ({"min_distance": 600.0}, "min_distance"), ({"path_loss_exponent": 0.0}, "path_loss_exponent"),
        ({"shadowing_db": -1.0}, "shadowing_db"), ({"objective_shift": 1.0}, "objective_shift"),
        ({"x0_shift": float("nan")}, "x0_shift"),
    ],
)
def test_bad_fields_raise_value_errors_naming_the_field(changes, field):
    with pytest.raises(ValueError, match=rf"mimo: {field}"):
        SMALL.replace(**changes)


def test_presets_are_registered():
    assert "mimo" in l2o.FAMILIES
    small, medium, single = (PRESETS[n][0] for n in ("mimo_small", "mimo_medium", "mimo_single_cell_30"))
    assert (small.cells, small.users, small.tx_antennas, small.rx_antennas, small.streams) == (3, 2, 4, 2, 2)
    assert (medium.cells, medium.users, medium.tx_antennas) == (3, 4, 8)
    assert (single.cells, single.users, single.tx_antennas, single.rx_antennas, single.streams) == (1, 30, 64, 2, 2)
    assert (single.power, single.noise, single.channel) == (100.0, 1.0, "rayleigh")
    assert make_family("mimo", users=3).users == 3
    p = make_family("mimo_single_cell_30").sample(1, 0)
    assert p.dim == 2 * 30 * 64 * 2
