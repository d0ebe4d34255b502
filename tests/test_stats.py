"""compare's statistics against hand-computed cases and against scipy/statsmodels called directly."""

import numpy as np
import pytest
from scipy import stats as st
from statsmodels.stats.contingency_tables import mcnemar as sm_mcnemar
from statsmodels.stats.multitest import multipletests

from edgedistill.analysis import stats


def test_describe_by_hand():
    d = stats.describe([90.0, 91.0, 92.0])
    assert d["mean"] == 91.0 and d["std"] == pytest.approx(1.0)
    half = 4.302652729911275 / np.sqrt(3)  # t(0.975, 2) · sd / √n
    assert d["t_ci"] == pytest.approx([91 - half, 91 + half])
    lo, hi = d["bootstrap_ci"]
    assert 90.0 <= lo < 91.0 < hi <= 92.0
    assert stats.describe([5.0, 5.0])["t_ci"] == [5.0, 5.0]


def test_paired_matches_scipy_and_hand():
    a, b = [71.2, 73.0, 72.5, 74.1, 72.8, 73.3], [70.9, 72.1, 72.6, 72.8, 71.9, 72.0]
    r = stats.paired(a, b)
    d = np.subtract(a, b)
    assert r["diff"] == pytest.approx(d.mean())
    assert r["t_p"] == pytest.approx(st.ttest_rel(a, b).pvalue)
    assert r["wilcoxon_p"] == pytest.approx(st.wilcoxon(a, b).pvalue)
    assert r["dz"] == pytest.approx(d.mean() / d.std(ddof=1))
    assert r["p_improve"] == pytest.approx(5 / 6)  # one pair of six is worse
    lo, hi = st.t.interval(0.95, 5, loc=d.mean(), scale=st.sem(d))
    assert r["diff_ci"] == pytest.approx([lo, hi])


def test_paired_edge_cases():
    same = stats.paired([1.0, 2.0, 3.0], [1.0, 2.0, 3.0])
    assert same["t_p"] == 1.0 and same["wilcoxon_p"] == 1.0 and same["dz"] == 0.0 and same["p_improve"] == 0.5
    with pytest.raises(ValueError):
        stats.paired([1.0], [2.0])


def test_prob_improvement_ties_count_half():
    assert stats.prob_improvement([1.0, 0.0, -1.0, 2.0]) == pytest.approx(0.625)


def test_mcnemar_matches_statsmodels():
    rng = np.random.default_rng(0)
    ca, cb = rng.random(400) < 0.8, rng.random(400) < 0.7
    r = stats.mcnemar(ca, cb)
    table = [[np.sum(ca & cb), np.sum(ca & ~cb)], [np.sum(~ca & cb), np.sum(~ca & ~cb)]]
    assert r["p"] == pytest.approx(sm_mcnemar(table, exact=False, correction=True).pvalue)
    assert (r["only_a"], r["only_b"]) == (table[0][1], table[1][0])
    small = stats.mcnemar(np.array([1, 1, 1, 0], bool), np.array([0, 0, 0, 0], bool))
    assert small["p"] == pytest.approx(0.25)  # exact binomial: 3 discordant all one way, 2 · 0.5³


def test_holm_and_bh_match_statsmodels_and_flip_a_verdict():
    ps = [0.01, 0.04, 0.03]
    assert stats.correct(ps, "holm") == pytest.approx([0.03, 0.06, 0.06])  # by hand: 3·0.01, max(2·0.03, 0.04·1)
    assert stats.correct(ps, "bh") == pytest.approx(list(multipletests(ps, method="fdr_bh")[1]))
    # 0.04 < α uncorrected, yet Holm's adjusted 0.06 is not: the correction turns "better" into "no evidence"
    assert stats.verdict(1.2, ps[1], 0.05) == "better"
    assert stats.verdict(1.2, stats.correct(ps, "holm")[1], 0.05) == "no evidence"


def test_verdict_strings():
    assert stats.verdict(0.5, 0.01, 0.05) == "better"
    assert stats.verdict(-0.5, 0.01, 0.05) == "worse"
    assert stats.verdict(0.5, 0.2, 0.05) == "no evidence"
    assert stats.verdict(-0.5, 0.01, 0.05, higher_is_better=False) == "better"  # e.g. a lower ECE
    assert set(stats.VERDICTS) == {"better", "no evidence", "worse", "not enough seeds"}


def test_churn_by_hand():
    c = stats.churn(np.array([[1, 2, 3], [1, 2, 4], [1, 3, 3]]))
    assert c["share"] == pytest.approx(2 / 3)  # images 2 and 3 change
    assert c["pairwise"] == pytest.approx((1 / 3 + 1 / 3 + 2 / 3) / 3)
    h = -(1 / 3 * np.log2(1 / 3) + 2 / 3 * np.log2(2 / 3))  # one image split 2:1 → 0.918 bits
    assert c["entropy_bits"] == pytest.approx((0 + h + h) / 3)
    assert stats.churn(np.array([[1, 2]]))["share"] is None
