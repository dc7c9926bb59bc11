"""``l2o.zeroth_order.estimate_gradient`` against the exact gradient.

On a quadratic f(x) = 1/2 x'Qx + c'x the gradient a = Qx + c is known in closed form,
Gaussian smoothing changes nothing (f_mu = f + const), central differences are exact and
forward differences carry the exact error (mu/2) u'Qu. The statistical checks use many
independent estimates drawn in one call (``independent=True``) and bounds that a correct
estimator passes and the two torchopt bugs (``../shared/ECOSYSTEM.md`` §1.4) fail.
"""

from __future__ import annotations

import math

import pytest
import torch

from l2o.zeroth_order import CountingObjective, QueryAccounting, draw_directions, estimate_gradient
from l2o.zeroth_order.estimators import dual_directions

N_DIM = 8


def quadratic(n: int = N_DIM, seed: int = 0):
    """(fn, Q, c): f(X) = 1/2 X Q X' + X c row-wise, Q positive definite with condition number ~10."""
    g = torch.Generator().manual_seed(seed)
    M = torch.randn(n, n, generator=g, dtype=torch.float64)
    Qo, _ = torch.linalg.qr(M)
    Q = (Qo * torch.linspace(1.0, 10.0, n, dtype=torch.float64)) @ Qo.T
    c = torch.randn(n, generator=g, dtype=torch.float64)

    def fn(X):
        return 0.5 * ((X @ Q) * X).sum(-1) + X @ c

    return fn, Q, c


def point(n: int = N_DIM, seed: int = 1) -> torch.Tensor:
    return torch.randn(1, n, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def max_z(samples: torch.Tensor, target: torch.Tensor, var: torch.Tensor | None = None) -> float:
    """Largest |z| over coordinates of the sample mean of ``samples`` (N, n) against ``target``;
    ``var`` the exact per-coordinate variance of one sample, else the sample variance."""
    N = samples.shape[0]
    v = samples.var(dim=0) if var is None else var
    return float(((samples.mean(0) - target).abs() / (v / N).sqrt()).max())


#: |z| bound for 8 coordinates: P(|z| > 4.5) = 6.8e-6 per coordinate for a correct estimator.
Z = 4.5


# ----- unbiasedness ------------------------------------------------------------------------------
@pytest.mark.parametrize("differences", ["central", "forward"])
def test_avg_gaussian_is_unbiased_with_the_exact_variance(differences):
    """ZO-Avg, Gaussian directions: E g = grad f on a quadratic (forward differences too: the
    error (mu/2) E[(u'Qu) u] vanishes by symmetry); per-coordinate variance (||a||^2 + a_j^2)/q."""
    fn, Q, c = quadratic()
    x, q, N = point(), 2, 20000
    a = (x @ Q + c)[0]
    est = estimate_gradient(fn, x.expand(N, -1), q, "avg", "gaussian", differences, 1e-3,
                            torch.Generator().manual_seed(2))
    var = (a.square().sum() + a.square()) / q
    assert max_z(est.grad, a, var) < Z


@pytest.mark.parametrize("directions", ["sphere", "orthonormal", "coordinate"])
def test_avg_is_unbiased_for_every_direction_kind(directions):
    fn, Q, c = quadratic()
    x, q, N = point(), 3, 20000
    a = (x @ Q + c)[0]
    est = estimate_gradient(fn, x.expand(N, -1), q, "avg", directions, "central", 1e-3,
                            torch.Generator().manual_seed(3))
    assert max_z(est.grad, a) < Z


def torchopt_forward_bugs(fn, x, q, mu, generator, bug):
    """The forward estimator of torchopt at 960fb0a, replicated as a loop: 'overwrite' differences
    each sample against the previous difference instead of f(x); 'sigma' multiplies by mu."""
    base = fn(x)
    out, g = base, torch.zeros_like(x)
    for _ in range(q):
        u = torch.randn(x.shape, generator=generator, dtype=x.dtype)
        noisy = fn(x + mu * u)
        if bug == "overwrite":
            out = noisy - out
            g = g + (out / mu).unsqueeze(-1) * u
        else:
            g = g + ((noisy - base) * mu).unsqueeze(-1) * u
    return g / q


@pytest.mark.parametrize("bug", ["overwrite", "sigma"])
def test_the_unbiasedness_check_rejects_torchopts_bugs(bug):
    """The check above can fail: both bugs of torchopt's estimator are far outside its bound."""
    fn, Q, c = quadratic()
    x, q, N = point(), 2, 20000
    a = (x @ Q + c)[0]
    g = torchopt_forward_bugs(fn, x.expand(N, -1), q, 1e-3, torch.Generator().manual_seed(2), bug)
    assert max_z(g, a, (a.square().sum() + a.square()) / q) > 10 * Z


# ----- variance ----------------------------------------------------------------------------------
def expected_error(directions: str, n: int, q: int) -> float:
    """E||g - a||^2 / ||a||^2 of ZO-Avg with central differences on a quadratic."""
    return {"gaussian": (n + 1) / q, "sphere": (n - 1) / q}.get(directions, n / q - 1)


@pytest.mark.parametrize("directions,queries", [("gaussian", 1), ("gaussian", 4), ("gaussian", 16),
                                                ("sphere", 1), ("sphere", 4),
                                                ("orthonormal", 1), ("orthonormal", 2),
                                                ("coordinate", 2), ("coordinate", 6)])
def test_avg_variance_scales_like_n_plus_one_over_q(directions, queries):
    """E||g - grad f||^2 = (n + 1)||a||^2 / q (Gaussian), (n - 1)/q (sphere), n/q - 1 (orthonormal,
    coordinate), within 4 standard errors of the mean over 20000 estimates; the standard
    error is below 4% of the value, so a wrong power of q or a wrong constant fails."""
    fn, Q, c = quadratic()
    x, N = point(), 20000
    a = (x @ Q + c)[0]
    est = estimate_gradient(fn, x.expand(N, -1), queries, "avg", directions, "central", 1e-3,
                            torch.Generator().manual_seed(4))
    err = (est.grad - a).square().sum(-1) / a.square().sum()
    expected = expected_error(directions, N_DIM, queries)
    se = float(err.std() / math.sqrt(N))
    assert se < 0.04 * expected
    assert abs(float(err.mean()) - expected) < 4 * se, (float(err.mean()), expected)


def test_avg_at_q_equals_n_is_exact_with_frames():
    """Orthonormal or coordinate frames with q = n: ZO-Avg is the full gradient (variance 0)."""
    fn, Q, c = quadratic()
    x = point().expand(5, -1)
    a = x @ Q + c
    for directions in ["orthonormal", "coordinate"]:
        est = estimate_gradient(fn, x, N_DIM, "avg", directions, "central", 1e-3, torch.Generator().manual_seed(5))
        assert torch.allclose(est.grad, a, rtol=1e-10, atol=1e-10)


# ----- ZO-Align: projection identity -------------------------------------------------------------------
def projection(U: torch.Tensor) -> torch.Tensor:
    """Orthogonal projector onto span of the rows of U (q, n), by the pseudo-inverse."""
    return torch.linalg.pinv(U) @ U


@pytest.mark.parametrize("directions", ["orthonormal", "gaussian", "sphere", "coordinate"])
def test_align_central_is_the_projection_of_the_gradient(directions):
    """ZO-Align with central differences on a quadratic is exactly P_U grad f (orthonormal:
    U'U grad f / n, with U's rows of norm sqrt(n))."""
    fn, Q, c = quadratic()
    B, q = 6, 3
    x = torch.randn(B, N_DIM, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    a = x @ Q + c
    est = estimate_gradient(fn, x, q, "align", directions, "central", 1e-2, torch.Generator().manual_seed(7))
    U = draw_directions(directions, q, N_DIM, B, torch.Generator().manual_seed(7))  # the same draws
    for b in range(B):
        assert torch.allclose(est.grad[b], projection(U[b]) @ a[b], rtol=1e-10, atol=1e-10)
        if directions == "orthonormal":
            assert torch.allclose(est.grad[b], U[b].T @ (U[b] @ a[b]) / N_DIM, rtol=1e-10, atol=1e-10)


def test_align_forward_error_is_order_mu():
    """Forward differences: delta_i = u_i'a + (mu/2) u_i'Qu_i exactly, so g - P_U a =
    (mu/2) sum_i (u_i'Qu_i) v_i: matches to rounding, and halves when mu halves."""
    fn, Q, c = quadratic()
    x, q = point(), 4
    a = (x @ Q + c)[0]
    errors = []
    for mu in [1e-2, 5e-3, 2.5e-3]:
        est = estimate_gradient(fn, x, q, "align", "orthonormal", "forward", mu, torch.Generator().manual_seed(8))
        U = draw_directions("orthonormal", q, N_DIM, 1, torch.Generator().manual_seed(8))
        V = dual_directions(U, "align")[0]
        curvature = ((U[0] @ Q) * U[0]).sum(-1)
        predicted = projection(U[0]) @ a + (mu / 2) * (curvature @ V)
        assert torch.allclose(est.grad[0], predicted, rtol=1e-8, atol=1e-9)
        errors.append(float(torch.linalg.vector_norm(est.grad[0] - projection(U[0]) @ a)))
    assert errors[0] > 0
    assert errors[0] / errors[1] == pytest.approx(2.0, rel=1e-4)
    assert errors[1] / errors[2] == pytest.approx(2.0, rel=1e-4)


@pytest.mark.parametrize("directions", ["orthonormal", "gaussian", "sphere", "coordinate"])
def test_align_at_q_equals_n_is_the_full_gradient(directions):
    fn, Q, c = quadratic()
    x = torch.randn(4, N_DIM, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    a = x @ Q + c
    est = estimate_gradient(fn, x, N_DIM, "align", directions, "central", 1e-2, torch.Generator().manual_seed(10))
    assert torch.allclose(est.grad, a, rtol=1e-9, atol=1e-9)
    assert est.evaluations == 2 * N_DIM


def test_align_with_more_queries_than_dimensions_is_least_squares():
    """q > n Gaussian directions: the least-squares fit of the linear model, i.e. grad f exactly."""
    fn, Q, c = quadratic()
    x = point()
    est = estimate_gradient(fn, x, 3 * N_DIM, "align", "gaussian", "central", 1e-2, torch.Generator().manual_seed(11))
    assert torch.allclose(est.grad, x @ Q + c, rtol=1e-9, atol=1e-9)


def test_non_quadratic_against_autograd():
    """Rosenbrock (not quadratic) at q = n: central differences agree with autograd to O(mu^2)."""
    def rosen(X):
        return (100 * (X[:, 1:] - X[:, :-1] ** 2) ** 2 + (1 - X[:, :-1]) ** 2).sum(-1)

    x = torch.randn(3, 6, generator=torch.Generator().manual_seed(12), dtype=torch.float64).requires_grad_()
    exact = torch.autograd.grad(rosen(x).sum(), x)[0]
    x = x.detach()
    for rule in ["align", "avg"]:
        est = estimate_gradient(rosen, x, 6, rule, "orthonormal", "central", None, torch.Generator().manual_seed(13))
        assert torch.allclose(est.grad, exact, rtol=1e-7, atol=1e-6 * float(exact.abs().max()))


# ----- one call, counting, layout ----------------------------------------------------------------
@pytest.mark.parametrize("differences,base", [("forward", "shared"), ("forward", "per_query"), ("central", "shared")])
@pytest.mark.parametrize("rule", ["avg", "align"])
def test_one_call_and_the_evaluation_count(differences, base, rule):
    fn, Q, c = quadratic()
    counted = CountingObjective(fn)
    B, q = 5, 3
    x = torch.randn(B, N_DIM, generator=torch.Generator().manual_seed(14), dtype=torch.float64)
    est = estimate_gradient(counted, x, q, rule, "gaussian", differences, 1e-4, torch.Generator().manual_seed(15),
                            base=base)
    expected = QueryAccounting(differences, base).evaluations(q)
    assert counted.calls == 1
    assert counted.evaluations == expected * B == est.evaluations * B


def test_per_query_base_equals_shared_base_without_noise():
    fn, *_ = quadratic()
    x = point()
    a = estimate_gradient(fn, x, 3, "avg", "gaussian", "forward", 1e-4, torch.Generator().manual_seed(16))
    b = estimate_gradient(fn, x, 3, "avg", "gaussian", "forward", 1e-4, torch.Generator().manual_seed(16),
                          base="per_query")
    assert torch.allclose(a.grad, b.grad, rtol=1e-12, atol=1e-12)


def test_shared_draws_do_not_depend_on_the_batch():
    """independent=False: every instance sees the same directions, so an instance's estimate
    is bitwise the same alone or in a batch (for a row-wise f without a GEMM, whose rounding may
    depend on the number of rows); independent=True draws per instance."""
    d = torch.linspace(1.0, 3.0, N_DIM, dtype=torch.float64)

    def fn(X):
        return (X * (d * X + 1.0)).sum(-1)

    x = torch.randn(4, N_DIM, generator=torch.Generator().manual_seed(17), dtype=torch.float64)
    batch = estimate_gradient(fn, x, 3, "align", "gaussian", "central", None, torch.Generator().manual_seed(18),
                              independent=False)
    for b in range(4):
        alone = estimate_gradient(fn, x[b:b + 1], 3, "align", "gaussian", "central", None,
                                  torch.Generator().manual_seed(18), independent=False)
        assert torch.equal(alone.grad[0], batch.grad[b])
    same = x[:1].expand(4, -1)
    indep = estimate_gradient(fn, same, 1, "avg", "gaussian", "central", 1e-3, torch.Generator().manual_seed(19))
    assert not torch.allclose(indep.grad[0], indep.grad[1])


def test_per_instance_mu_and_float32():
    fn, Q, c = quadratic()
    x = torch.randn(3, N_DIM, generator=torch.Generator().manual_seed(20), dtype=torch.float64)
    mu = torch.tensor([1e-2, 1e-3, 1e-4], dtype=torch.float64)
    est = estimate_gradient(fn, x, N_DIM, "align", "orthonormal", "central", mu, torch.Generator().manual_seed(21))
    assert torch.allclose(est.grad, x @ Q + c, rtol=1e-8, atol=1e-8)
    Q32, c32 = Q.float(), c.float()
    est32 = estimate_gradient(lambda X: 0.5 * ((X @ Q32) * X).sum(-1) + X @ c32, x.float(), N_DIM, "align",
                              "orthonormal", "central", None, torch.Generator().manual_seed(21))
    assert est32.grad.dtype == torch.float32
    assert torch.allclose(est32.grad.double(), x @ Q + c, rtol=1e-3, atol=1e-3)


# ----- bad input ---------------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs,match", [
    ({"queries": 0}, r"queries must be an integer >= 1, got 0"),
    ({"queries": 9, "directions": "orthonormal"}, r"queries must be <= the dimension n = 8 for orthonormal"),
    ({"queries": 9, "directions": "coordinate"}, r"queries must be <= the dimension n = 8 for coordinate"),
    ({"mu": 0.0}, r"mu must be > 0 and finite, got 0.0"),
    ({"mu": -1e-3}, r"mu must be > 0"),
    ({"mu": float("nan")}, r"mu must be > 0"),
    ({"rule": "mean"}, r"rule must be one of avg, align; got 'mean'"),
    ({"directions": "rademacher"}, r"directions must be one of gaussian, sphere, orthonormal, coordinate"),
    ({"differences": "backward"}, r"differences must be one of forward, central; got 'backward'"),
    ({"base": "reuse"}, r"base must be one of shared, per_query; got 'reuse'"),
])
def test_bad_input_is_one_clear_line(kwargs, match):
    fn, *_ = quadratic()
    args = {"queries": 2, "rule": "avg", "directions": "gaussian", "differences": "forward", "mu": 1e-3, **kwargs}
    with pytest.raises(ValueError, match=match) as e:
        estimate_gradient(fn, point(), args.pop("queries"), **args)
    assert "\n" not in str(e.value)


def test_bad_fn_output_and_bad_x():
    with pytest.raises(ValueError, match=r"fn must map \(6, 8\) points to \(6,\) values, got \(6, 1\)"):
        estimate_gradient(lambda X: X[:, :1], point().expand(2, -1), 2, "avg", "gaussian", "forward", 1e-3)
    with pytest.raises(ValueError, match=r"x must have shape \(B, n\)"):
        estimate_gradient(lambda X: X.sum(-1), torch.zeros(8), 2)
