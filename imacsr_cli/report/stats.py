"""The statistics behind every verdict of the reports: t-tests, Holm's correction, power.

One comparison is two arms of runs (iMacSR against conventional in a Table IV cell; two cells of
Table VI or of a figure) and a claim of the paper about their order (``claim=+1``: the paper says arm
a beats arm b). It reports the difference of means (a - b) with its 95% confidence interval, the
two-sided p-value and n per arm, from

- the **paired t-test** when both arms hold the same seeds (same seed = same initialisation and data
  order, so the seed's share of the noise cancels in the per-seed difference), else
- **Welch's t-test** (no equal-variance assumption).

The verdict uses one vocabulary everywhere (``VERDICTS``):

- *supported*: the difference has the claimed sign and p < alpha;
- *contradicted*: the opposite sign and p < alpha;
- *inconclusive*: neither; with the difference the runs could have detected (80% power at the
  observed spread) and the seeds per arm needed to detect the target difference (the paper's own,
  where the paper gives one; else ours);
- *no spread yet: run >= 2 seeds*: an arm has fewer than two runs, so there is no spread to test
  against (never a "disagrees").

A finding made of several comparisons (``family``) adjusts their p-values with Holm's step-down
correction (family-wise error <= alpha), then combines the comparisons' verdicts: so on pure noise
a finding is called supported or contradicted at most alpha of the time.

The core (``t_test``, ``holm``, ``decide``, ``combine_all``) works on numpy arrays along the last
axis, so a simulation of thousands of replicates runs in milliseconds; the scalar API
(``compare``, ``family``) is the same code on one replicate.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
from scipy import optimize
from scipy import stats as sps

ALPHA = 0.05
POWER = 0.80
MAX_SEEDS = 1000  # "seeds per arm needed" beyond this is reported as "more than 1000"

SUPPORTED = "supported"
CONTRADICTED = "contradicted"
INCONCLUSIVE = "inconclusive"
NO_SPREAD = "no spread yet: run \u2265 2 seeds"
VERDICTS = (SUPPORTED, CONTRADICTED, INCONCLUSIVE, NO_SPREAD)

PAIRED = "paired t"
WELCH = "Welch t"

# integer codes of the vectorised core
_NO_SPREAD, _INCONCLUSIVE, _SUPPORTED, _CONTRADICTED = -1, 0, 1, 2
_WORDS = {_NO_SPREAD: NO_SPREAD, _INCONCLUSIVE: INCONCLUSIVE, _SUPPORTED: SUPPORTED, _CONTRADICTED: CONTRADICTED}


# ---- the vectorised core ----------------------------------------------------------------------


def t_test(a: np.ndarray, b: np.ndarray, paired: bool, alpha: float = ALPHA
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Difference of means a - b, its (1 - alpha) CI (low, high), two-sided p and df, along the last
    axis (scipy.stats.ttest_rel for paired arms, ttest_ind(equal_var=False) for Welch's).

    Arms without spread (every value equal in both) give p = 1 when the means are equal and p = 0
    when they differ: the seeds then agree exactly.
    """
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"), warnings.catch_warnings():
        # near-identical values (seeds that agree to 1e-12): scipy warns of precision loss, and the
        # answer (a tiny p for a nonzero difference) is the right one
        warnings.simplefilter("ignore", RuntimeWarning)
        res = sps.ttest_rel(a, b, axis=-1) if paired else sps.ttest_ind(a, b, axis=-1, equal_var=False)
        ci = res.confidence_interval(1.0 - alpha)
    diff = (a - b).mean(axis=-1) if paired else a.mean(axis=-1) - b.mean(axis=-1)
    p = np.asarray(res.pvalue, dtype=float)
    exact = np.isnan(p)  # zero spread: scipy gives nan (0/0)
    p = np.where(exact, np.where(np.isclose(diff, 0.0), 1.0, 0.0), p)
    low = np.where(np.isnan(ci.low), diff, ci.low)
    high = np.where(np.isnan(ci.high), diff, ci.high)
    return diff, low, high, p, np.asarray(res.df, dtype=float)


def decide(diff: np.ndarray, p: np.ndarray, claim: np.ndarray | int, alpha: float = ALPHA) -> np.ndarray:
    """Verdict codes: supported where the sign is the claimed one and p < alpha, contradicted where
    it is the opposite and p < alpha, else inconclusive."""
    diff, p = np.asarray(diff, dtype=float), np.asarray(p, dtype=float)
    sign = np.sign(diff) * np.sign(claim)
    out = np.full(np.broadcast(diff, p).shape, _INCONCLUSIVE, dtype=int)
    out[(p < alpha) & (sign > 0)] = _SUPPORTED
    out[(p < alpha) & (sign < 0)] = _CONTRADICTED
    return out


def holm(p: np.ndarray) -> np.ndarray:
    """Holm's step-down adjusted p-values along the last axis: sort ascending, multiply the k-th
    smallest (k = 0, 1, ...) by m - k, make the sequence non-decreasing, cap at 1."""
    p = np.asarray(p, dtype=float)
    m = p.shape[-1]
    order = np.argsort(p, axis=-1)
    ranked = np.take_along_axis(p, order, axis=-1) * (m - np.arange(m))
    ranked = np.minimum(np.maximum.accumulate(ranked, axis=-1), 1.0)
    out = np.empty_like(ranked)
    np.put_along_axis(out, order, ranked, axis=-1)
    return out


def combine_all(codes: np.ndarray) -> np.ndarray:
    """A finding that needs every comparison ("input beats central and output in every series"):
    contradicted if any comparison is, supported if all are, no spread if any comparison lacks one
    (and none contradicts), else inconclusive. Along the last axis."""
    codes = np.asarray(codes)
    out = np.full(codes.shape[:-1], _INCONCLUSIVE, dtype=int)
    out[(codes == _NO_SPREAD).any(axis=-1)] = _NO_SPREAD
    out[(codes == _SUPPORTED).all(axis=-1)] = _SUPPORTED
    out[(codes == _CONTRADICTED).any(axis=-1)] = _CONTRADICTED
    return out


def combine_inside_best(codes: np.ndarray, n_inner: int) -> np.ndarray:
    """Fig. 3's finding ("a moderate count is best"): the comparisons laid out (inner count k, end e)
    row-major along the last axis, two ends per inner count. Supported if some inner count beats
    both ends; contradicted if some end beats every inner count; else no spread if a comparison
    lacks one, else inconclusive."""
    codes = np.asarray(codes)
    grid = codes.reshape(*codes.shape[:-1], n_inner, 2)
    out = np.full(codes.shape[:-1], _INCONCLUSIVE, dtype=int)
    out[(codes == _NO_SPREAD).any(axis=-1)] = _NO_SPREAD
    out[(grid == _CONTRADICTED).all(axis=-2).any(axis=-1)] = _CONTRADICTED
    out[(grid == _SUPPORTED).all(axis=-1).any(axis=-1)] = _SUPPORTED
    return out


# ---- power ------------------------------------------------------------------------------------


def power(delta: float, se: float, df: float, alpha: float = ALPHA) -> float:
    """Power of the two-sided t-test at level alpha to find a true difference ``delta`` whose
    estimate has standard error ``se`` (noncentral t with ``df`` degrees of freedom)."""
    if se <= 0 or not math.isfinite(se):
        return 1.0 if delta else 0.0
    crit = sps.t.ppf(1.0 - alpha / 2.0, df)
    nc = abs(delta) / se
    upper = float(sps.nct.sf(crit, df, nc))
    lower = float(sps.nct.cdf(-crit, df, nc))  # the wrong tail: tiny, and nan far out in scipy
    if math.isnan(upper):
        upper = float(sps.norm.sf(crit - nc))
    return upper + (0.0 if math.isnan(lower) else lower)


def detectable(se: float, df: float, alpha: float = ALPHA, target_power: float = POWER) -> float:
    """The smallest true difference found with ``target_power`` (80%) at this standard error."""
    if se <= 0 or not math.isfinite(se) or not math.isfinite(df) or df <= 0:
        return 0.0 if se == 0 else math.nan
    hi = se
    while power(hi, se, df, alpha) < target_power:
        hi *= 2.0
    return float(optimize.brentq(lambda d: power(d, se, df, alpha) - target_power, 0.0, hi, xtol=1e-9 * hi))


def _se_df(paired: bool, sd_a: float, sd_b: float, sd_d: float, n: int) -> tuple[float, float]:
    """Standard error and df of the difference with n seeds per arm at the given spreads."""
    if paired:
        return sd_d / math.sqrt(n), n - 1.0
    va, vb = sd_a ** 2 / n, sd_b ** 2 / n
    if va + vb == 0:
        return 0.0, 2.0 * (n - 1)
    return math.sqrt(va + vb), (va + vb) ** 2 / ((va ** 2 + vb ** 2) / (n - 1))


def seeds_needed(delta: float, paired: bool, sd_a: float, sd_b: float, sd_d: float,
                 alpha: float = ALPHA, target_power: float = POWER) -> int | None:
    """The fewest seeds per arm (>= 2) that find ``delta`` with 80% power at these spreads; None
    beyond MAX_SEEDS (or for a zero difference)."""
    if not delta or not math.isfinite(delta):
        return None

    def enough(n: int) -> bool:
        se, df = _se_df(paired, sd_a, sd_b, sd_d, n)
        return power(delta, se, df, alpha) >= target_power

    if not enough(MAX_SEEDS):
        return None
    lo, hi = 2, MAX_SEEDS
    if enough(lo):
        return lo
    while hi - lo > 1:  # power grows with n: bisect for the first n that is enough
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if enough(mid) else (mid, hi)
    return hi


# ---- one comparison ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Comparison:
    """Arm a against arm b (values in percent), and what the statistics say of the claim."""

    label: str  # "input vs central (II)"
    claim: int  # +1: the paper says a > b; -1: a < b
    n_a: int
    n_b: int
    mean_a: float
    mean_b: float
    diff: float = math.nan  # mean_a - mean_b, points
    low: float = math.nan  # 95% CI of diff
    high: float = math.nan
    p: float = math.nan  # two-sided, uncorrected
    p_adj: float | None = None  # Holm-adjusted within a family
    family_size: int = 1
    test: str = ""  # PAIRED | WELCH | "" (no spread)
    df: float = math.nan
    se: float = math.nan
    sd_a: float = math.nan
    sd_b: float = math.nan
    sd_d: float = math.nan  # spread of the per-seed differences (paired)
    target: float | None = None  # the difference to detect: the paper's, else ours
    target_is_paper: bool = False
    alpha: float = ALPHA
    verdict: str = NO_SPREAD

    @property
    def p_used(self) -> float:
        return self.p if self.p_adj is None else self.p_adj

    @property
    def level(self) -> float:
        """The level of the comparison within its family (Holm's first step: alpha / m)."""
        return self.alpha / self.family_size

    def detectable(self) -> float:
        return detectable(self.se, self.df, self.level) if self.test else math.nan

    def seeds_needed(self) -> int | None:
        if not self.test or self.target is None:
            return None
        return seeds_needed(self.target, self.test == PAIRED, self.sd_a, self.sd_b, self.sd_d, self.level)

    def describe(self) -> str:
        """'+4.02 points [95% CI +1.10, +6.94], p = 0.012 (paired t), n = 3/3: supported'."""
        n = f"n = {self.n_a}/{self.n_b}"
        if not self.test:
            shown = f"{signed(self.diff)} points (no interval), " if math.isfinite(self.diff) else ""
            return f"{self.label}: {shown}{n}: {NO_SPREAD}"
        p = p_text(self.p) + (
            f", Holm-adjusted {p_text(self.p_adj)}" if self.p_adj is not None and self.family_size > 1 else "")
        text = (f"{self.label}: {signed(self.diff)} points [95% CI {signed(self.low)}, {signed(self.high)}], "
                f"{p} ({self.test}), {n}: {self.verdict}")
        if self.verdict == INCONCLUSIVE:
            text += "; " + self.power_note()
        return text

    def power_note(self) -> str:
        """'could have detected 2.10 points (80% power); the paper's +4.02 needs 5 seeds per arm'."""
        d = self.detectable()
        out = f"could have detected {d:.2f} points (80% power)" if math.isfinite(d) else "no power estimate"
        if self.target is not None:
            need = self.seeds_needed()
            whose = "the paper's" if self.target_is_paper else "ours"
            out += (f"; {whose} {signed(self.target)} needs "
                    + (f"{need} seeds per arm" if need is not None else f"more than {MAX_SEEDS} seeds per arm"))
        return out


def compare(a: Sequence[float], b: Sequence[float], seeds_a: Sequence[int] = (), seeds_b: Sequence[int] = (),
            claim: int = 1, label: str = "", target: float | None = None, alpha: float = ALPHA) -> Comparison:
    """Compare two arms of values (one per seed). Paired when both hold the same seeds (each once),
    else Welch's. ``target``: the paper's own difference (a - b) to size the seeds needed; None
    sizes them for the observed difference."""
    a_arr, b_arr = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    mean_a = float(a_arr.mean()) if len(a_arr) else math.nan
    mean_b = float(b_arr.mean()) if len(b_arr) else math.nan
    base = Comparison(label=label, claim=1 if claim >= 0 else -1, n_a=len(a_arr), n_b=len(b_arr),
                      mean_a=mean_a, mean_b=mean_b, diff=mean_a - mean_b,
                      target=target, target_is_paper=target is not None, alpha=alpha)
    if len(a_arr) < 2 or len(b_arr) < 2:
        return base
    paired = (len(seeds_a) == len(a_arr) and len(seeds_b) == len(b_arr) and len(set(seeds_a)) == len(seeds_a)
              and sorted(seeds_a) == sorted(seeds_b))
    if paired:  # line the arms up by seed
        b_arr = b_arr[[list(seeds_b).index(s) for s in seeds_a]]
    diff, low, high, p, df = (float(x) for x in t_test(a_arr, b_arr, paired, alpha))
    sd_a, sd_b = float(a_arr.std(ddof=1)), float(b_arr.std(ddof=1))
    sd_d = float((a_arr - b_arr).std(ddof=1)) if paired else math.nan
    se = sd_d / math.sqrt(len(a_arr)) if paired else math.sqrt(sd_a ** 2 / len(a_arr) + sd_b ** 2 / len(b_arr))
    return replace(base, diff=diff, low=low, high=high, p=p, test=PAIRED if paired else WELCH, df=df, se=se,
                   sd_a=sd_a, sd_b=sd_b, sd_d=sd_d, target=target if target is not None else diff,
                   verdict=_WORDS[int(decide(diff, p, base.claim, alpha))])


# ---- a family of comparisons (one finding) ----------------------------------------------------


@dataclass(frozen=True)
class Family:
    """One finding of the paper checked by several comparisons, Holm-corrected."""

    comparisons: tuple[Comparison, ...]
    verdict: str
    rule: str  # how the comparisons' verdicts make the finding's: "all" | a description
    alpha: float = ALPHA
    notes: tuple[str, ...] = field(default=())

    def lines(self) -> list[str]:
        """The verdict with how it was reached, then one line per comparison, then the notes."""
        tested = [c for c in self.comparisons if c.test]
        head = self.verdict
        if len(tested) > 1:
            head += f" (Holm-corrected over {len(tested)} comparisons, \u03b1 = {self.alpha:g})"
        elif tested:
            head += f" (\u03b1 = {self.alpha:g})"
        return [head, *(c.describe() for c in self.comparisons), *self.notes]

    def describe(self) -> str:
        return "; ".join(self.lines())


def family(comparisons: Sequence[Comparison], combine: Callable[[np.ndarray], int] | None = None,
           rule: str = "all", alpha: float = ALPHA, notes: Sequence[str] = (), empty: str = NO_SPREAD) -> Family:
    """Holm-adjust the comparisons that have a spread (m = their number), re-decide each at the
    adjusted p, and combine the codes (default ``combine_all``). No comparison at all: ``empty``
    (no spread yet when nothing ran; the caller says inconclusive when what ran cannot test it)."""
    comps = list(comparisons)
    tested = [i for i, c in enumerate(comps) if c.test]
    if tested:
        adj = holm(np.array([comps[i].p for i in tested]))
        for k, i in enumerate(tested):
            c = comps[i]
            comps[i] = replace(c, p_adj=float(adj[k]), family_size=len(tested),
                               verdict=_WORDS[int(decide(c.diff, adj[k], c.claim, alpha))])
    codes = np.array([_code(c.verdict) for c in comps], dtype=int)
    if not len(codes):
        verdict = empty
    else:
        verdict = _WORDS[int(combine(codes) if combine else combine_all(codes))]
    return Family(tuple(comps), verdict, rule, alpha, tuple(notes))


def _code(verdict: str) -> int:
    return {v: k for k, v in _WORDS.items()}[verdict]


def code_of(verdict: str) -> int:
    """The vectorised core's code of a verdict word (for custom ``combine`` rules)."""
    return _code(verdict)


CODES = {"no_spread": _NO_SPREAD, "inconclusive": _INCONCLUSIVE, "supported": _SUPPORTED,
         "contradicted": _CONTRADICTED}


# ---- formatting -------------------------------------------------------------------------------


def signed(x: float | None) -> str:
    if x is None or not math.isfinite(x):
        return "\u2013"
    return f"{0.0 if abs(x) < 0.005 else x:+.2f}"


def p_text(p: float | None) -> str:
    """'p = 0.012' or 'p < 0.001'."""
    text = fmt_p(p)
    return f"p {text}" if text.startswith("<") else f"p = {text}"


def fmt_p(p: float | None) -> str:
    if p is None or not math.isfinite(p):
        return "\u2013"
    return "< 0.001" if p < 0.001 else f"{p:.3f}"
