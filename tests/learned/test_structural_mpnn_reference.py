"""StructuralMPNN's fast forward (folded D, stacked real products, sums minus own terms, fc1 on the
sum over users) against a straightforward implementation of the model as first written: every
iterate over T iterations and the gradients of every weight, float32 and float64."""

import pytest
import torch
from torch.nn import functional as F

import l2o.learned.structural_mpnn as smp
from l2o.learned.structural_mpnn import StructuralMPNN, StructuralMPNNB, StructuralMPNNO, structural_update
from l2o.problems.mimo.channel import scale_to_budget
from l2o.problems.mimo.infocom import InfocomMimoFamily


# ----- the reference: the model's first, unfused implementation ------------------------------------------
def _cgelu(x):
    return F.gelu(x[0]), F.gelu(x[1])


def _map(f, x):
    return f(x[0]), f(x[1])


def _pairs(z):
    return z.real, z.imag


def reference_decode(m, problem, V, D):
    """The encoder-decoder as (real, imaginary) pairs: all M' d V-features, every pair's HV-features
    materialised with masks, fc1 on [z, mean of the other users' z]."""
    B, K, I, M, d = V.shape
    N = problem.rx_antennas
    net = m.fc1.fc_r.weight
    cnet = torch.complex64 if net.dtype == torch.float32 else torch.complex128
    scale = (I / problem.budget).sqrt().to(net.dtype)[:, :, None, None, None]
    Vn = V.to(cnet) * scale.to(cnet)
    Hn = (problem.H / problem.noise.sqrt().reshape(B, 1, 1, 1, 1, 1).to(problem.H.dtype)).to(cnet)
    Vp = Vn if D is None else D.mH.to(cnet) @ Vn
    vec_v = _pairs(Vp.reshape(B, K, I, m.Mx * d))
    own = _cgelu(m.v_maps[0](vec_v))
    e = _cgelu(m.v_maps[1](vec_v))
    intra = _map(lambda t: (t.sum(2, keepdim=True) - t) / max(I - 1, 1), e)
    e = _cgelu(m.v_maps[2](vec_v))
    others = max((K - 1) * I, 1)
    inter = _map(lambda t: ((t.sum((1, 2), keepdim=True) - t.sum(2, keepdim=True)) / others).expand(t.shape), e)
    G = torch.einsum("bkijnm,bjlms->bkijlns", Hn, Vn).reshape(B, K, I, K, I, N * d)
    Gs = torch.diagonal(G, dim1=1, dim2=3).permute(0, 4, 1, 2, 3)
    sig = _cgelu(m.hv_maps[0](_pairs(torch.diagonal(Gs, dim1=2, dim2=3).permute(0, 1, 3, 2))))
    eye_i = torch.eye(I, dtype=torch.bool)[None, None, :, :, None]
    other_user = (~eye_i).to(net.dtype) / max(I - 1, 1)
    e = _cgelu(m.hv_maps[1](_pairs(Gs)))
    intra_rx = _map(lambda t: (t * other_user).sum(3), e)
    e = _cgelu(m.hv_maps[3](_pairs(Gs)))
    intra_tx = _map(lambda t: (t * other_user).sum(2), e)
    eye_k = torch.eye(K, dtype=torch.bool)[None, :, None, :, None, None]
    other_cell = (~eye_k).to(net.dtype) / max((K - 1) * I, 1)
    pG = _pairs(G)
    e = _cgelu(m.hv_maps[2](pG))
    inter_rx = _map(lambda t: (t * other_cell).sum((3, 4)), e)
    e = _cgelu(m.hv_maps[4](pG))
    inter_tx = _map(lambda t: (t * other_cell).sum((1, 2)), e)
    parts = [own, intra, inter, sig, intra_rx, inter_rx, intra_tx, inter_tx]
    z = tuple(torch.cat([p[c] for p in parts], -1) for c in (0, 1))
    n = K * I
    msg = _map(lambda t: (t.sum((1, 2), keepdim=True) - t) / max(n - 1, 1), z)
    h = (torch.cat([z[0], msg[0]], -1), torch.cat([z[1], msg[1]], -1))
    h = _cgelu(m.fc2(_cgelu(m.fc1(h))))
    if m.update == "blackbox":
        return m.head_v(h)
    return m.head_left(h), m.head_right(h)


def reference_iteration(m, problem, V):
    """V' = D^H V, V' <- W_L V' W_R with M' x M' W_L, V = D V', normalised (``structural_update``)."""
    D = m.expansion_matrix()
    out = reference_decode(m, problem, V, D)
    cdt = V.dtype
    Dc = None if D is None else D.to(cdt)
    if m.update == "blackbox":
        Vp = torch.complex(*out).to(cdt).reshape(*V.shape[:3], m.Mx, m.d)
        return scale_to_budget(Vp if Dc is None else Dc @ Vp, problem.budget)
    (lr, li), (rr, ri) = out
    B, K, I = V.shape[:3]
    W_L = torch.complex(lr, li).to(cdt).reshape(B, K, I, m.Mx, m.Mx) + torch.eye(m.Mx, dtype=cdt)
    W_R = torch.complex(rr, ri).to(cdt).reshape(B, K, I, m.d, m.d) + torch.eye(m.d, dtype=cdt)
    return structural_update(V, W_L, W_R, problem.budget, Dc)


# ----- the comparison ---------------------------------------------------------------------------------------
TOL = {torch.float32: 1e-5, torch.float64: 1e-10}
#: Gradients (relative to the largest entry): float64 at 1e-10; in float32 the reference's own rounding
#: error after 5 iterations and the sum-rate is ~5e-5 (measured against the reference in float64 on
#: cases 1 and 4, where the fast form's is ~4e-5), so 1e-4 there.
GRAD_TOL = {torch.float32: 1e-4, torch.float64: 1e-10}


def perturbed(cls, dtype, seed=4, scale=0.3, **kw):
    m = cls(**kw).to(dtype)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for t in m.parameters():
            t.add_(scale * torch.randn(t.shape, generator=g, dtype=t.dtype))
    return m


def iterates(m, p, step, T):
    V = p.unpack(m.init(p, p.initial_point()).x)
    out = []
    for _ in range(T):
        V = step(m, p, V)
        out.append(V)
    return out


CASES = [  # (model class, family kwargs, model kwargs)
    (StructuralMPNN, dict(cells=2, users=3, tx_antennas=6), dict(tx_antennas=6, hidden=16, start="rzf")),
    (StructuralMPNN, dict(cells=3, users=2, tx_antennas=4), dict(tx_antennas=4, hidden=8, d2=3, expanded=7)),
    (StructuralMPNN, dict(cells=1, users=3, tx_antennas=6), dict(tx_antennas=6, hidden=8)),
    (StructuralMPNN, dict(cells=2, users=1, tx_antennas=2), dict(tx_antennas=2, hidden=8)),
    (StructuralMPNNO, dict(cells=2, users=2, tx_antennas=4), dict(tx_antennas=4, hidden=8)),
    (StructuralMPNNB, dict(cells=2, users=2, tx_antennas=4), dict(tx_antennas=4, hidden=8)),
]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("case", range(len(CASES)))
def test_fast_forward_equals_the_reference_on_every_iterate_and_gradient(case, dtype):
    cls, fam, kw = CASES[case]
    p = InfocomMimoFamily(rx_antennas=2, streams=2, **fam).sample(5, 3, dtype=dtype)
    m = perturbed(cls, dtype, **kw)
    tol = TOL[dtype]
    fast = iterates(m, p, lambda m, p, V: m.iteration(p, V), 5)
    ref = iterates(m, p, reference_iteration, 5)
    for a, b in zip(fast, ref):
        torch.testing.assert_close(a, b, rtol=tol, atol=tol * float(b.detach().abs().max()))
    # gradients of a loss on every iterate, for every weight
    grads = []
    for out in (fast, ref):
        m.zero_grad()
        sum(-p.sum_rate(p.pack(V)).mean() for V in out).backward()
        grads.append({k: torch.zeros_like(t) if t.grad is None else t.grad.clone() for k, t in m.named_parameters()})
    for k, g in grads[1].items():
        if fam["cells"] > 1 and fam["users"] > 1:  # else the pooled features are 0: no gradient
            assert float(g.abs().max()) > 0, k
        gtol = GRAD_TOL[dtype]
        torch.testing.assert_close(grads[0][k], g, rtol=gtol, atol=gtol * float(g.abs().max()), msg=k)


def test_no_grad_cache_follows_the_weights():
    """Under no_grad the folded weights are reused until a parameter changes in place."""
    p = InfocomMimoFamily(cells=2, users=2, tx_antennas=4).sample(3, 0, dtype=torch.float64)
    m = perturbed(StructuralMPNN, torch.float64, tx_antennas=4, hidden=8)
    V = p.unpack(m.init(p, p.initial_point()).x)
    with torch.no_grad():
        a = m.iteration(p, V)
        assert m.folded() is m.folded()
        m.head_left.fc_r.weight.mul_(5.0)
        b = m.iteration(p, V)
        torch.testing.assert_close(b, reference_iteration(m, p, V), rtol=1e-10, atol=1e-10)
    assert (a - b).abs().max() > 1e-3


def test_chunks_of_the_batch_give_the_same_iterates_and_gradients(monkeypatch):
    """Cache-sized chunks (``CHUNK``, here one instance per chunk) change nothing but the rounding."""
    p = InfocomMimoFamily(cells=2, users=3, tx_antennas=4).sample(4, 1, dtype=torch.float64)
    m = perturbed(StructuralMPNN, torch.float64, tx_antennas=4, hidden=8)
    runs = []
    for chunk in (smp.CHUNK, 1):
        monkeypatch.setattr(smp, "CHUNK", chunk)
        m.zero_grad()
        out = iterates(m, p, lambda m, p, V: m.iteration(p, V), 3)
        sum(-p.sum_rate(p.pack(V)).mean() for V in out).backward()
        runs.append((out, [t.grad.clone() for t in m.parameters()]))
    for a, b in zip(runs[0][0] + runs[0][1], runs[1][0] + runs[1][1]):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_inference_mode_and_no_grad_give_the_reference():
    p = InfocomMimoFamily(cells=2, users=2, tx_antennas=4).sample(3, 2, dtype=torch.float64)
    m = perturbed(StructuralMPNN, torch.float64, tx_antennas=4, hidden=8)
    V = p.unpack(m.init(p, p.initial_point()).x)
    with torch.no_grad():
        ref = reference_iteration(m, p, V)
    for mode in (torch.no_grad, torch.inference_mode, torch.no_grad):
        with mode():
            torch.testing.assert_close(m.iteration(p, V), ref, rtol=1e-10, atol=1e-10)
