"""Where the slip is: which draw function of a failed `check_gibbs` verdict returns what, at
which coordinate and state, against the exact conditional.

`diagnose(verdict)` reads the consistency check's table, in the stage that decided
(`result.in_stages`). A block failed when one of its tests there disagrees. Its coordinates are
those with a failed test; when only a test across its elements or across the states failed, its
most suspect coordinate stands for it. Each coordinate is reported at the consistency state of
its smallest p-value. A row of the frame holds, from the table:

    block, coordinate  the function's key, and the element (a coupled component that failed
                       is named as the table names it, or, when drawn again, by its elements,
                       a row each)
    state, origin      the state's index in `verdict.references.states` (`ModelReferences`),
                       and whether it is a posterior or a prior draw
    test, p_holm       the test with the smallest p-value there, and its Holm-adjusted p-value
    mean_z, var_z      the z-scores of the user's mean and variance there (NaN for a coupled
                       component, whose tests are of whitened draws), on PyMC's unconstrained
                       scale, where the check tests
    draws              how many calls of the function the row's numbers rest on

At that state the evidence is drawn again when the block's full conditional is one that
`conjugate_conditionals(model)` recognizes in a family read here: normal, gamma, inverse gamma or
beta element by element, or a multivariate normal by rows or as one. Exact draws of that
conditional are the starts; the user's function is called once on each, as the check calls it
(`generic.call_batch`); and its returns are set beside the exact conditional on the natural
scale:

    mean_shift   (mean of the user's draws - exact mean) / exact SD
    sd_ratio     SD of the user's draws / exact SD
    corr_diff    in a block of several elements: the user's correlation between this element and
                 another minus the exact one, the other chosen where it is largest in size
                 (`corr_pair` names both); about 1/sqrt(draws) even for a right function
    family       the recognized family
    exact        the element's exact parameters, as PyMC names them, to five significant digits
                 ("alpha=1046.5, beta=90097"; a multivariate normal's element: its marginal
                 normal, mu and sigma)
    fitted       the same family fitted to the user's draws by the method of moments: the
                 parameters whose mean and variance are the draws' mean and variance

A block that cannot be drawn here keeps only what the table has, the other columns empty (NaN,
or "" for text). That is a block with no recognized conjugate conditional, a Wishart, inverse
Wishart or Dirichlet one (matrix or simplex parameters, no family per element), or one whose
family fails its verification at that state. The same seed gives the same frame.

Verdicts of `check_sampler` are not covered: their states and conditionals are the flagship's
own, and their consistency table (`verdict["consistency"].table`) already has each coordinate's
mean and variance z-scores.
"""

from __future__ import annotations

__all__ = ["COLUMNS", "SHOWN_COLUMNS", "diagnose", "explain_failure", "plot_diagnosis"]

import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import pandas as pd
from scipy import special
from scipy import stats as st

from hiercheck.errors import ConjugacyError, SettingsError, require_integer

from .generic import Batch, Block, call_batch

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from .conjugate import ConjugateConditional
    from .result import Verdict

COLUMNS = ["block", "coordinate", "state", "origin", "test", "p_holm", "mean_z", "var_z", "draws",
           "mean_shift", "sd_ratio", "corr_diff", "corr_pair", "family", "exact", "fitted"]
# what a reader sees first (the command's printout, the report's table); the rest is in the frame
SHOWN_COLUMNS = ["block", "coordinate", "state", "origin", "mean_shift", "sd_ratio", "exact",
                 "fitted"]


class _Marginal(NamedTuple):
    """One element's family: its parameters' names, scipy's law of x from them, the method of
    moments ((mean, variance) -> parameters), and PyMC's unconstrained scale u (its name as an
    axis label's prefix, u of x, x of u and dx/du), on which the figure draws: a log or logit
    keeps a slip by orders of magnitude and the right conditional apart on one axis.
    """

    parameters: tuple[str, ...]
    law: Callable
    fit: Callable[[float, float], tuple[float, ...]]
    scale: str
    to_u: Callable
    from_u: Callable
    jacobian: Callable


def _inverse_gamma_fit(mean: float, variance: float) -> tuple[float, float]:
    # IG(alpha, beta): mean beta/(alpha - 1), variance mean^2/(alpha - 2)
    alpha = mean**2 / variance + 2
    return alpha, mean * (alpha - 1)


def _beta_fit(mean: float, variance: float) -> tuple[float, float]:
    # Beta(alpha, beta): variance mean (1 - mean) / (alpha + beta + 1)
    total = mean * (1 - mean) / variance - 1
    return mean * total, (1 - mean) * total


_MARGINALS = {
    "normal": _Marginal(("mu", "sigma"), lambda mu, sigma: st.norm(mu, sigma),
                        lambda mean, variance: (mean, np.sqrt(variance)), "",
                        lambda x: x, lambda u: u, np.ones_like),
    "gamma": _Marginal(("alpha", "beta"), lambda alpha, beta: st.gamma(alpha, scale=1 / beta),
                       lambda mean, variance: (mean**2 / variance, mean / variance), "log ",
                       np.log, np.exp, np.exp),
    "inversegamma": _Marginal(("alpha", "beta"),
                              lambda alpha, beta: st.invgamma(alpha, scale=beta),
                              _inverse_gamma_fit, "log ", np.log, np.exp, np.exp),
    "beta": _Marginal(("alpha", "beta"), lambda alpha, beta: st.beta(alpha, beta), _beta_fit,
                      "logit ", special.logit, special.expit,
                      lambda u: special.expit(u) * special.expit(-u)),
}
_MULTIVARIATE = ("mvnormal",)  # read element by element through their marginal normals


@dataclass(frozen=True)
class _Evidence:
    """A block's draws again at one state: the user's returns (draws, elements) on the natural
    scale, each element's label, its marginal family and exact parameters, and the exact
    correlations of element j with every element (`correlation(j)`).
    """

    family: str
    marginal: str
    labels: list[str]
    mine: np.ndarray
    parameters: list[dict[str, float]]
    correlation: Callable[[int], np.ndarray]


def diagnose(verdict: Verdict, draws: int | None = None, seed: int = 0) -> pd.DataFrame:
    """Where a `check_gibbs` verdict's failing draw functions differ from their exact
    conditionals (the module docstring says how each column is found).

    Parameters
    ----------
    verdict : Verdict
        A verdict of `check_gibbs` with a consistency check.
    draws : int, optional
        Calls of the user's function per block and state; default as many as the consistency
        check made there in the stage that decided.
    seed : int, default 0
        Fixes the starts and the calls.

    Returns
    -------
    pandas.DataFrame
        `COLUMNS`: a row per failing coordinate (a coupled component's failure gives a row per
        element), the smallest p-value first; no rows when the consistency check saw no block
        differ, whatever the other checks saw.

    Raises
    ------
    SettingsError
        For a verdict of `check_sampler`, or one without a consistency table to read.
    UserFunctionError
        When a draw function called again returns what cannot be draws (`generic.call_block`).
    """
    return _diagnosis(verdict, draws, seed)[0]


def plot_diagnosis(verdict: Verdict, coordinate: str | None = None, draws: int | None = None,
                   seed: int = 0) -> Figure:
    """The user's draws of one failing coordinate against its exact conditional, on PyMC's
    unconstrained scale (log for a positive family, logit for a beta): a histogram with the
    exact density, and the empirical CDF with the exact one.

    Parameters
    ----------
    verdict : Verdict
        A verdict of `check_gibbs` with a consistency check.
    coordinate : str, optional
        A coordinate of `diagnose(verdict)`, such as "theta[3]"; default its first row that has
        an exact conditional (the worst such).
    draws : int, optional
        As for `diagnose`.
    seed : int, default 0
        As for `diagnose`: the figure draws the frame's own draws.

    Returns
    -------
    matplotlib.figure.Figure
        Two panels, titled with the block, coordinate, state, mean shift and SD ratio.

    Raises
    ------
    SettingsError
        As `diagnose`; and when no failing coordinate (or none named `coordinate`) has an exact
        conditional to draw.
    """
    return _figure(*_diagnosis(verdict, draws, seed), coordinate)


def _figure(frame: pd.DataFrame, evidence: dict, coordinate: str | None) -> Figure:
    """`plot_diagnosis`'s figure from a diagnosis already made (`_diagnosis`)."""
    from .plots import new_axes  # matplotlib, only for a figure

    drawn = frame[frame.family != ""]
    if coordinate is not None:
        drawn = drawn[drawn.coordinate == coordinate]
    if drawn.empty:
        what = ("no failing coordinate of this verdict has" if coordinate is None else
                f"{coordinate!r} is not a failing coordinate with")
        raise SettingsError(f"nothing to draw: {what} an exact (conjugate) conditional; "
                            f"diagnose() lists the {len(frame)} failing coordinates")
    row = drawn.iloc[0]
    found = evidence[row.block, row.state]
    j = found.labels.index(row.coordinate)
    marginal = _MARGINALS[found.marginal]
    law = marginal.law(**found.parameters[j])
    with np.errstate(all="ignore"):  # a return outside the support has no u: it is not drawn
        mine = marginal.to_u(found.mine[:, j])
    mine = np.sort(mine[np.isfinite(mine)])
    exact_ends = marginal.to_u(law.ppf([1e-4, 1 - 1e-4]))
    low = min(exact_ends[0], np.quantile(mine, 0.001))
    high = max(exact_ends[1], np.quantile(mine, 0.999))
    # the exact density's own span gets its own points: a slip can put the draws far away, and a
    # grid over both would step over the exact conditional's narrow peak
    grid = np.union1d(np.linspace(low, high, 400), np.linspace(*exact_ends, 400))
    x = marginal.from_u(grid)
    histogram, cdf = new_axes(1, 2, figsize=(11, 4.2))
    histogram.hist(mine, bins=60, range=(low, high), density=True, color="C0", alpha=0.6,
                   label=f"your draws ({mine.size}); fitted {row.fitted}")
    histogram.plot(grid, law.pdf(x) * marginal.jacobian(grid), color="k", lw=1.2,
                   label=f"exact {found.family}: {row.exact}")
    cdf.step(mine, np.arange(1, mine.size + 1) / mine.size, where="post", color="C0",
             label="your draws")
    cdf.plot(grid, law.cdf(x), color="k", lw=1.2, label="exact")
    label = f"{marginal.scale}{row.coordinate}"
    histogram.set(xlabel=label, ylabel="density", title="histogram and exact density")
    cdf.set(xlabel=label, ylabel="P(X <= x)", title="empirical and exact CDF")
    for ax in (histogram, cdf):
        ax.legend(fontsize=8)
    figure = histogram.figure
    figure.suptitle(f"{row.coordinate} (block {row.block}) at consistency state {row.state} "
                    f"({row.origin}): mean shift {row.mean_shift:.3g} exact SDs, "
                    f"SD ratio {row.sd_ratio:.3g}", fontsize=11)
    return figure


def explain_failure(verdict: Verdict) -> tuple[pd.DataFrame | None, Figure | None]:
    """What a command or a report shows after a verdict: the diagnosis when its consistency
    check failed, and the worst coordinate's draws against its exact conditional.

    Parameters
    ----------
    verdict : Verdict
        Any verdict, of `check_gibbs` or `check_sampler`.

    Returns
    -------
    frame : pandas.DataFrame or None
        `diagnose(verdict)`; None when no consistency check failed, or when `diagnose` cannot
        read the failure (a verdict of `check_sampler`, a sweep that diverged).
    figure : matplotlib.figure.Figure or None
        `plot_diagnosis(verdict)`; None with no frame, or when no failing coordinate has an
        exact conditional to draw.
    """
    outcome = next((o for o in verdict.outcomes if o.check == "consistency"), None)
    if outcome is None or outcome.status != "failed":
        return None, None
    try:
        frame, evidence = _diagnosis(verdict, None, 0)
    except SettingsError:  # diagnose cannot read this failure, and has said why in its message
        return None, None
    try:
        figure = _figure(frame, evidence, None)
    except SettingsError:  # no failing coordinate has an exact conditional to draw against
        figure = None
    return frame, figure


# -- the diagnosis -------------------------------------------------------------------------------

def _diagnosis(verdict: Verdict, draws: int | None, seed: int
               ) -> tuple[pd.DataFrame, dict[tuple[str, int], _Evidence]]:
    """The frame of `diagnose`, and the evidence drawn again, by (block, state)."""
    if draws is not None:
        require_integer("draws", draws, 2)  # an SD needs two
    table = _consistency_table(verdict)
    suspects = _suspects(table)
    blocks = {block.key: block for block in verdict.blocks}
    conjugate = verdict.references.conjugate
    evidence: dict[tuple[str, int], _Evidence | None] = {}
    rows = []
    for suspect in suspects:
        block = blocks[suspect["block"]]
        conditional = conjugate.get(frozenset(block.names))
        key = (block.key, suspect["state"])
        drawable = conditional is not None and conditional.family in (*_MARGINALS,
                                                                      *_MULTIVARIATE)
        if drawable and key not in evidence:
            size = draws or max(s["draws"] for s in suspects
                                if (s["block"], s["state"]) == key)
            evidence[key] = _drawn_again(verdict, block, conditional, suspect["state"], size,
                                         seed)
        found = evidence.get(key)
        if found is None:
            rows.append(suspect | {"family": "", "exact": "", "fitted": "", "corr_pair": ""})
            continue
        for label in _elements(suspect["coordinate"], found.labels):
            rows.append(suspect | {"coordinate": label, "draws": len(found.mine)}
                        | _measured(found, found.labels.index(label)))
    frame = pd.DataFrame(rows, columns=COLUMNS)
    return frame, {key: value for key, value in evidence.items() if value is not None}


def _consistency_table(verdict: Verdict) -> pd.DataFrame:
    """The consistency check's table, in the stage that decided.

    Raises
    ------
    SettingsError
        For a verdict of `check_sampler`, without a consistency check, or whose consistency
        check stopped before its tests (a sweep that diverged).
    """
    if not verdict.blocks:
        raise SettingsError(
            "diagnose() covers verdicts of check_gibbs; a verdict of check_sampler has each "
            "coordinate's mean and variance z-scores in verdict['consistency'].table")
    try:
        outcome = verdict["consistency"]
    except KeyError:
        raise SettingsError("diagnose() reads the consistency check, which this verdict did not "
                            "run: include 'consistency' in check_gibbs's checks") from None
    table = outcome.table
    if "block" not in table:
        raise SettingsError(f"the consistency check has no tests to read: {outcome.statistic}")
    return table[table.stage == table.stage.max()] if "stage" in table else table


def _suspects(table: pd.DataFrame) -> list[dict]:
    """A row of the frame-to-be per failing block and coordinate, at the state of its smallest
    p-value (ties: the larger |statistic|), filled from the table; worst first.
    """
    failed = list(dict.fromkeys(table.block[~table.agree.astype(bool)]))
    # the tests of one coordinate at one state; those pooled over states or across elements
    # name no coordinate
    tested = table[(table.point >= 0) & (table.test != "independence")].assign(
        severity=lambda t: -t.statistic.astype(float).abs().fillna(0.0))
    tested = tested.sort_values(["p", "severity"], kind="stable")
    suspects = []
    for block in failed:
        mine = tested[tested.block == block]
        wrong = mine[~mine.agree.astype(bool)]
        coordinates = list(dict.fromkeys(wrong.coordinate)) or [mine.coordinate.iloc[0]]
        for coordinate in coordinates:
            worst = mine[mine.coordinate == coordinate].iloc[0]
            at = mine[(mine.coordinate == coordinate) & (mine.point == worst.point)]
            z = {test: float(at.statistic[at.test == test].iloc[0]) if (at.test == test).any()
                 else np.nan for test in ("mean", "variance")}
            suspects.append({
                "block": block, "coordinate": coordinate, "state": int(worst.point),
                "origin": worst.origin, "test": worst.test, "p_holm": float(worst.p_holm),
                "mean_z": z["mean"], "var_z": z["variance"], "draws": int(worst.draws),
                "mean_shift": np.nan, "sd_ratio": np.nan, "corr_diff": np.nan,
                "order": (float(worst.p), float(worst.severity))})
    suspects.sort(key=lambda suspect: suspect["order"])
    return [{name: value for name, value in suspect.items() if name != "order"}
            for suspect in suspects]


def _elements(coordinate: str, labels: list[str]) -> list[str]:
    """The elements a coordinate of the table names: itself, or the elements of a coupled
    component "(a, b, c)"; a long one is named "(first, ..., last: K coupled)", and its elements
    are the labels from first to last, as every component of more than four elements is a
    variable's consecutive elements (a row of a matrix, a vector, a tuple drawn jointly).
    """
    if not coordinate.startswith("("):
        return [coordinate]
    inner = coordinate[1:-1]
    if ": " not in inner:
        return inner.split(", ")
    first, last = inner.split(": ")[0].split(", ..., ")
    return labels[labels.index(first):labels.index(last) + 1]


def _drawn_again(verdict: Verdict, block: Block, conditional: ConjugateConditional, point: int,
                 size: int, seed: int) -> _Evidence | None:
    """`size` exact draws of the block's conditional at the consistency state `point` as
    starts, the user's function called on each, and the exact family of each element; None
    where the family fails its verification at that state (the check then used numerical
    references too).
    """
    references = verdict.references
    _, x = references.states[point]
    # the block's and the state's own stream: a row does not depend on which others are asked
    rng = np.random.default_rng([seed, point, zlib.crc32(block.key.encode())])
    try:
        parameters = conditional.parameters(x)
        starts = conditional.draws(rng, x, size=size)
    except ConjugacyError:
        return None
    starts = dict(zip(conditional.names, starts if isinstance(starts, tuple) else (starts,)))
    states = {name: np.repeat(np.asarray(value)[None], size, axis=0)
              for name, value in x.items()} | starts
    returned = call_batch(block, rng, states, Batch.of(references.compiled, size),
                          references.variables)
    mine = np.concatenate([returned[name].reshape(size, -1) for name in conditional.names], axis=1)
    labels = [label for name in conditional.names
              for label in references.variables[name].element_names()]
    if conditional.family in _MARGINALS:  # one variable, its elements independent
        names = _MARGINALS[conditional.family].parameters
        flat = {name: np.reshape(parameters[name], -1) for name in names}
        marginals = [{name: float(flat[name][j]) for name in names} for j in range(len(labels))]
        return _Evidence(conditional.family, conditional.family, labels, mine, marginals,
                         lambda j: np.eye(len(labels))[j])
    mean, covariance = parameters["mu"], parameters["cov"]
    sd = np.sqrt(np.diagonal(covariance, axis1=-2, axis2=-1)).reshape(-1)
    marginals = [{"mu": float(m), "sigma": float(s)} for m, s in zip(mean.reshape(-1), sd)]
    width = mean.shape[-1]  # elements of one row ("rows"), or of the whole block ("joint")

    def correlation(j: int) -> np.ndarray:
        row, within = divmod(j, width)
        covariances = np.zeros(len(labels))
        covariances[row * width:(row + 1) * width] = covariance.reshape(-1, width, width)[
            row, within]
        return covariances / (sd[j] * sd)
    return _Evidence(conditional.family, "normal", labels, mine, marginals, correlation)


def _measured(found: _Evidence, j: int) -> dict:
    """The regenerated columns of element j: mean shift and SD ratio against its exact law,
    the largest correlation difference, the exact and moment-fitted parameters.
    """
    marginal = _MARGINALS[found.marginal]
    law = marginal.law(**found.parameters[j])
    draws = found.mine[:, j]
    mean, variance = draws.mean(), draws.var(ddof=1)
    with np.errstate(all="ignore"):  # a function that returns a constant has no fit
        fitted = dict(zip(marginal.parameters, marginal.fit(mean, variance)))
        measured = {"mean_shift": (mean - law.mean()) / law.std(),
                    "sd_ratio": np.sqrt(variance) / law.std(),
                    "corr_diff": np.nan, "corr_pair": "",
                    "family": found.family, "exact": _shown(found.parameters[j]),
                    "fitted": _shown(fitted)}
        if found.mine.shape[1] > 1:
            standard = (found.mine - found.mine.mean(0)) / found.mine.std(0)
            difference = standard.T @ standard[:, j] / len(draws) - found.correlation(j)
            difference[j] = 0.0  # an element's correlation with itself is 1 on both sides
            k = int(np.argmax(np.abs(np.nan_to_num(difference))))
            measured |= {"corr_diff": float(difference[k]),
                         "corr_pair": f"{found.labels[j]}, {found.labels[k]}"}
    return measured


def _shown(parameters: dict[str, float]) -> str:
    """'alpha=1046.5, beta=90097': five significant digits, as the frame shows parameters."""
    return ", ".join(f"{name}={value:.5g}" for name, value in parameters.items())
