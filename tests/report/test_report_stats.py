"""The statistics of the verdicts: hand-computed t-tests and Holm, power, and seeded simulations.

The simulations are vectorised (stats.py's core works along the last axis): 2,000 replicates of a
comparison take milliseconds. They hold the verdicts to their promise: on pure noise "supported" or
"contradicted" at most at the nominal rate; a real difference of 3 standard deviations with 5 seeds
per arm found at least 90% of the time; the same for Holm-corrected families.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from imacsr_cli.report import stats

R = 2000  # replicates per simulation
CODE = stats.CODES


# ---- hand-computed values ---------------------------------------------------------------------


def test_welch_t_against_hand_computed_values():
    a, b = [10.0, 12.0, 14.0], [5.0, 7.0, 9.0, 11.0]
    # mean 12 (var 4), mean 8 (var 20/3): se^2 = 4/3 + 5/3 = 3; t = 4/sqrt(3);
    # df = 3^2 / ((4/3)^2/2 + (5/3)^2/3) = 9 / (8/9 + 25/27) = 243/49
    c = stats.compare(a, b, seeds_a=[0, 1, 2], seeds_b=[0, 1, 2, 3])
    assert c.test == stats.WELCH and (c.n_a, c.n_b) == (3, 4)
    df = 243 / 49
    assert c.df == pytest.approx(df) and c.se == pytest.approx(math.sqrt(3))
    assert c.diff == pytest.approx(4.0)
    assert c.p == pytest.approx(2 * sps.t.sf(4 / math.sqrt(3), df))
    half = sps.t.ppf(0.975, df) * math.sqrt(3)
    assert (c.low, c.high) == (pytest.approx(4 - half), pytest.approx(4 + half))
    assert 0.05 < c.p < 0.1 and c.verdict == stats.INCONCLUSIVE


def test_paired_t_against_a_closed_form():
    # per-seed differences 1, 2, 1: mean 4/3, sd sqrt(1/3), se 1/3, t = 4 with df = 2, where the
    # two-sided p has the closed form 1 - t / sqrt(t^2 + 2) = 1 - 4/sqrt(18)
    a, b = [5.0, 7.0, 9.0], [8.0, 4.0, 5.0]
    c = stats.compare(a, b, seeds_a=[0, 1, 2], seeds_b=[2, 0, 1])  # b listed in another seed order
    assert c.test == stats.PAIRED and c.df == 2
    assert c.diff == pytest.approx(4 / 3) and c.se == pytest.approx(1 / 3)
    assert c.p == pytest.approx(1 - 4 / math.sqrt(18))
    half = 4.302652729911275 / 3  # t(0.975, 2) / 3
    assert (c.low, c.high) == (pytest.approx(4 / 3 - half), pytest.approx(4 / 3 + half))
    assert c.verdict == stats.INCONCLUSIVE  # p = 0.057
    # the same numbers with seeds that differ are two independent arms: Welch's
    assert stats.compare(a, b, [0, 1, 2], [3, 4, 5]).test == stats.WELCH


def test_holm_adjusted_p_values_by_hand():
    # sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1 = 0.02, 0.03, 0.06, 0.04 -> monotone: 0.04 -> 0.06
    assert stats.holm(np.array([0.01, 0.04, 0.03, 0.005])) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert stats.holm(np.array([0.5, 0.6])) == pytest.approx([1.0, 1.0])  # capped at 1
    assert stats.holm(np.array([0.2])) == pytest.approx([0.2])


def test_power_and_seeds_needed_against_textbook_values():
    # large df: the normal approximation, z(0.975) + z(0.80) = 1.95996 + 0.84162 standard errors
    assert stats.detectable(1.0, 1e7) == pytest.approx(2.80158, abs=1e-3)
    assert stats.power(2.80158, 1.0, 1e7) == pytest.approx(0.80, abs=1e-4)
    # two-sample t-test, effect size d = 1 (0.5): 17 (64) per group for 80% power at alpha 0.05
    assert stats.seeds_needed(1.0, False, 1.0, 1.0, math.nan) == 17
    assert stats.seeds_needed(0.5, False, 1.0, 1.0, math.nan) == 64
    # and it is the first n that is enough
    se16, df16 = 1.0 * math.sqrt(2 / 16), 30.0
    assert stats.power(1.0, se16, df16) < 0.8 <= stats.power(1.0, math.sqrt(2 / 17), 32.0)
    assert stats.seeds_needed(1e-6, False, 1.0, 1.0, math.nan) is None  # beyond MAX_SEEDS


def test_fewer_than_two_runs_is_no_spread_never_a_disagreement():
    for a, b in (([40.0], [41.0, 42.0]), ([40.0, 41.0], [39.0]), ([], [])):
        c = stats.compare(a, b)
        assert c.verdict == stats.NO_SPREAD == "no spread yet: run \u2265 2 seeds" and not c.test
    assert stats.compare([40.0], [39.0], label="x").describe() == \
        "x: +1.00 points (no interval), n = 1/1: " + stats.NO_SPREAD
    fam = stats.family([stats.compare([40.0], [39.0]), stats.compare([41.0, 41.2], [40.0, 40.1])])
    assert fam.verdict == stats.NO_SPREAD  # one comparison supported, one without spread


def test_inconclusive_says_what_could_have_been_detected():
    c = stats.compare([47.1, 44.9, 48.3], [43.2, 46.0, 44.1], [0, 1, 2], [3, 4, 5], target=4.02, label="x")
    assert c.verdict == stats.INCONCLUSIVE
    se, df = c.se, c.df
    d = c.detectable()
    assert stats.power(d, se, df) == pytest.approx(0.8, abs=1e-6)
    need = c.seeds_needed()
    assert need == 4  # sd 1.72 and 1.43: se with 4 seeds each = 1.12, power 0.84; with 3, 0.64
    assert f"could have detected {d:.2f} points (80% power); the paper's +4.02 needs 4 seeds per arm" in c.describe()


def test_a_contradiction_is_a_significant_difference_against_the_claim():
    c = stats.compare([40.0, 40.2, 40.1], [45.0, 45.3, 45.1], claim=1)
    assert c.verdict == stats.CONTRADICTED
    assert stats.compare([40.0, 40.2, 40.1], [45.0, 45.3, 45.1], claim=-1).verdict == stats.SUPPORTED


# ---- simulations ------------------------------------------------------------------------------


def _rate(codes: np.ndarray, *which: int) -> float:
    return float(np.isin(codes, which).mean())


@pytest.mark.parametrize("n", [2, 3, 5])
@pytest.mark.parametrize("paired", [False, True])
def test_on_pure_noise_a_verdict_comes_out_at_most_at_the_nominal_rate(n, paired):
    rng = np.random.default_rng(1000 + n)
    a, b = rng.normal(50, 1, (R, n)), rng.normal(50, 1, (R, n))
    diff, _, _, p, _ = stats.t_test(a, b, paired)
    codes = stats.decide(diff, p, 1)
    assert _rate(codes, CODE["supported"], CODE["contradicted"]) <= 0.06


@pytest.mark.parametrize("paired", [False, True])
def test_three_standard_deviations_with_five_seeds_are_found(paired):
    rng = np.random.default_rng(7)
    a, b = rng.normal(53, 1, (R, 5)), rng.normal(50, 1, (R, 5))
    diff, low, high, p, _ = stats.t_test(a, b, paired)
    assert _rate(stats.decide(diff, p, 1), CODE["supported"]) >= 0.90
    assert _rate(stats.decide(diff, p, -1), CODE["contradicted"]) >= 0.90  # the claim the other way
    assert ((low <= 3) & (3 <= high)).mean() == pytest.approx(0.95, abs=0.015)  # the CI covers the truth


def test_the_scalar_api_decides_as_the_vectorised_core():
    rng = np.random.default_rng(3)
    a, b = rng.normal(0, 1, (200, 3)), rng.normal(0.8, 1, (200, 3))
    diff, _, _, p, _ = stats.t_test(a, b, False)
    words = {v: k for k, v in stats._WORDS.items()}
    codes = [words[stats.compare(x, y, claim=1).verdict] for x, y in zip(a, b)]
    assert codes == list(stats.decide(diff, p, 1))


def _family_codes(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(R, m, n) arms -> per-comparison codes at Holm-adjusted p, (R, m)."""
    diff, _, _, p, _ = stats.t_test(a, b, False)
    return stats.decide(diff, stats.holm(p), 1)


@pytest.mark.parametrize("m", [2, 3, 6])
def test_a_holm_family_on_pure_noise_stays_at_the_nominal_rate(m):
    rng = np.random.default_rng(50 + m)
    a, b = rng.normal(0, 1, (R, m, 3)), rng.normal(0, 1, (R, m, 3))
    verdict = stats.combine_all(_family_codes(a, b))
    assert _rate(verdict, CODE["supported"], CODE["contradicted"]) <= 0.06
    # without the correction the same family would often "find" something
    diff, _, _, p, _ = stats.t_test(a, b, False)
    raw = stats.decide(diff, p, 1)
    if m == 6:
        assert _rate((raw > 0).any(axis=-1), True) > 0.15


@pytest.mark.parametrize("m", [2, 3])
def test_a_holm_family_finds_three_standard_deviations_with_five_seeds(m):
    rng = np.random.default_rng(90 + m)
    a, b = rng.normal(3, 1, (R, m, 5)), rng.normal(0, 1, (R, m, 5))
    assert _rate(stats.combine_all(_family_codes(a, b)), CODE["supported"]) >= 0.90


def test_fig3_rule_on_noise_and_on_a_real_optimum():
    # 3 inner counts x 2 ends, laid out (k, e) row-major as figures.check_figure builds them
    rng = np.random.default_rng(11)
    noise = rng.normal(0, 1, (R, 5, 3))  # counts 1..5, 3 seeds
    pairs = [(k, e) for k in (1, 2, 3) for e in (0, 4)]

    def verdicts(x: np.ndarray) -> np.ndarray:
        a = np.stack([x[:, k] for k, _ in pairs], axis=1)
        b = np.stack([x[:, e] for _, e in pairs], axis=1)
        return stats.combine_inside_best(_family_codes(a, b), n_inner=3)

    assert _rate(verdicts(noise), CODE["supported"], CODE["contradicted"]) <= 0.06
    peak = rng.normal(0, 1, (R, 5, 5)) + np.array([0, 3, 3, 3, 0])[None, :, None]  # 3 SD, 5 seeds
    assert _rate(verdicts(peak), CODE["supported"]) >= 0.90
    edge = rng.normal(0, 1, (R, 5, 5)) + np.array([3, 0, 0, 0, 0])[None, :, None]  # the smallest wins
    # a contradiction needs the end to beat all three inner counts (3 of the 6 Holm steps; the other 3
    # comparisons are null): 71% of replicates here, never a "supported"
    rate = _rate(verdicts(edge), CODE["contradicted"])
    assert 0.65 <= rate and _rate(verdicts(edge), CODE["supported"]) <= 0.01
