"""Families declare their defaults and every module reads the declarations: no module of
``l2o`` tests a family's name (issue 11 item 5), checked on the source and on the behaviour
of a family that declares other defaults."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import l2o
from l2o.evaluation.defaults import default_baselines, default_fallback
from l2o.problems import LassoFamily, ProblemFamily
from l2o.registry import FAMILIES, PRESETS
from l2o.workflows.checkpoint_solve import kind_of_family

SRC = Path(l2o.__file__).parent
#: ``<something>name<...> == "<a family or preset name>"`` (either side, ==, != or in).
NAMES = "|".join(sorted(map(re.escape, set(FAMILIES) | set(PRESETS)), key=len, reverse=True))
COMPARISONS = [
    re.compile(rf"""\bname\b[\w\]\)"']*\s*(?:==|!=)\s*f?["'](?:{NAMES})["']"""),
    re.compile(rf"""["'](?:{NAMES})["']\s*(?:==|!=)\s*[\w.\[\(]*name\b"""),
    re.compile(rf"""\bname\b[\w\]\)"']*\s+(?:not\s+)?in\s+[\(\[\{{][^)\]\}}]*["'](?:{NAMES})["']"""),
    re.compile(rf"""getattr\([^)]*["']name["'][^)]*\)\s*(?:==|!=)\s*f?["'](?:{NAMES})["']"""),
    re.compile(r"""\bdef\s+is_(?:mimo|lasso|logistic|quadratic|least_squares)\b"""),
]


def test_no_module_tests_a_family_name():
    found = []
    for path in sorted(SRC.rglob("*.py")):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if any(p.search(line) for p in COMPARISONS):
                found.append(f"{path.relative_to(SRC.parent)}:{number}: {line.strip()}")
    assert not found, "family-name tests (declare the behaviour on the family instead):\n" + "\n".join(found)


def test_the_grep_catches_the_forms_it_forbids():
    """The patterns are not vacuous: the old code's forms match, a dataset name does not."""
    for bad in ['return getattr(family, "name", None) == "mimo"', 'getattr(family, "name", "") == "lasso" and',
                'if family.name == "lasso":',
                'if "least_squares" == family_name(run.family):', 'if fam.name in ("logistic", "logistic_dataset"):',
                "def is_mimo(family):"]:
        assert any(p.search(bad) for p in COMPARISONS), bad
    for fine in ['if name == "breast_cancer":', 'if type(e).__name__ == "ClickException":', 'kind == "mimo"']:
        assert not any(p.search(fine) for p in COMPARISONS), fine


@dataclasses.dataclass(frozen=True)
class OtherDefaults(LassoFamily):
    """A LASSO family declaring defaults of its own."""

    name = "other_lasso"
    default_solver = "fista"
    baselines = ("ista", "fista")
    smooth_baselines = ("gd",)
    fallback = "fista"
    file_format = "lasso"


def test_evaluation_defaults_read_the_family_declarations():
    fam = OtherDefaults(m=6, n=8, nnz=2)
    nonsmooth, smooth = fam.sample(2, 0), OtherDefaults(m=6, n=8, nnz=2, lam=0.0).sample(2, 0)
    assert default_baselines(nonsmooth, fam) == ("ista", "fista") and default_baselines(smooth, fam) == ("gd",)
    assert default_fallback(fam) == "fista" and default_fallback(OtherDefaults) == "fista"
    assert kind_of_family(fam) == "lasso"
    base = LassoFamily(m=6, n=8, nnz=2)
    assert default_baselines(nonsmooth, base) == ProblemFamily.baselines
    assert default_fallback(base) == ProblemFamily.fallback == "fista_restart"
    # without a family: the generic declarations
    assert default_baselines(smooth) == ProblemFamily.smooth_baselines and default_fallback(None) == "fista_restart"


def test_mimo_defaults_come_from_its_declarations():
    fam = l2o.make_family("mimo_small")
    p = fam.sample(1, 0)
    assert default_baselines(p, fam) == type(fam).baselines == ("wmmse", "mrt", "zf", "rzf")
    assert default_fallback(fam) == type(fam).fallback == "wmmse" and kind_of_family(fam) == "mimo"
