"""``l2o.utils.jsonable``: values made ready for ``json.dumps``."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch

from l2o.utils.jsonable import jsonable


def test_jsonable():
    value = {"t": torch.tensor([1.0, math.nan]), "a": np.arange(2), "s": np.float32(0.5), "p": Path("x/y"),
             "n": (math.inf, 1), 3: "k"}
    out = jsonable(value)
    assert out == {"t": [1.0, None], "a": [0, 1], "s": 0.5, "p": "x/y", "n": [None, 1], "3": "k"}
    json.dumps(out, allow_nan=False)
