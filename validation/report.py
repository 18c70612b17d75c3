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
"""

from __future__ import annotations

__all__ = ["plot_densities", "plot_rank", "plot_theta_forest", "plot_trace", "write_report"]

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
from hiercheck.models import GroupedData, Priors
from hiercheck.models.engine import az
from hiercheck.samplers import empirical_bayes

from .engines import estimates_table, posterior_mean_kappa
from .plots import figure_of, new_axes, plot_school_means
from .suite import ALPHA, Verdict, check_sampler

if TYPE_CHECKING:
    from matplotlib.axes import Axes

SCALARS = ["mu", "sigma", "tau"]
FOREST_SCHOOLS = 20  # schools in the forest plot: enough to span the sizes, few enough to read
EB_DRAWS = 1000      # per chain, 4 chains: theta_i given the EB estimates is normal, draws are cheap


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


def data_summary(data: GroupedData) -> pd.DataFrame:
    """The data in a few numbers: sizes, the grand mean, the spread within and between schools."""
    pooled_sd = np.sqrt(data.stats.pooled_variance)
    rows = [
        ("students (N)", f"{data.N}"),
        ("schools (m)", f"{data.m}"),
        ("school sizes n_i", f"{data.n.min()} to {data.n.max()} (median {np.median(data.n):g})"),
        ("grand mean of the scores", f"{data.values.mean():.5g}"),
        ("school means ybar_i", f"{data.ybar.min():.5g} to {data.ybar.max():.5g}"),
        ("SD of the school means", f"{data.ybar.std(ddof=1):.4g}" if data.m > 1 else "-"),
        ("pooled within-school SD", f"{pooled_sd:.4g}" if data.N > data.m else "-"),
    ]
    return pd.DataFrame(rows, columns=["quantity", "value"])


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
.verdict-pass { color: #1a6b1a; } .verdict-fail { color: #a11; }
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
    sbc_outcomes = [o for o in verdict.outcomes if o.check.startswith("sbc")]
    status = "PASSED" if verdict.passed else "FAILED"
    prior_text = ", ".join(f"{key} = {value:.4g}" for key, value in priors.as_dict().items())
    verdict_table = verdict.table.drop(columns="seconds").assign(
        seconds=[f"{o.seconds:.1f}" for o in verdict.outcomes])
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<link rel="icon" href="data:,">',  # no favicon request: the page asks for nothing
        f"<title>hiercheck report: {name}</title><style>{STYLE}</style></head><body>",
        f"<h1>hiercheck report: {name}</h1>",
        f"<p>The normal hierarchical model y_ij ~ N(theta_i, sigma^2), theta_i ~ N(mu, "
        f"tau^2 sigma^2), fitted four ways and checked. Priors (lam ~ Gamma(a, b), omega ~ "
        f"Gamma(c, d), mu ~ N(nu, 1/phi)): {html.escape(prior_text)}. "
        f"Validation: <strong class=\"verdict-{status.lower()}\">{status}</strong>. "
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
    parts += [
        '<h2 id="validation">Validation of the derivation</h2>',
        f"<p>{html.escape(verdict.subject)}: <strong class=\"verdict-{status.lower()}\">"
        f"{status}</strong>. Each check holds its false-alarm rate at {ALPHA} (Holm-corrected "
        "inside it); value is the check's statistic, compared with the threshold.</p>",
        html_table(verdict_table, _verdict_class),
    ]
    for outcome in sbc_outcomes:
        parts.append(f"<h3>{html.escape(outcome.check)}</h3>")
        parts.append(html_table(outcome.result.table, _verdict_class))
        parts.append(figure_html(
            outcome.result.plot(),
            "Simulation-based calibration on simulated data sets: for a correct sampler the "
            "rank of each true value among its posterior draws is uniform, so the histograms "
            "are flat and the ECDF differences stay inside their 95% bands.",
            f"{outcome.check} rank histograms and ECDF plots"))
    parts.append("</body></html>")
    return "\n".join(parts)


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
