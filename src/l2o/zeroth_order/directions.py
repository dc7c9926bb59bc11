"""Random query directions for zeroth-order gradient estimates.

Every kind is normalised so that a direction ``u`` has ``E[u u^T] = I_n`` (for the
orthonormal and coordinate kinds this holds for each row of a frame, whose rows are
drawn jointly):

* ``"gaussian"``: ``u ~ N(0, I_n)`` (Nesterov and Spokoiny, *Random gradient-free
  minimization of convex functions*, FoCM 2017);
* ``"sphere"``: ``u`` uniform on the sphere of radius ``sqrt(n)`` (Flaxman, Kalai,
  McMahan, SODA 2005; Duchi et al., IEEE Trans. IT 2015);
* ``"orthonormal"``: ``sqrt(n)`` times the rows of a Haar-distributed orthonormal
  ``q``-frame (QR of a Gaussian matrix with the signs of R's diagonal fixed,
  Mezzadri, *Notices AMS* 2007); needs ``q <= n``;
* ``"coordinate"``: ``sqrt(n)`` times ``q`` distinct standard basis vectors drawn
  uniformly; ``q = n`` gives every coordinate (coordinate finite differences).

With this normalisation the average ``(1/q) sum_i (u_i^T g) u_i`` is unbiased for ``g``
with every kind, and a step ``mu u`` has length about ``mu sqrt(n)``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

#: The direction kinds ``draw_directions`` knows.
DIRECTIONS = ("gaussian", "sphere", "orthonormal", "coordinate")
#: Kinds whose ``q`` directions are distinct rows of one frame, so ``q <= n``.
FRAMES = ("orthonormal", "coordinate")


def standard_normal(shape: tuple[int, ...], generator: torch.Generator | None = None,
                    dtype: torch.dtype = torch.float64, device: torch.device | str = "cpu") -> Tensor:
    """N(0, 1) samples of ``shape``. On CPU in float64 by the Box-Muller transform of uniform
    draws (``torch.randn`` has no vectorised float64 CPU path and is about 5x slower there,
    which dominates an iteration with few queries); elsewhere ``torch.randn``.

    >>> standard_normal((2, 3), torch.Generator().manual_seed(0)).shape
    torch.Size([2, 3])
    """
    device = torch.device(device)
    if dtype != torch.float64 or device.type != "cpu":
        return torch.randn(shape, generator=generator, dtype=dtype, device=device)
    count = math.prod(shape)
    half = (count + 1) // 2
    u = torch.rand(2, half, generator=generator, dtype=dtype, device=device)
    r = torch.sqrt(-2.0 * torch.log1p(-u[0]))  # 1 - u in (0, 1]: finite
    theta = (2.0 * math.pi) * u[1]
    return torch.cat([r * torch.cos(theta), r * torch.sin(theta)])[:count].reshape(shape)


def check_directions(directions: str, queries: int, dim: int | None = None) -> None:
    """``ValueError`` for an unknown kind, ``queries < 1``, or ``queries > dim`` for a frame kind."""
    if directions not in DIRECTIONS:
        raise ValueError(f"directions must be one of {', '.join(DIRECTIONS)}; got {directions!r}")
    if isinstance(queries, bool) or not isinstance(queries, int) or queries < 1:
        raise ValueError(f"queries must be an integer >= 1, got {queries!r}")
    if dim is not None and directions in FRAMES and queries > dim:
        raise ValueError(
            f"queries must be <= the dimension n = {dim} for {directions} directions (a frame has at most n "
            f"directions), got {queries}"
        )


def draw_directions(
    directions: str,
    queries: int,
    dim: int,
    batch: int = 1,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str = "cpu",
) -> Tensor:
    """``(batch, queries, dim)`` directions, each row with ``E[u u^T] = I`` (module docstring).

    ``batch = 1`` draws one set shared by a whole batch of instances. The generator must
    live on ``device``.

    >>> g = torch.Generator().manual_seed(0)
    >>> U = draw_directions("orthonormal", 3, 5, generator=g)
    >>> U.shape, torch.allclose(U[0] @ U[0].T, 5 * torch.eye(3, dtype=U.dtype))
    (torch.Size([1, 3, 5]), True)
    """
    check_directions(directions, queries, dim)
    kw = {"generator": generator, "dtype": dtype, "device": device}
    scale = math.sqrt(dim)
    if directions == "gaussian":
        return standard_normal((batch, queries, dim), **kw)
    if directions == "sphere":
        v = standard_normal((batch, queries, dim), **kw)
        return v * (scale / torch.linalg.vector_norm(v, dim=-1, keepdim=True))
    if directions == "orthonormal":
        if queries == 1:  # the QR of one column is its normalisation
            v = standard_normal((batch, 1, dim), **kw)
            return v * (scale / torch.linalg.vector_norm(v, dim=-1, keepdim=True))
        Q, R = torch.linalg.qr(standard_normal((batch, dim, queries), **kw))  # Q: (batch, n, q)
        signs = torch.sign(torch.diagonal(R, dim1=-2, dim2=-1))
        signs = torch.where(signs == 0, torch.ones_like(signs), signs)
        return scale * (Q * signs.unsqueeze(-2)).mT
    # coordinate: q distinct coordinates per set, uniformly
    idx = torch.argsort(torch.rand(batch, dim, **kw), dim=-1)[:, :queries]
    U = torch.zeros(batch, queries, dim, dtype=dtype, device=device)
    return U.scatter_(-1, idx.unsqueeze(-1), scale)
