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
  its new h back in place), with in-place activations. On CPU each layer's cell update (the
  gate sigmoids, c', h') is one fused C loop where a C compiler is available (see
  ``cell_backend``), else seven in-place PyTorch ops.

Parameter names and shapes are those of ``torch.nn.LSTM`` (``lstm.weight_ih_l0`` ...), so
weights saved from the previous ``CoordLSTM`` implementation load unchanged.
"""

from __future__ import annotations

import ctypes
import hashlib
import itertools
import os
import platform
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

#: Columns (coordinates) per chunk on the no-grad path, in float64; float32 (half the bytes) takes twice
#: as many: a chunk's gates (4 x hidden rows) stay within about 2.5 MB, the per-chunk dispatch cost is
#: spread over as many columns as that allows (measured in ``benchmarks/bench_lstm_speed.py``).
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
        cb, cw = chunk_shape(B, n, dt, dev)
        h_new, c_new = torch.empty_like(h), torch.empty_like(c)
        out = torch.empty(B, out_w[0].shape[0], n, dtype=dt, device=dev)
        z = torch.empty(cb, k_in + L * H, cw, dtype=dt, device=dev)  # [x; h_1; ...; h_L]
        gates = torch.empty(cb, 4 * H, cw, dtype=dt, device=dev)
        tmp = torch.empty(2, cb, H, cw, dtype=dt, device=dev)
        raw = torch.empty(cb, k, cw, dtype=dt, device=dev) if pre is not None else None
        hid = torch.empty(cb, H, cw, dtype=dt, device=dev) if mid is not None else None
        views: dict[tuple[int, int], _Views] = {}  # workspace views per chunk shape (m, w)
        per_layer = [t[:, layer] for t in (c, c_new, h_new) for layer in range(L)]
        grid = [_grid(t, cb, cw) for t in (*features, h, out, *per_layer)]
        native = _native_cell(dt) if dev.type == "cpu" and c.dtype == dt else None
        for row in zip(*grid, strict=True):
            for chunk in zip(*row, strict=True):
                *feats, hc, oc = chunk[:k + 2]
                c_old, c_out, h_out = (chunk[k + 2 + i * L:k + 2 + (i + 1) * L] for i in range(3))
                m, w = hc.shape[0], hc.shape[-1]
                v = views.get((m, w))
                if v is None:
                    v = views[(m, w)] = _Views(m, w, z, gates, tmp, raw, hid, k_in, H, L, lstm_w, out_w, pre, mid)
                for dst, f in zip(v.feats, feats, strict=True):
                    dst.copy_(f)
                if pre is not None:
                    torch.baddbmm(pre[1], v.w_pre, v.raw, out=v.x)
                    F.elu(v.x, inplace=True)
                v.h_old.copy_(hc.reshape(m, L * H, w))
                for layer in range(L):
                    torch.baddbmm(lstm_w[layer][1], v.w_lstm[layer], v.inputs[layer], out=v.g)
                    top = h_out[layer]  # the whole cell update in one pass over the chunk (see cell_backend):
                    if native is not None and _native_step(native, v.g, c_old[layer], c_out[layer], top,
                                                           top if layer == L - 1 else v.h_slot[layer]):
                        continue
                    v.g.sigmoid_()
                    gi, gf, gu, go = v.gate
                    c_l = c_out[layer]
                    torch.addcmul(gi, gi, gu, value=-2, out=v.q)  # i tanh(g_pre) = i (1 - 2 sigma(-2 g_pre))
                    torch.addcmul(v.q, gf, c_old[layer], out=c_l)  # c' = f c + i tanh(g_pre)
                    torch.mul(c_l, -2, out=v.t).sigmoid_()  # tanh(c') = 1 - 2 sigma(-2 c')
                    if layer == L - 1:  # the top layer's h (top = h_out[layer]) is read by the output maps
                        torch.addcmul(go, go, v.t, value=-2, out=top)  # h' = o tanh(c')
                    else:  # the next layer reads [h_l'; h_{l+1}] from z
                        torch.addcmul(go, go, v.t, value=-2, out=v.h_slot[layer])
                        h_out[layer].copy_(v.h_slot[layer])
                if mid is not None:
                    torch.baddbmm(mid[1], v.w_mid, top, out=v.hid)
                    top = v.hid.relu_()
                if oc.is_contiguous():
                    torch.baddbmm(out_w[1], v.w_out, top, out=oc)
                else:
                    oc.copy_(torch.baddbmm(out_w[1], v.w_out, top))
        return out, h_new, c_new


# ----- the native cell update (no-grad path on CPU) ------------------------------------------
#: C source of the fused cell update: per chunk, per instance b and hidden row r, over the w columns,
#: from the gate pre-activations g = [i; f; u; o] (u rows scaled by -2, so tanh(g_pre) = 1 - 2 sigma(u)):
#: c' = f c + i (1 - 2 u), h' = o (1 - 2 sigma(-2 c')), with sigma(x) = 1 / (1 + exp(-x)); h' is stored
#: twice (state and workspace slot; the same place for the top layer). Strides are in elements; columns
#: are contiguous. exp is inlined so that the compiler vectorizes the whole loop: x = k ln 2 + r with
#: |r| <= ln 2 / 2 (ln 2 in two parts, Cody and Waite), e^r by a polynomial, times 2^k built from its
#: bits. The polynomials are Chebyshev fits of exp on [-ln 2 / 2, ln 2 / 2], degree 11 in double (fit
#: error 3e-18) and 6 in float (2e-9): ``mpmath.chebyfit(mpmath.exp, [-h, h], 12 or 7)`` at 40 digits;
#: measured max error about 1 ulp (tests/learned/test_coordinatewise.py checks it against torch.exp).
#: Arguments are first clamped to [-708, 708] (float: [-87, 88]), where sigma is 0 or 1 to the precision
#: either way; a NaN fails both comparisons and propagates. Plain IEEE arithmetic (no -ffast-math).
_CELL_C = r"""
#include <stdint.h>
#include <string.h>
static inline double exp64(double x) {
    x = x < -708.0 ? -708.0 : x;
    x = x > 708.0 ? 708.0 : x;
    double kf = x * 1.4426950408889634 + 6755399441055744.0;  /* + 1.5 * 2^52: round(x / ln 2) in the low bits */
    int64_t bits; memcpy(&bits, &kf, 8);
    double k = kf - 6755399441055744.0;
    double r = x - k * 0.6931471803691238;
    r = r - k * 1.9082149292705877e-10;
    double p = 2.5110037605963777712e-8;
    p = p * r + 2.7632639639041029749e-7; p = p * r + 2.7557240918578969823e-6;
    p = p * r + 0.000024801485482328492419; p = p * r + 0.00019841269890047113707;
    p = p * r + 0.0013888888952314774652; p = p * r + 0.0083333333333196006109;
    p = p * r + 0.041666666666488095495; p = p * r + 0.16666666666666680806;
    p = p * r + 0.50000000000000183855; p = p * r + 1.0; p = p * r + 1.0;
    int64_t e = ((bits & 0xFFFFFFFFFFFFLL) - 0x8000000000000LL + 1023) << 52;  /* the bits of 2^k */
    double s; memcpy(&s, &e, 8);
    return p * s;
}
static inline float exp32(float x) {
    x = x < -87.0f ? -87.0f : x;
    x = x > 88.0f ? 88.0f : x;
    float kf = x * 1.44269504f + 12582912.0f;  /* + 1.5 * 2^23 */
    int32_t bits; memcpy(&bits, &kf, 4);
    float k = kf - 12582912.0f;
    float r = x - k * 0.693145751953125f;
    r = r - k * 1.428606765330187e-06f;
    float p = 0.0013941108433972674608f;
    p = p * r + 0.008375126398153335682f; p = p * r + 0.041666352896775156786f;
    p = p * r + 0.16666415514653275427f; p = p * r + 0.50000000471177576744f;
    p = p * r + 1.0000000377162138425f; p = p * r + 1.0f;
    int32_t e = ((bits & 0x3FFFFF) - 0x200000 + 127) << 23;
    float s; memcpy(&s, &e, 4);
    return p * s;
}
#define CELL(NAME, T, EXP)                                                                                \
void NAME(const T *g, int64_t gb, int64_t gr, const T *co, int64_t cob, int64_t cor,                     \
          T *cn, int64_t cnb, int64_t cnr, T *hn, int64_t hnb, int64_t hnr, T *hs, int64_t hsb,          \
          int64_t hsr, int64_t q0, int64_t q1, int64_t H, int64_t w) {                                    \
    for (int64_t q = q0; q < q1; q++) {  /* rows q = b H + r of instance b, hidden unit r */             \
            int64_t b = q / H, r = q % H;                                                                 \
            const T *gi = g + b * gb + r * gr, *gf = gi + H * gr, *gu = gf + H * gr, *go = gu + H * gr;   \
            const T *c0 = co + b * cob + r * cor;                                                         \
            T *c1 = cn + b * cnb + r * cnr, *h1 = hn + b * hnb + r * hnr, *h2 = hs + b * hsb + r * hsr;   \
            _Pragma("GCC ivdep")                                                                          \
            for (int64_t j = 0; j < w; j++) {                                                             \
                T i = (T)1 / ((T)1 + EXP(-gi[j])), f = (T)1 / ((T)1 + EXP(-gf[j]));                       \
                T u = (T)1 / ((T)1 + EXP(-gu[j])), o = (T)1 / ((T)1 + EXP(-go[j]));                       \
                T c = f * c0[j] + (i - (T)2 * i * u);                                                     \
                T t = (T)1 / ((T)1 + EXP((T)2 * c));                                                      \
                T h = o - (T)2 * o * t;                                                                   \
                c1[j] = c; h1[j] = h; h2[j] = h;                                                          \
            }                                                                                             \
    }                                                                                                     \
}
CELL(l2o_cell_f64, double, exp64)
CELL(l2o_cell_f32, float, exp32)
void l2o_exp_f64(const double *x, double *y, int64_t n) { for (int64_t j = 0; j < n; j++) y[j] = exp64(x[j]); }
void l2o_exp_f32(const float *x, float *y, int64_t n) { for (int64_t j = 0; j < n; j++) y[j] = exp32(x[j]); }
"""
_CFLAGS = ["-O3", "-march=native", "-fno-math-errno", "-fno-trapping-math", "-shared", "-fPIC"]
_NATIVE: dict[str, object] = {}  # "lib": the loaded library (or None), "reason": why not, once tried


def cell_backend() -> str:
    """Which cell update the no-grad CPU path runs: ``"native"``, or ``"eager (reason)"``.

    ``"native"``: the fused C loop ``_CELL_C`` (one pass over each chunk instead of seven PyTorch ops,
    with an exp the compiler vectorizes inline), compiled once with the system's C compiler ``cc``
    (cached under ``$L2O_CACHE``, else ``$XDG_CACHE_HOME/l2o`` or ``~/.cache/l2o``, keyed by source,
    flags and CPU) and called through ctypes. ``"eager"``: those PyTorch ops, where no compiler is found,
    the build fails, or ``L2O_NATIVE_CELL=0``. Both compute the same values to rounding and are tested
    against one reference.

    Example:
        >>> cell_backend().split(" ")[0] in ("native", "eager")
        True
    """
    lib = _load_native()
    return "native" if lib is not None else f"eager ({_NATIVE['reason']})"


def _native_cell(dtype: torch.dtype):
    """The native cell function for ``dtype`` (float32/float64), or None (eager)."""
    if dtype not in (torch.float32, torch.float64):
        return None
    lib = _load_native()
    if lib is None:
        return None
    return lib.l2o_cell_f64 if dtype == torch.float64 else lib.l2o_cell_f32


def _load_native():
    if "lib" in _NATIVE:
        return _NATIVE["lib"]
    lib, reason = None, ""
    if os.environ.get("L2O_NATIVE_CELL", "1") == "0":
        reason = "L2O_NATIVE_CELL=0"
    elif platform.system() != "Linux" or shutil.which("cc") is None:
        reason = "no C compiler (cc) on a Linux system"
    else:
        try:
            lib = _build_native()
        except (OSError, subprocess.SubprocessError, AttributeError) as exc:  # a failed build: fall back
            reason = f"native build failed: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
    _NATIVE.update(lib=lib, reason=reason)
    return lib


def _cpu_key() -> str:
    try:
        flags = next((ln for ln in Path("/proc/cpuinfo").read_text().splitlines() if ln.startswith("flags")), "")
    except OSError:
        flags = ""
    return platform.machine() + flags


def _build_native():
    key = hashlib.sha256("\n".join([_CELL_C, *_CFLAGS, _cpu_key()]).encode()).hexdigest()[:16]
    root = os.environ.get("L2O_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "l2o")
    target = Path(root) / "native" / f"lstm_cell_{key}.so"
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        writable = os.access(target.parent, os.W_OK)
    except OSError:
        writable = False
    if not writable and not target.exists():  # no usable cache: build for this process only
        target = Path(tempfile.mkdtemp(prefix="l2o-native-")) / target.name
    if not target.exists():
        with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
            src, so = Path(tmp) / "cell.c", Path(tmp) / "cell.so"
            src.write_text(_CELL_C)
            subprocess.run(["cc", *_CFLAGS, "-o", str(so), str(src)], check=True, capture_output=True, timeout=120)
            os.replace(so, target)  # atomic: a concurrent build writes the same file
    lib = ctypes.CDLL(str(target))
    for fn in (lib.l2o_cell_f64, lib.l2o_cell_f32):
        fn.restype = None
        fn.argtypes = [ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64] * 5 + [ctypes.c_int64] * 4
    for fn in (lib.l2o_exp_f64, lib.l2o_exp_f32):
        fn.restype = None
        fn.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64]
    return lib


def _native_step(fn, g: Tensor, c_old: Tensor, c_out: Tensor, h_out: Tensor, h_slot: Tensor) -> bool:
    """One cell update of a chunk with the native ``fn`` (all ``(m, rows, w)`` views of one dtype); False,
    having done nothing, where a view's columns are not contiguous (the caller then runs the eager ops).
    With ``torch.get_num_threads()`` > 1 the m H rows are split among that many threads (ctypes releases
    the GIL), as PyTorch would parallelize the eager ops."""
    m, H, w = c_old.shape
    tensors = (g, c_old, c_out, h_out, h_slot)
    if w > 1 and any(t.stride(2) != 1 for t in tensors):
        return False
    args = []
    for t in tensors:
        args += [t.data_ptr(), t.stride(0), t.stride(1)]
    rows = m * H
    parts = min(torch.get_num_threads(), max(1, rows * w // _PARALLEL_GRAIN), rows)
    if parts <= 1:
        fn(*args, 0, rows, H, w)
        return True
    key = (os.getpid(), parts)  # a forked child does not inherit the threads: it starts its own pool
    pool = _POOL.get(key)
    if pool is None:
        pool = _POOL[key] = ThreadPoolExecutor(parts, thread_name_prefix="l2o-cell")
    edges = [rows * i // parts for i in range(parts + 1)]
    for f in [pool.submit(fn, *args, q0, q1, H, w) for q0, q1 in itertools.pairwise(edges)]:
        f.result()
    return True


#: Elements per thread below which the native cell update stays on one thread (as PyTorch's grain size).
_PARALLEL_GRAIN = 32768
_POOL: dict[tuple[int, int], ThreadPoolExecutor] = {}


def chunk_shape(batch: int, n: int, dtype: torch.dtype, device: torch.device | str = "cpu") -> tuple[int, int]:
    """(instances, columns per instance) of one chunk of the no-grad path: about ``CHUNK`` coordinates in
    float64 (``CHUNK * 8 / itemsize`` in general), so a chunk's workspaces stay in a CPU core's cache; on an
    accelerator the whole batch is one chunk.

    Example:
        >>> chunk_shape(128, 500, torch.float64), chunk_shape(128, 500, torch.float32)
        ((8, 500), (16, 500))
    """
    cols = CHUNK * 8 // torch.empty((), dtype=dtype).element_size() if torch.device(device).type == "cpu" else batch * n
    cw = min(n, cols)
    return min(batch, max(1, cols // cw)), cw


class _Views:
    """Views of the chunk workspaces and expanded weights for one chunk shape (m instances, w columns)."""

    def __init__(self, m, w, z, gates, tmp, raw, hid, k_in, H, L, lstm_w, out_w, pre, mid):
        zc = z[:m, :, :w]
        self.x = zc[:, :k_in]
        self.h_old = zc[:, k_in:]
        self.h_slot = [zc[:, k_in + layer * H:k_in + (layer + 1) * H] for layer in range(L)]
        self.inputs = [zc[:, (0 if layer == 0 else k_in + (layer - 1) * H):k_in + (layer + 1) * H]
                       for layer in range(L)]
        self.g = gates[:m, :, :w]
        self.gate = self.g.split(H, 1)
        self.q, self.t = tmp[0, :m, :, :w], tmp[1, :m, :, :w]
        self.raw = None if raw is None else raw[:m, :, :w]
        self.feats = list((zc if raw is None else self.raw).unbind(1))[:(k_in if raw is None else raw.shape[1])]
        self.hid = None if hid is None else hid[:m, :, :w]
        self.w_lstm = [wl.expand(m, *wl.shape) for wl, _ in lstm_w]
        self.w_out = out_w[0].expand(m, *out_w[0].shape)
        self.w_pre = None if pre is None else pre[0].expand(m, *pre[0].shape)
        self.w_mid = None if mid is None else mid[0].expand(m, *mid[0].shape)


def _grid(t: Tensor, cb: int, cw: int) -> list[list[Tensor]]:
    """Views of ``t`` ``(B, ..., n)`` in chunks of ``cb`` instances x ``cw`` columns."""
    return [list(tb.split(cw, -1)) for tb in t.split(cb, 0)]


def _affine(wb: tuple[Tensor, Tensor], x: Tensor) -> Tensor:
    """``W x + b`` per instance: ``(m, d) x (B, d, n) -> (B, m, n)``."""
    w, b = wb
    return torch.baddbmm(b, w.expand(x.shape[0], *w.shape), x)


def _affine_out(wb: tuple[Tensor, Tensor], x: Tensor, out: Tensor) -> None:
    """``out = W x + b`` (``out`` contiguous, written in place)."""
    w, b = wb
    torch.baddbmm(b, w.expand(x.shape[0], *w.shape), x, out=out)
