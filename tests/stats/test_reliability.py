"""care_model.stats.reliability: Krippendorff's alpha and the ICC against published worked examples."""
from __future__ import annotations

import json

import numpy as np
import pytest

from care_model.stats import reliability as rel
from care_model.core.errors import ValidationError

# Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", section C: 4 observers x 12
# units, values 1-5, with missing data. Published: nominal .743, ordinal .815, interval .849.
KRIPP_2011 = [
    [1, 2, 3, 3, 2, 1, 4, 1, 2, None, None, None],
    [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, None, 3],
    [None, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, None],
    [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, None],
]

# Shrout & Fleiss (1979), Table 2: 6 targets x 4 judges.
SF_1979 = [[9, 2, 5, 8], [6, 1, 3, 2], [8, 4, 6, 8], [7, 1, 2, 6], [10, 5, 6, 9], [6, 2, 4, 7]]


def _alpha_by_hand(data, metric):
    """Krippendorff's alpha from the coincidence matrix, written out as in the 2011 paper."""
    values = sorted({v for row in data for v in row if v is not None})
    pos = {v: i for i, v in enumerate(values)}
    o = np.zeros((len(values), len(values)))
    for u in range(len(data[0])):
        vals = [row[u] for row in data if row[u] is not None]
        m = len(vals)
        if m < 2:
            continue
        for i, c in enumerate(vals):
            for j, k in enumerate(vals):
                if i != j:
                    o[pos[c], pos[k]] += 1 / (m - 1)
    n_c = o.sum(axis=1)
    n = n_c.sum()

    def delta2(c, k):
        if metric == "nominal":
            return float(c != k)
        if metric == "interval":
            return (values[c] - values[k]) ** 2
        lo, hi = min(c, k), max(c, k)  # ordinal: marginal sums between the two ranks
        return (n_c[lo:hi + 1].sum() - (n_c[c] + n_c[k]) / 2) ** 2

    idx = range(len(values))
    d_o = sum(o[c, k] * delta2(c, k) for c in idx for k in idx)
    d_e = sum(n_c[c] * n_c[k] * delta2(c, k) for c in idx for k in idx) / (n - 1)
    return 1 - d_o / d_e


@pytest.mark.parametrize("level,published", [("nominal", 0.743), ("ordinal", 0.815), ("interval", 0.849)])
def test_krippendorff_2011_worked_example(level, published):
    res = rel.krippendorff_alpha(KRIPP_2011, level=level, value_domain=[1, 2, 3, 4, 5])
    assert round(res.alpha, 3) == published
    assert res.alpha == pytest.approx(_alpha_by_hand(KRIPP_2011, level), abs=1e-12)
    # the 2011 paper counts 40 pairable values in 11 units (unit 12 has a single value)
    assert (res.n_units, res.n_values, res.n_raters) == (11, 40, 4)


def test_krippendorff_published_exact_nominal_fraction_and_ratio():
    # the exact nominal value (0.7434...) printed to more digits; ratio is a fourth level the paper lists
    assert rel.krippendorff_alpha(KRIPP_2011, level="nominal").alpha == pytest.approx(0.743421, abs=1e-6)
    assert round(rel.krippendorff_alpha(KRIPP_2011, level="ratio").alpha, 3) == 0.797


def test_krippendorff_mapping_input_unused_categories_and_degenerate_cases():
    by_unit = {u: {f"r{r}": KRIPP_2011[r][u] for r in range(4) if KRIPP_2011[r][u] is not None} for u in range(12)}
    assert rel.krippendorff_alpha(by_unit, level="ordinal").alpha == pytest.approx(0.815, abs=5e-4)
    # an unused middle category does not change the ordinal distances
    data = [[1, 1, 5, 5, 2, 5], [1, 2, 5, 4, 1, 5], [2, 1, 5, 5, 1, 4]]
    assert rel.krippendorff_alpha(data, level="ordinal").alpha == pytest.approx(
        rel.krippendorff_alpha(data, level="ordinal", value_domain=[1, 2, 3, 4, 5]).alpha)
    assert rel.krippendorff_alpha(data, level="ordinal").alpha == pytest.approx(_alpha_by_hand(data, "ordinal"))
    same = rel.krippendorff_alpha([[3, 3, 3], [3, 3, 3]])
    assert same.alpha is None and "same" in same.reason
    lone = rel.krippendorff_alpha([[1, None], [None, 2]])
    assert lone.alpha is None and "two raters" in lone.reason
    with pytest.raises(ValidationError):
        rel.krippendorff_alpha(data, level="fancy")
    with pytest.raises(ValidationError):
        rel.krippendorff_alpha([[1, 7], [1, 2]], value_domain=[1, 2, 3, 4, 5])
    json.dumps(same.to_dict())


def test_icc_shrout_fleiss_1979_table_2():
    res = rel.icc(SF_1979)
    # published point values (Shrout & Fleiss 1979, Table 4)
    published = {"ICC(1,1)": 0.17, "ICC(2,1)": 0.29, "ICC(3,1)": 0.71,
                 "ICC(1,k)": 0.44, "ICC(2,k)": 0.62, "ICC(3,k)": 0.91}
    for name, value in published.items():
        assert round(res[name].value, 2) == value, name
    # their ANOVA table (Table 3): BMS 11.24, WMS 6.26, JMS 32.49, EMS 1.02
    assert [round(res.anova[k], 2) for k in ("MSR", "MSW", "MSC", "MSE")] == [11.24, 6.26, 32.49, 1.02]
    # hand formula for ICC(2,1) from those mean squares
    n, k, bms, jms, ems = 6, 4, 11.241667, 32.486111, 1.019444
    assert res["ICC(2,1)"].value == pytest.approx((bms - ems) / (bms + (k - 1) * ems + k * (jms - ems) / n), abs=1e-6)
    # F-based 95% intervals as printed by R psych::ICC for these data
    # (github.com/dwoll/RExRepos, md/interRaterICC.md)
    intervals = {"ICC(1,1)": (-0.133, 0.72), "ICC(2,1)": (0.019, 0.76), "ICC(3,1)": (0.342, 0.95),
                 "ICC(1,k)": (-0.884, 0.91), "ICC(2,k)": (0.071, 0.93), "ICC(3,k)": (0.676, 0.99)}
    for name, (low, high) in intervals.items():
        assert round(res[name].low, 3) == low, name
        assert round(res[name].high, 2) == high, name
    assert res["ICC(2,1)"].f == pytest.approx(11.03, abs=0.01)
    assert (res["ICC(2,1)"].df1, res["ICC(2,1)"].df2) == (5, 15)
    assert res["ICC(2,1)"].p == pytest.approx(0.00013, abs=1e-5)
    json.dumps(res.to_dict())
    assert len(res.to_rows()) == 6


def test_icc_drops_incomplete_targets_and_rejects_tiny_inputs():
    res = rel.icc(SF_1979 + [[1, None, 3, 4]])
    assert res.n_dropped == 1 and res.n_targets == 6
    assert res["ICC(2,1)"].value == pytest.approx(rel.icc(SF_1979)["ICC(2,1)"].value)
    with pytest.raises(ValidationError):
        rel.icc([[1, 2, 3]])
    # perfect agreement: ICC = 1, no crash on a zero residual
    perfect = rel.icc([[1, 1], [3, 3], [5, 5]])
    assert perfect["ICC(2,1)"].value == pytest.approx(1.0)
    json.dumps(perfect.to_dict())
