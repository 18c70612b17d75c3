"""`hiercheck report`: one self-contained HTML page with the fits, the plots and the verdicts.

The page (`index.html`) needs nothing but itself: figures are PNGs embedded as base64 `data:`
URIs, the style sheet is inline, there is no script and no external address, so it opens offline
and can be mailed as one file. Its sections:

    data            the school-level summary and school means against school size
    engines         mu, sigma, tau and tau*sigma from EB, Gibbs, NUTS and the exact posterior
    schools         a forest plot of theta_i by engine, and the shrinkage |kappa_i| against n_i
    mixing          trace and rank plots of Gibbs and NUTS, with ESS and r_hat
    validation      the verdict of `check_sampler` on the package's derivation, SBC's ECDF plots

The sampled posteriors are the ones the checks compare (Gibbs from "agreement vs exact", exact
and NUTS from the shared references), so every plot shows what the verdict is about, and the
report costs one `hiercheck validate` plus the figures.

`hiercheck report --model NAME` (`write_model_report`) does the same for a built-in model of the
"any model" harness that has its own Gibbs engine (`bloodpressure`, `cheese`): the data, the
hand-derived Gibbs posterior beside PyMC's NUTS (the draws `check_gibbs`'s references made, not a
second run), and `check_gibbs`'s verdict with its SBC plot.
"""

from __future__ import annotations

__all__ = ["plot_densities", "plot_rank", "plot_theta_forest",
           "plot_trace", "write_model_report", "write_report"]

import base64
import html
import io
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from hiercheck._typing import SeedLike
from hiercheck.errors import SettingsError
from hiercheck.models import GroupedData, Priors
from hiercheck.models.engine import az
from hiercheck.samplers import empirical_bayes

from .builtin_models import get_builtin, models_with_engine, sweep_to_check
from .engines import estimates_table, posterior_mean_kappa
from .plots import figure_of, new_axes, plot_school_means
from .result import ALPHA, Verdict
from .suite import check_sampler

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from .generic import GenericSettings

SCALARS = ["mu", "sigma", "tau"]
FOREST_SCHOOLS = 20  # schools in the forest plot: enough to span the sizes, few enough to read
EB_DRAWS = 1000      # per chain, 4 chains: theta_i given the EB estimates is normal, draws are cheap
MODEL_DRAWS = 2000   # per chain, 4 chains, of a built-in model's Gibbs engine (seconds)


# -- the computations -----------------------------------------------------------------------------

def fit_all(data: GroupedData, priors: Priors, *, seed: SeedLike = 0, quick: bool = True,
            progress: bool = False) -> tuple[Verdict, dict, empirical_bayes.EBFit]:
    """The verdict on the package's own derivation, the four engines' posteriors it rests on
    (name -> InferenceData: eb, gibbs, nuts, exact) and the EB fit.
    """
    verdict = check_sampler(data=data, priors=priors, quick=quick, seed=seed, progress=progress)
    eb_fit = empirical_bayes.fit(data)
    posteriors = {
        "eb": eb_fit.to_inference_data(EB_DRAWS, 4, seed, priors=priors),
        "gibbs": verdict["agreement vs exact"].result.posterior,
        "nuts": verdict.references.nuts,
        "exact": verdict.references.exact,
    }
    return verdict, posteriors, eb_fit


def data_summary(data: GroupedData, words: tuple[str, str, str] = ("student", "school", "score")
                 ) -> pd.DataFrame:
    """The data in a few numbers: sizes, the grand mean, the spread within and between groups,
    called by `words` (a unit, its group, its value).
    """
    unit, group, value = words
    pooled_sd = np.sqrt(data.stats.pooled_variance)
    rows = [
        (f"{unit}s (N)", f"{data.N}"),
        (f"{group}s (m)", f"{data.m}"),
        (f"{group} sizes n_i", f"{data.n.min()} to {data.n.max()} (median {np.median(data.n):g})"),
        (f"grand mean of the {value}s", f"{data.values.mean():.5g}"),
        (f"{group} means ybar_i", f"{data.ybar.min():.5g} to {data.ybar.max():.5g}"),
        (f"SD of the {group} means", f"{data.ybar.std(ddof=1):.4g}" if data.m > 1 else "-"),
        (f"pooled within-{group} SD", f"{pooled_sd:.4g}" if data.N > data.m else "-"),
    ]
    return pd.DataFrame(rows, columns=["quantity", "value"])


def model_data_summary(data) -> pd.DataFrame:
    """A built-in model's data in a few numbers: its description; for data grouped by subject,
    `data_summary` of the groups; with a covariate x_i, each arm; with dates, their range and
    whether each group's measurements come in date order.
    """
    rows = pd.DataFrame([("data", repr(data))], columns=["quantity", "value"])
    grouped = getattr(data, "grouped", None)
    if grouped is None:
        return rows
    parts = [rows, data_summary(grouped, ("measurement", "subject", "value"))]
    x = getattr(data, "x", None)
    if x is not None:
        arms = [(f"subjects with x_i = {arm:g}",
                 f"{int((x == arm).sum())}, {int(np.isin(grouped.codes, np.flatnonzero(x == arm)).sum())} "
                 f"measurements, mean of their means {grouped.ybar[x == arm].mean():.5g}")
                for arm in np.unique(x)]
        parts.append(pd.DataFrame(arms, columns=["quantity", "value"]))
    dates = getattr(data, "dates", None)
    if dates is not None:
        from .ppc import time_order

        ordered = np.array_equal(time_order(grouped.codes, dates), np.arange(grouped.N))
        parts.append(pd.DataFrame([("dates", f"{dates.min()} to {dates.max()}; each subject's "
                                    f"measurements {'in' if ordered else 'not in'} date order")],
                                  columns=["quantity", "value"]))
    return pd.concat(parts, ignore_index=True)


def engine_table(posteriors: dict) -> pd.DataFrame:
    """The engines' estimates, as `hiercheck fit` prints them, with each engine's run time."""
    table = estimates_table(posteriors)
    table.insert(0, "engine", table.index)
    table["seconds"] = [f"{idata.posterior.attrs['sampling_time']:.2f}"
                        for idata in posteriors.values()]
    return table


def diagnostics_table(posteriors: dict) -> pd.DataFrame:
    """ESS and r_hat of mu, sigma, tau for the engines that have a chain to diagnose."""
    rows = []
    for name in ("gibbs", "nuts"):
        summary = az.summary(posteriors[name], var_names=SCALARS, kind="diagnostics")
        for variable, row in summary.iterrows():
            rows.append({"engine": name, "variable": variable, "ess_bulk": f"{row.ess_bulk:.0f}",
                         "ess_tail": f"{row.ess_tail:.0f}", "r_hat": f"{row.r_hat:.3f}"})
    return pd.DataFrame(rows)


# -- the figures ----------------------------------------------------------------------------------

def spread_schools(n: np.ndarray, count: int = FOREST_SCHOOLS) -> np.ndarray:
    """Indices of `count` schools spread evenly over the ranks of their sizes, smallest first
    (every school when there are no more than `count`).
    """
    order = np.argsort(n, kind="stable")
    picks = np.unique(np.linspace(0, n.size - 1, min(count, n.size)).round().astype(int))
    return order[picks]


def plot_theta_forest(posteriors: Mapping[str, az.InferenceData], data: GroupedData,
                      count: int = FOREST_SCHOOLS, ax: Axes | None = None) -> Axes:
    """Posterior mean and central 95% interval of theta_i for each engine, for `count` schools
    spread over the range of sizes, with the school's own mean ybar_i: the intervals narrow as n_i
    grows, and small schools' estimates sit between ybar_i and mu.

    Parameters
    ----------
    posteriors : Mapping[str, arviz.InferenceData]
        Engines' results by name; with "exact" among them, its posterior mean of mu is marked.
    data : GroupedData
        The scores the engines were given.
    count : int, default 20
        How many schools to show.
    ax : matplotlib.axes.Axes, optional
        Where to draw (default: a new Figure's, sized to `count`).

    Returns
    -------
    matplotlib.axes.Axes
        The axes drawn on.
    """
    chosen = spread_schools(data.n, count)
    if ax is None:
        ax = new_axes(figsize=(9, 0.42 * chosen.size + 2.0))
    figure = ax.figure
    rows = np.arange(chosen.size)
    offsets = np.linspace(-0.27, 0.27, len(posteriors))
    for k, (name, idata) in enumerate(posteriors.items()):
        theta = idata.posterior.theta.values.reshape(-1, data.m)[:, chosen]
        low, high = np.quantile(theta, [0.025, 0.975], axis=0)
        y = rows + offsets[k]
        ax.hlines(y, low, high, color=f"C{k}", lw=1.6)
        ax.plot(theta.mean(axis=0), y, "o", ms=3.5, color=f"C{k}", label=f"{name}: mean, 95%")
    ax.plot(data.ybar[chosen], rows, "k|", ms=14, mew=1.5, label="school mean ybar_i")
    mu = float(posteriors["exact"].posterior.mu.mean()) if "exact" in posteriors else None
    if mu is not None:
        ax.axvline(mu, color="0.5", ls="--", lw=1, label=f"posterior mean of mu ({mu:.4g})")
    ax.set_yticks(rows, [f"{data.labels[i]} (n={data.n[i]})" for i in chosen], fontsize=8)
    ax.set_ylim(-0.7, chosen.size - 0.3)
    ax.set_ylabel("school (students n_i), smallest at the bottom")
    ax.set_xlabel("theta_i, the school's true mean score")
    shown = "every school" if chosen.size == data.m else \
        f"{chosen.size} of {data.m} schools, spread over the sizes"
    ax.set_title(f"{Path(data.name).name}: posterior of each school's mean theta_i by engine\n"
                 f"({shown}; bars are central 95% intervals)", fontsize=10)
    # below the axis label: half an inch under the axes, whatever the figure's height
    ax.legend(fontsize=8, loc="upper center", ncol=3, frameon=False,
              bbox_to_anchor=(0.5, -0.5 / (figure.get_figheight() - 1.2)))
    return ax


def plot_trace(idata: az.InferenceData, name: str, data_name: str,
               axes: np.ndarray | None = None) -> np.ndarray:
    """ArviZ's trace plot of mu, sigma, tau: densities by chain (left), draws in order (right).

    Parameters
    ----------
    idata : arviz.InferenceData
        An engine's result.
    name : str
        The engine's name, for the title.
    data_name : str
        The data's name, for the title.
    axes : np.ndarray of matplotlib.axes.Axes, optional
        A (3, 2) array to draw on (default: a new Figure's).

    Returns
    -------
    np.ndarray of matplotlib.axes.Axes
        The (3, 2) axes drawn on.
    """
    if axes is None:
        axes = new_axes(len(SCALARS), 2, figsize=(10, 6.5))
    axes = az.plot_trace(idata, var_names=SCALARS, compact=False, axes=axes)
    for ax in axes[:, 1]:
        ax.set_xlabel("draw (iteration)", fontsize=8)
        ax.set_ylabel("value", fontsize=8)
    for ax in axes[:, 0]:
        ax.set_xlabel("value", fontsize=8)
        ax.set_ylabel("density", fontsize=8)
    figure = axes[0, 0].figure
    figure.subplots_adjust(hspace=0.55)  # ArviZ leaves each title on the tick labels above it
    figure.suptitle(f"{data_name}: {name} trace of mu, sigma, tau, one line per chain "
                    "(chains should overlap and the draws look like noise)", fontsize=10,
                    y=0.96)
    return axes


def plot_rank(idata: az.InferenceData, name: str, data_name: str,
              axes: np.ndarray | None = None) -> np.ndarray:
    """ArviZ's rank plot: the ranks of each chain's draws among all chains'; uniform bars mean
    the chains explore the same distribution.

    Parameters
    ----------
    idata : arviz.InferenceData
        An engine's result.
    name : str
        The engine's name, for the title.
    data_name : str
        The data's name, for the title.
    axes : np.ndarray of matplotlib.axes.Axes, optional
        One Axes for each of mu, sigma, tau (default: a new Figure's).

    Returns
    -------
    np.ndarray of matplotlib.axes.Axes
        The three axes drawn on.
    """
    if axes is None:
        axes = new_axes(1, len(SCALARS), figsize=(10, 3.4))
    axes = np.ravel(az.plot_rank(idata, var_names=SCALARS, ax=np.ravel(axes)))
    for ax in axes:
        ax.set_xlabel("rank of the draw among all chains", fontsize=8)
        ax.set_ylabel("chain", fontsize=8)
    figure = axes[0].figure
    figure.suptitle(f"{data_name}: {name} rank plot (flat bars in every chain: the chains "
                    "agree)", fontsize=10, y=1.04)  # above the axes' own titles
    return axes


def plot_densities(posteriors: Mapping[str, az.InferenceData], data_name: str,
                   axes: np.ndarray | None = None) -> np.ndarray:
    """Posterior densities of mu, sigma, tau for the sampled engines, overlaid.

    Parameters
    ----------
    posteriors : Mapping[str, arviz.InferenceData]
        Engines' results by name; "eb", which fixes mu, sigma and tau, is left out.
    data_name : str
        The data's name, for the title.
    axes : np.ndarray of matplotlib.axes.Axes, optional
        One Axes for each of mu, sigma, tau (default: a new Figure's).

    Returns
    -------
    np.ndarray of matplotlib.axes.Axes
        The three axes drawn on.
    """
    if axes is None:
        axes = new_axes(1, len(SCALARS), figsize=(11, 3.6))
    names = [name for name in posteriors if name != "eb"]  # EB fixes them: a point, no density
    # each engine in the colour it has in the forest and shrinkage plots
    colors = [f"C{k}" for k, name in enumerate(posteriors) if name != "eb"]
    axes = np.ravel(az.plot_density([posteriors[name] for name in names], data_labels=names,
                                    var_names=SCALARS, shade=0.1, colors=colors,
                                    ax=np.ravel(axes)))
    for ax in axes:
        ax.set_ylabel("density", fontsize=8)
        ax.set_xlabel("value", fontsize=8)
    figure = axes[0].figure
    figure.suptitle(f"{data_name}: posterior densities of mu, sigma, tau by engine "
                    "(the curves should lie on top of each other)", fontsize=10, y=1.04)
    return axes


def png_base64(drawn) -> str:
    """What a plot function drew (Axes, array of Axes, or Figure) as a base64 PNG."""
    buffer = io.BytesIO()
    figure_of(drawn).savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


# -- the page -------------------------------------------------------------------------------------

STYLE = """
body { font-family: sans-serif; max-width: 1100px; margin: 1.5em auto; padding: 0 1em;
       color: #222; line-height: 1.4; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; }
h2 { border-bottom: 1px solid #ccc; padding-bottom: 0.2em; margin-top: 2em; }
nav a { margin-right: 1em; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.92em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; }
th { background: #f0f0f0; }
td.pass { background: #e3f4e3; }
td.fail { background: #f9d6d6; font-weight: bold; }
figure { margin: 1em 0 2em 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { font-size: 0.9em; color: #444; max-width: 900px; }
.verdict-passed { color: #1a6b1a; } .verdict-failed { color: #a11; }
.verdict-incomplete { color: #a60; }
p.note { color: #555; font-size: 0.9em; }
"""


def html_table(frame: pd.DataFrame, cell_class=None) -> str:
    """A plain HTML table, every value escaped; `cell_class(column, value)` may name a CSS class."""
    head = "".join(f"<th>{html.escape(str(column))}</th>" for column in frame.columns)
    body = []
    for _, row in frame.iterrows():
        cells = []
        for column, value in row.items():
            css = cell_class(column, value) if cell_class else None
            attribute = f' class="{css}"' if css else ""
            cells.append(f"<td{attribute}>{html.escape(_format(value))}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _format(value) -> str:
    if isinstance(value, (bool, np.bool_)):
        return "pass" if value else "FAIL"
    if isinstance(value, (float, np.floating)):
        return f"{value:.3g}"
    return str(value)


def _verdict_class(column, value):
    if column in ("passed", "uniform"):
        return "pass" if value else "fail"
    return None


def figure_html(drawn, caption: str, alt: str) -> str:
    return (f'<figure><img src="data:image/png;base64,{png_base64(drawn)}" '
            f'alt="{html.escape(alt)}"><figcaption>{html.escape(caption)}</figcaption></figure>')


def render(data: GroupedData, priors: Priors, verdict: Verdict, posteriors: dict, eb_fit,
           seconds: float) -> str:
    """The page as a string."""
    name = html.escape(Path(data.name).name)
    status = verdict.status.upper()
    prior_text = ", ".join(f"{key} = {value:.4g}" for key, value in priors.as_dict().items())
    parts = [
        *page_head(name),
        f"<p>The normal hierarchical model y_ij ~ N(theta_i, sigma^2), theta_i ~ N(mu, "
        f"tau^2 sigma^2), fitted four ways and checked. Priors (lam ~ Gamma(a, b), omega ~ "
        f"Gamma(c, d), mu ~ N(nu, 1/phi)): {html.escape(prior_text)}. "
        f"Validation: <strong class=\"verdict-{verdict.status}\">{status}</strong>. "
        f"Computed in {seconds:.0f} s.</p>",
        '<nav><a href="#data">data</a><a href="#engines">engines</a>'
        '<a href="#schools">schools</a><a href="#mixing">mixing</a>'
        '<a href="#validation">validation</a></nav>',

        '<h2 id="data">Data</h2>',
        html_table(data_summary(data)),
        figure_html(plot_school_means(data),
                    "Each dot is a school. The grey band is where school means would fall if "
                    "every school had the same true mean: it is wide for small schools, which is "
                    "why the most extreme means come from the smallest schools.",
                    "school means against school size"),

        '<h2 id="engines">Engines side by side</h2>',
        "<p>Posterior mean (posterior SD) for the sampling engines; for empirical Bayes (eb) "
        "the estimate (standard error from the observed information). between_sd = tau sigma "
        "is the SD of the true school means. seconds: each engine's own run time.</p>",
        html_table(engine_table(posteriors)),
        f"<p>Empirical Bayes ({eb_fit.criterion}): 95% profile-likelihood intervals, which follow "
        "the likelihood's shape (a Wald interval, estimate +- 2 SE, does not near tau = 0).</p>",
        html_table(eb_fit.profile_ci().reset_index(names="quantity")),
        figure_html(plot_densities(posteriors, name),
                    "Posterior densities from Gibbs, NUTS and the exact posterior (quadrature). "
                    "Empirical Bayes fixes mu, sigma and tau at point estimates, so it has no "
                    "curve here.", "posterior densities of mu, sigma, tau"),

        '<h2 id="schools">School means theta_i</h2>',
        figure_html(plot_theta_forest(posteriors, data),
                    "For each school shown: the posterior mean and central 95% interval of its "
                    "true mean theta_i under each engine, and its raw mean ybar_i (black tick). "
                    "Small schools are pulled from ybar_i toward mu; EB's intervals are a little "
                    "narrower because it treats mu, sigma and tau as known.",
                    "forest plot of theta_i by engine"),
        figure_html(empirical_bayes.plot_shrinkage(
            eb_fit, posterior_kappa=posterior_mean_kappa(posteriors)),
                    "The shrinkage coefficient |kappa_i| = |ybar_i - E[theta_i | y]| / |ybar_i|, "
                    "the share of its own mean each school gives up, against its size.",
                    "shrinkage against school size"),

        '<h2 id="mixing">Mixing of the samplers</h2>',
        html_table(diagnostics_table(posteriors)),
        "<p class=\"note\">ess: effective sample size (bulk and tails); r_hat near 1 (below "
        "1.01) says the chains agree.</p>",
    ]
    for engine in ("gibbs", "nuts"):
        parts.append(figure_html(plot_trace(posteriors[engine], engine, name),
                                 f"{engine}: trace plots of mu, sigma and tau.",
                                 f"{engine} trace plot"))
        parts.append(figure_html(plot_rank(posteriors[engine], engine, name),
                                 f"{engine}: rank plots of mu, sigma and tau.",
                                 f"{engine} rank plot"))
    parts += validation_section(verdict)
    parts.append("</body></html>")
    return "\n".join(parts)


def page_head(name: str) -> list[str]:
    """The page's head and its title heading; `name` already escaped."""
    return [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<link rel="icon" href="data:,">',  # no favicon request: the page asks for nothing
        f"<title>hiercheck report: {name}</title><style>{STYLE}</style></head><body>",
        f"<h1>hiercheck report: {name}</h1>",
    ]


def validation_section(verdict: Verdict) -> list[str]:
    """The verdict's table, and each SBC check's table and rank plots."""
    status = verdict.status.upper()
    verdict_table = verdict.table.drop(columns="seconds").assign(
        seconds=[f"{o.seconds:.1f}" for o in verdict.outcomes])
    parts = [
        '<h2 id="validation">Validation of the derivation</h2>',
        f"<p>{html.escape(verdict.subject)}: <strong class=\"verdict-{verdict.status}\">"
        f"{status}</strong>. Each check holds its false-alarm rate at {ALPHA} (Holm-corrected "
        "inside it); value is the check's statistic, compared with the threshold.</p>",
        html_table(verdict_table, _verdict_class),
        *diagnosis_section(verdict),
    ]
    for outcome in verdict.outcomes:
        if not outcome.check.startswith("sbc") or outcome.result is None:
            continue  # an SBC that did not apply (an improper prior) has nothing to draw
        parts.append(f"<h3>{html.escape(outcome.check)}</h3>")
        parts.append(html_table(outcome.result.table, _verdict_class))
        parts.append(figure_html(
            outcome.result.plot(),
            "Simulation-based calibration on simulated data sets: for a correct sampler the "
            "rank of each true value among its posterior draws is uniform, so the histograms "
            "are flat and the ECDF differences stay inside their 95% bands.",
            f"{outcome.check} rank histograms and ECDF plots"))
    return parts


def diagnosis_section(verdict: Verdict) -> list[str]:
    """Where the slip is, after a verdict whose consistency check failed
    (`diagnose.explain_failure`): the failing coordinates and the worst one's draws against its
    exact conditional; nothing otherwise.
    """
    from .diagnose import SHOWN_COLUMNS, explain_failure

    frame, figure = explain_failure(verdict)
    if frame is None:
        return []
    parts = [
        '<h3 id="diagnosis">Where the slip is</h3>',
        "<p>Each failing draw function's coordinates at the consistency state where they "
        "differ most (<code>Verdict.diagnose()</code>). mean_shift: the mean of the function's "
        "draws minus the exact conditional's, in its SDs; sd_ratio: their SD over the exact "
        "one (1 and 0 for a right function, within Monte Carlo error); exact and fitted: the "
        "conditional's parameters, and the same family fitted to the function's draws.</p>",
        html_table(frame[SHOWN_COLUMNS]),
    ]
    if figure is not None:
        parts.append(figure_html(
            figure, "The worst coordinate: the function's draws (histogram, empirical CDF) "
                    "against its exact conditional (line).",
            "the worst coordinate's draws against its exact conditional"))
    return parts


def write_report(data: GroupedData, priors: Priors, folder: Path, *, seed: SeedLike = 0,
                 quick: bool = True, progress: bool = False) -> tuple[Path, Verdict]:
    """Fit, check, draw, and write `folder/index.html`; returns its path and the verdict.

    Parameters
    ----------
    data : GroupedData
        The scores.
    priors : Priors
        The prior parameters of the Bayesian engines and of the checks.
    folder : pathlib.Path
        Where to write `index.html`; created if missing.
    seed : SeedLike, default 0
        The seed every random draw depends on.
    quick : bool, default True
        The checks' quick settings (about a minute) rather than the full ones.
    progress : bool, default False
        Show the checks' progress on stderr.

    Returns
    -------
    path : pathlib.Path
        The page written.
    verdict : Verdict
        The verdict of `check_sampler` the page shows.
    """
    started = time.perf_counter()
    verdict, posteriors, eb_fit = fit_all(data, priors, seed=seed, quick=quick,
                                          progress=progress)
    page = render(data, priors, verdict, posteriors, eb_fit, time.perf_counter() - started)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "index.html"
    path.write_text(page, encoding="utf-8")
    return path, verdict


# -- a built-in model of the "any model" harness --------------------------------------------------

def tracked_draws(draws: Mapping[str, np.ndarray], variables) -> dict[str, np.ndarray]:
    """(chains, draws) of each scalar `check_gibbs` follows (`generic.tracked_quantities`: every
    scalar variable, the first, middle and last element of each vector), by label, from draws of
    the free variables by name, each (chains, draws, *shape).
    """
    from .generic import tracked_quantities

    tracked = {}
    for label, (name, index) in tracked_quantities(variables).items():
        values = np.asarray(draws[name], dtype=float)
        tracked[label] = values.reshape(*values.shape[:2], -1)[:, :, index]
    return tracked


def comparison_table(sampled: Mapping[str, Mapping[str, np.ndarray]]) -> pd.DataFrame:
    """Posterior mean and SD of each tracked scalar under each engine, a row per scalar."""
    first = next(iter(sampled.values()))
    rows = []
    for label in first:
        row = {"quantity": label}
        for engine, draws in sampled.items():
            row[f"{engine} mean"] = f"{draws[label].mean():.5g}"
            row[f"{engine} SD"] = f"{draws[label].std(ddof=1):.4g}"
        rows.append(row)
    return pd.DataFrame(rows)


def plot_tracked_densities(sampled: Mapping[str, Mapping[str, np.ndarray]], data_name: str
                           ) -> np.ndarray:
    """ArviZ's density plot of every tracked scalar, one curve per engine, overlaid.

    Parameters
    ----------
    sampled : Mapping
        {engine: {label: draws (chains, draws)}}, the same labels for every engine.
    data_name : str
        The data's name, for the title.

    Returns
    -------
    np.ndarray of matplotlib.axes.Axes
        The axes drawn on.
    """
    labels = list(next(iter(sampled.values())))
    columns = min(4, len(labels))
    rows = -(-len(labels) // columns)
    axes = new_axes(rows, columns, figsize=(3 * columns, 2.6 * rows + 0.6))
    idatas = [az.from_dict(posterior={f"q{k}": draws[label] for k, label in enumerate(labels)})
              for draws in sampled.values()]
    used = np.ravel(axes)[:len(labels)]
    az.plot_density(idatas, data_labels=list(sampled), shade=0.1, ax=used)
    for ax, label in zip(used, labels):
        ax.set_title(label, fontsize=9)
        ax.set_xlabel("value", fontsize=8)
        ax.tick_params(labelsize=8)
    for ax in np.ravel(axes)[len(labels):]:
        ax.set_visible(False)
    figure = used[0].figure
    figure.subplots_adjust(hspace=0.6)  # each title clear of the tick labels above it
    figure.suptitle(f"{data_name}: posterior densities by engine (the curves should lie on top "
                    "of each other)", fontsize=10, y=1.02)
    return axes


def render_model(name: str, data, verdict: Verdict, sampled: dict, seconds: float,
                 mutant: str | None = None) -> str:
    """The page of a built-in model as a string; `mutant` names the sweep checked when it is
    not the model's own.
    """
    title = html.escape(name)
    status = verdict.status.upper()
    checked = ("the derivation" if mutant is None else
               f"its mutant <code>{html.escape(mutant)}</code>, a slip put in on purpose (the "
               "Gibbs sampler above is the model's own, correct)")
    parts = [
        *page_head(title),
        f"<p>The built-in model {title}: its hand-derived Gibbs sampler beside PyMC's NUTS on "
        "the same PyMC model, under the data's default priors, and the verdict of "
        f"<code>check_gibbs</code> on {checked}: <strong class=\"verdict-"
        f"{verdict.status}\">{status}</strong>. Computed in {seconds:.0f} s.</p>",
        '<nav><a href="#data">data</a><a href="#engines">engines</a>'
        '<a href="#validation">validation</a></nav>',
        '<h2 id="data">Data</h2>',
        html_table(model_data_summary(data)),
        '<h2 id="engines">Gibbs beside NUTS</h2>',
        "<p>Posterior mean and SD of every scalar parameter and of the first, middle and last "
        "element of each vector (those check_gibbs follows). gibbs: the model's own Gibbs "
        "engine; nuts: the draws of PyMC's NUTS that the agreement check compared against. "
        "The agreement check below is the formal test of their agreement.</p>",
        html_table(comparison_table(sampled)),
        figure_html(plot_tracked_densities(sampled, title),
                    "Posterior densities of the same quantities under the hand-derived Gibbs "
                    "sampler and NUTS.", "posterior densities, Gibbs and NUTS"),
        *validation_section(verdict),
        "</body></html>",
    ]
    return "\n".join(parts)


def write_model_report(name: str, folder: Path, *, seed: int = 0, quick: bool = True,
                       settings: GenericSettings | None = None, progress: bool = False,
                       mutant: str | None = None) -> tuple[Path, Verdict]:
    """`check_gibbs` on a built-in model's own sweep (or one of its mutants), its Gibbs engine
    and NUTS, drawn into `folder/index.html`; returns its path and the verdict.

    Parameters
    ----------
    name : str
        A model of `models_with_engine()`.
    folder : pathlib.Path
        Where to write `index.html`; created if missing.
    seed : int, default 0
        Seeds check_gibbs (NUTS among its references) and the Gibbs engine.
    quick : bool, default True
        `GENERIC_QUICK` settings (about a minute for the blood-pressure model), else
        `GENERIC_FULL`; no effect when `settings` are given.
    settings : GenericSettings, optional
        check_gibbs's settings, for a smaller run than the quick one.
    progress : bool, default False
        Show the checks' progress on stderr.
    mutant : str, optional
        One of the model's mutants to check in place of its own sweep; a failed verdict's page
        shows where the slip is (`diagnosis_section`).

    Returns
    -------
    path : pathlib.Path
        The page written.
    verdict : Verdict
        The verdict of `check_gibbs` the page shows.

    Raises
    ------
    SettingsError
        If `name` is not a built-in model, or one without its own Gibbs engine, or without the
        mutant.
    """
    from . import generic

    builtin = get_builtin(name)
    if name not in models_with_engine():
        raise SettingsError(f"the report of {name!r} is `hiercheck report --dataset`; --model "
                            f"serves {', '.join(models_with_engine())}")
    sweep = sweep_to_check(name, mutant)
    started = time.perf_counter()
    data = builtin.load()
    model = builtin.build_model(data)
    if settings is None:
        settings = generic.GENERIC_QUICK if quick else generic.GENERIC_FULL
    references = generic.ModelReferences(model, settings, seed, name)
    verdict = generic.check_gibbs(model, sweep, seed=seed,
                                  references=references, progress=progress,
                                  batched=builtin.batched)
    gibbs = builtin.sample(data, draws=MODEL_DRAWS, chains=4, seed=seed)
    variables = references.variables
    sampled = {"gibbs": tracked_draws({v: gibbs.posterior[v].values for v in variables},
                                      variables),
               "nuts": tracked_draws(references.nuts, variables)}
    page = render_model(name, data, verdict, sampled, time.perf_counter() - started,
                        mutant)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "index.html"
    path.write_text(page, encoding="utf-8")
    return path, verdict
