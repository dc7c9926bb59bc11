"""Workloads: Poisson arrivals and trace files (one-line errors)."""

from __future__ import annotations

import numpy as np
import pytest

from l2o.serving import RequestType, poisson_workload, read_trace, workload_from_arrays, write_trace


def test_poisson_rates_and_mix():
    types = [RequestType(10, 5, 3.0), RequestType(20, 8, 1.0)]
    w = poisson_workload(types, 40_000, seed=3)
    gaps = np.diff(np.concatenate([[0.0], w.arrival]))
    assert gaps.mean() == pytest.approx(1 / 4.0, rel=0.02)          # total rate 4, sd of the mean 0.5%
    assert gaps.std() == pytest.approx(1 / 4.0, rel=0.03)           # exponential gaps
    assert (w.kind == 0).mean() == pytest.approx(0.75, abs=0.01)
    assert np.array_equal(w.prefill, np.where(w.kind == 0, 10, 20))
    assert np.array_equal(w.decode, np.where(w.kind == 0, 5, 8))
    assert w.total_rate == 4.0


def test_same_seed_same_workload_and_scaling():
    types = [RequestType(10, 5, 3.0), RequestType(20, 8, 1.0)]
    a, b = poisson_workload(types, 500, seed=1), poisson_workload(types, 500, seed=1)
    assert np.array_equal(a.arrival, b.arrival) and np.array_equal(a.kind, b.kind)
    c = poisson_workload(types, 500, seed=2)
    assert not np.array_equal(a.arrival, c.arrival)
    s = a.scaled(2.0)
    np.testing.assert_allclose(s.arrival, a.arrival / 2)
    assert [t.rate for t in s.types] == [6.0, 2.0] and np.array_equal(s.kind, a.kind)


def test_request_type_validation():
    with pytest.raises(ValueError, match="prefill is 0"):
        RequestType(0, 5, 1.0)
    with pytest.raises(ValueError, match="decode is 2.5"):
        RequestType(4, 2.5, 1.0)
    with pytest.raises(ValueError, match="rate is -1"):
        RequestType(4, 2, -1.0)
    with pytest.raises(ValueError, match="requests is 0"):
        poisson_workload([RequestType(4, 2, 1.0)], 0)


def test_trace_roundtrip_and_types(tmp_path):
    w = workload_from_arrays([0.0, 0.5, 0.5, 2.0], [12, 40, 12, 12], [3, 7, 3, 3])
    p = write_trace(tmp_path / "t.csv", w)
    r = read_trace(p)
    np.testing.assert_array_equal(r.arrival, w.arrival)
    np.testing.assert_array_equal(r.prefill, w.prefill)
    np.testing.assert_array_equal(r.decode, w.decode)
    assert [(t.prefill, t.decode, t.rate) for t in r.types] == [(12, 3, 1.5), (40, 7, 0.5)]
    assert read_trace(p, limit=2).n == 2


def test_trace_columns_in_any_order_extra_columns_ignored(tmp_path):
    f = tmp_path / "t.csv"
    f.write_text("id,decode,arrival,prefill\nx,4,0.0,10\ny,6,1.5,20\n\n")
    r = read_trace(f)
    assert r.decode.tolist() == [4, 6] and r.prefill.tolist() == [10, 20] and r.arrival.tolist() == [0.0, 1.5]


@pytest.mark.parametrize("text, message", [
    ("arrival,prefill,decode\n0,-3,4\n", "line 2: prefill -3 is below 1"),
    ("arrival,prefill,decode\n0,3,4.5\n", "line 2: decode '4.5' is not an integer"),
    ("arrival,prefill,decode\n0,3,x\n", "line 2: decode 'x' is not an integer"),
    ("arrival,prefill,decode\n1.0,3,4\n0.5,3,4\n", "line 3: arrival 0.5 is before the previous arrival 1"),
    ("arrival,prefill,decode\n-1,3,4\n", "line 2: arrival -1 is negative"),
    ("arrival,prefill,decode\nnan,3,4\n", "line 2: arrival nan is negative or not finite"),
    ("arrival,prefill\n0,3\n", "missing column(s) decode"),
    ("time,in,out\n0,3,4\n", "missing column(s) arrival, prefill, decode"),
    ("arrival,prefill,decode\n0,3\n", "line 2: 2 field(s); expected at least 3"),
    ("arrival,prefill,decode\n", "has no requests"),
    ("", "is empty"),
])
def test_trace_errors_are_one_line(tmp_path, text, message):
    f = tmp_path / "bad.csv"
    f.write_text(text)
    with pytest.raises(ValueError) as e:
        read_trace(f)
    msg = str(e.value)
    assert message in msg and str(f) in msg and "\n" not in msg


def test_trace_missing_file(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        read_trace(tmp_path / "nope.csv")


def test_integer_valued_floats_are_accepted(tmp_path):
    f = tmp_path / "t.csv"
    f.write_text("arrival,prefill,decode\n0,3.0,4\n")
    assert read_trace(f).prefill.tolist() == [3]
