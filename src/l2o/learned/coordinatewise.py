"""The coordinatewise LSTM core shared by Math-L2O, GO-Math-L2O, L2O-DM and RNNprop.

Andrychowicz et al. (NeurIPS 2016) apply one small LSTM to every coordinate of every
instance. Here all B n coordinates are one matrix, laid out feature-major per instance:
a per-coordinate quantity with d features is a ``(B, d, n)`` tensor, so a layer
W (m x d) is one batched GEMM ``W @ X`` with the n coordinates as columns, and each gate
of the LSTM is a contiguous block of rows. One time step of the network:

    z_0 = features  (B, k, n)                      [or ELU(W_in z_0 + b_in) with ``input_layer``]
    per layer l = 1..L, with x = z_{l-1} and the layer's previous (h_l, c_l):
        [i; f; u; o] = sigma(W_l [x; h_l] + b_l)   one GEMM, W_l = [W_ih | W_hh], b_l = b_ih + b_hh,
                                                    rows of the cell input pre-scaled by -2 so that
        tanh(g_pre) = 1 - 2 u                       (one sigmoid call for all four gates),
        c_l' = f * c_l + i * tanh(g_pre),   h_l' = o * tanh(c_l') = o (1 - 2 sigma(-2 c_l')),   z_l = h_l'
    out = W_out [ReLU(W_mid z_L + b_mid)] + b_out   (B, heads, n)  [``hidden_layer`` optional]

which is exactly ``torch.nn.LSTM``'s recurrence (Hochreiter and Schmidhuber 1997, with the
forget gate of Gers et al. 2000), evaluated with tanh(x) = 1 - 2 sigma(-2x) (the sigmoid is
several times cheaper than tanh on CPU; the identity is exact, rounding aside), so that each
product with a tanh is one fused multiply-add (``addcmul``).

Two evaluation paths compute the same thing:

* with autograd (training: gradients flow through the unroll into the weights): whole-batch
  functional ops;
* without (``torch.no_grad()``, evaluation and solving): the coordinates are processed in
  chunks of about ``CHUNK`` columns, every chunk running the whole network in preallocated
  workspaces that stay in cache (the features and h are written once into one
  ``[x; h_1; ...; h_L]`` block, each layer reads its ``[x; h]`` as a slice of it and writes
  its new h back in place), with in-place activations.

Parameter names and shapes are those of ``torch.nn.LSTM`` (``lstm.weight_ih_l0`` ...), so
weights saved from the previous ``CoordLSTM`` implementation load unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

#: Columns (coordinates) per chunk on the no-grad path.
CHUNK = 4096


class CoordinatewiseLSTM(nn.Module):
    """A coordinatewise LSTM (Andrychowicz et al., 2016): one ``nn.LSTM``'s weights shared by
    every coordinate of every instance, so the model serves any n. See the module docstring.

    The recurrent state lives in the solver state, batch-first so that ``select_state`` can
    index it: ``h`` and ``c`` of shape ``(B, layers, hidden, n)``.

    Example (one step of 2 instances of dimension 5, 3 features per coordinate):
        >>> import torch
        >>> core = CoordinatewiseLSTM(3, hidden_size=4, layers=2)
        >>> head = torch.nn.Linear(4, 1)
        >>> h, c = core.initial_state(2, 5)
        >>> feats = [torch.randn(2, 5) for _ in range(3)]
        >>> out, h, c = core(feats, h, c, heads=[head])
        >>> tuple(out.shape), tuple(h.shape)
        ((2, 1, 5), (2, 2, 4, 5))
    """

    def __init__(self, input_size: int, hidden_size: int = 20, layers: int = 2):
        super().__init__()
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.layers = layers
        self.lstm = nn.LSTM(input_size, hidden_size, layers)

    def initial_state(self, batch: int, n: int) -> tuple[Tensor, Tensor]:
        """Zero ``(h, c)``, each ``(B, layers, hidden, n)`` in the network's dtype and device."""
        w = self.lstm.weight_ih_l0
        h = torch.zeros(batch, self.layers, self.hidden_size, n, dtype=w.dtype, device=w.device)
        return h, torch.zeros_like(h)

    def gate_weights(self) -> list[tuple[Tensor, Tensor]]:
        """Per layer, ``W = [W_ih | W_hh]`` ``(4H, in + H)`` and ``b = b_ih + b_hh`` ``(4H, 1)``,
        the rows of the cell-input gate g scaled by -2 (for tanh(z) = 1 - 2 sigma(-2 z))."""
        H = self.hidden_size
        lstm = self.lstm
        w0 = lstm.weight_ih_l0
        scale = torch.ones(4 * H, 1, dtype=w0.dtype, device=w0.device)
        scale[2 * H:3 * H] = -2.0
        out = []
        for layer in range(self.layers):
            w = torch.cat([getattr(lstm, f"weight_ih_l{layer}"), getattr(lstm, f"weight_hh_l{layer}")], 1)
            b = (getattr(lstm, f"bias_ih_l{layer}") + getattr(lstm, f"bias_hh_l{layer}")).unsqueeze(1)
            out.append((w * scale, b * scale))
        return out

    def forward(
        self,
        features: Sequence[Tensor],
        h: Tensor,
        c: Tensor,
        heads: Sequence[nn.Linear],
        input_layer: nn.Linear | None = None,
        hidden_layer: nn.Linear | None = None,
    ) -> tuple[Tensor, Tensor, Tensor]:
        """One time step.

        Args:
            features: k tensors ``(B, n)``, the per-coordinate inputs (any float dtype; cast
                to the network's). k is ``input_size``, or ``input_layer.in_features``.
            h, c: ``(B, layers, hidden, n)`` previous state.
            heads: output maps ``Linear(hidden, d_j)``, evaluated as one GEMM.
            input_layer: optional ``Linear(k, input_size)`` + ELU before the LSTM (RNNprop).
            hidden_layer: optional ``Linear(hidden, hidden)`` + ReLU after it (Math-L2O).

        Returns:
            ``(out, h', c')``: ``out`` ``(B, sum d_j, n)`` the heads' outputs stacked in order,
            in the network's dtype; ``h', c'`` the new state.
        """
        lstm_w = self.gate_weights()
        w_out = torch.cat([m.weight for m in heads], 0)
        b_out = torch.cat([m.bias for m in heads], 0).unsqueeze(1)
        pre = None if input_layer is None else (input_layer.weight, input_layer.bias.unsqueeze(1))
        mid = None if hidden_layer is None else (hidden_layer.weight, hidden_layer.bias.unsqueeze(1))
        needs_grad = torch.is_grad_enabled() and (
            any(p.requires_grad for p in self.parameters()) or w_out.requires_grad or h.requires_grad
            or c.requires_grad or any(f.requires_grad for f in features)
            or (pre is not None and pre[0].requires_grad) or (mid is not None and mid[0].requires_grad))
        if needs_grad:
            return self._forward_autograd(features, h, c, lstm_w, (w_out, b_out), pre, mid)
        with torch.no_grad():
            return self._forward_chunked(features, h, c, lstm_w, (w_out, b_out), pre, mid)

    def _forward_autograd(self, features, h, c, lstm_w, out_w, pre, mid):
        H = self.hidden_size
        x = torch.stack([f.to(h.dtype) for f in features], 1)
        if pre is not None:
            x = F.elu(_affine(pre, x))
        hs, cs = [], []
        for layer, wb in enumerate(lstm_w):
            gates = torch.sigmoid(_affine(wb, torch.cat([x, h[:, layer]], 1)))
            i, f, g, o = gates.split(H, 1)
            c_new = f * c[:, layer] + i * (1 - 2 * g)
            x = o * (1 - 2 * torch.sigmoid(-2 * c_new))
            hs.append(x)
            cs.append(c_new)
        if mid is not None:
            x = F.relu(_affine(mid, x))
        return _affine(out_w, x), torch.stack(hs, 1), torch.stack(cs, 1)

    def _forward_chunked(self, features, h, c, lstm_w, out_w, pre, mid):
        B, L, H, n = h.shape
        k = len(features)
        k_in = self.input_size
        dt, dev = h.dtype, h.device
        cw = min(n, CHUNK)  # columns per chunk within an instance
        cb = max(1, CHUNK // cw)  # instances per chunk
        cb = min(cb, B)
        h_new, c_new = torch.empty_like(h), torch.empty_like(c)
        out = torch.empty(B, out_w[0].shape[0], n, dtype=dt, device=dev)
        z = torch.empty(cb, k_in + L * H, cw, dtype=dt, device=dev)  # [x; h_1; ...; h_L]
        gates = torch.empty(cb, 4 * H, cw, dtype=dt, device=dev)
        tmp = torch.empty(cb, H, cw, dtype=dt, device=dev)
        tmp2 = torch.empty(cb, H, cw, dtype=dt, device=dev)
        raw = torch.empty(cb, k, cw, dtype=dt, device=dev) if pre is not None else None
        hid = torch.empty(cb, H, cw, dtype=dt, device=dev) if mid is not None else None
        for s in range(0, B, cb):
            e = min(s + cb, B)
            m = e - s
            for j0 in range(0, n, cw):
                j1 = min(j0 + cw, n)
                w = j1 - j0
                zc = z[:m, :, :w]
                if pre is not None:
                    rc = raw[:m, :, :w]
                    for j, f in enumerate(features):
                        rc[:, j].copy_(f[s:e, j0:j1])
                    _affine_out(pre, rc, zc[:, :k_in])
                    F.elu(zc[:, :k_in], inplace=True)
                else:
                    for j, f in enumerate(features):
                        zc[:, j].copy_(f[s:e, j0:j1])
                zc[:, k_in:].copy_(h[s:e, :, :, j0:j1].reshape(m, L * H, w))
                for layer, wb in enumerate(lstm_w):
                    lo = 0 if layer == 0 else k_in + (layer - 1) * H
                    hi = k_in + (layer + 1) * H
                    g = gates[:m, :, :w]
                    _affine_out(wb, zc[:, lo:hi], g)
                    g.sigmoid_()
                    gi, gf, gg, go = g[:, :H], g[:, H:2 * H], g[:, 2 * H:3 * H], g[:, 3 * H:]
                    cn = c_new[s:e, layer, :, j0:j1]
                    q = tmp[:m, :, :w]
                    torch.addcmul(gi, gi, gg, value=-2, out=q)  # i tanh(g_pre) = i (1 - 2 sigma(-2 g_pre))
                    torch.addcmul(q, gf, c[s:e, layer, :, j0:j1], out=cn)  # c' = f c + i tanh(g_pre)
                    t = tmp2[:m, :, :w]
                    torch.mul(cn, -2, out=t).sigmoid_()  # tanh(c') = 1 - 2 sigma(-2 c')
                    if layer == L - 1:  # the top layer's h is read by the output maps from h_new
                        top = h_new[s:e, layer, :, j0:j1]
                        torch.addcmul(go, go, t, value=-2, out=top)  # h' = o tanh(c')
                    else:  # the next layer reads [h_l'; h_{l+1}] from z
                        hn = zc[:, k_in + layer * H:k_in + (layer + 1) * H]
                        torch.addcmul(go, go, t, value=-2, out=hn)
                        h_new[s:e, layer, :, j0:j1].copy_(hn)
                if mid is not None:
                    hc = hid[:m, :, :w]
                    _affine_out(mid, top, hc)
                    top = hc.relu_()
                if w == n:
                    _affine_out(out_w, top, out[s:e])
                else:
                    out[s:e, :, j0:j1] = _affine(out_w, top)
        return out, h_new, c_new


def _affine(wb: tuple[Tensor, Tensor], x: Tensor) -> Tensor:
    """``W x + b`` per instance: ``(m, d) x (B, d, n) -> (B, m, n)``."""
    w, b = wb
    return torch.baddbmm(b, w.expand(x.shape[0], *w.shape), x)


def _affine_out(wb: tuple[Tensor, Tensor], x: Tensor, out: Tensor) -> None:
    """``out = W x + b`` (``out`` contiguous, written in place)."""
    w, b = wb
    torch.baddbmm(b, w.expand(x.shape[0], *w.shape), x, out=out)
