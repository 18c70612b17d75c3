# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Math tests in 100 schools: a derivation checked three ways
#
# 1993 students in 100 schools took the same math test (the SDS 383D data, `mathtest.csv`:
# columns `school`, `mathscore`; 4 to 32 students per school). We want each school's true mean
# score. The normal hierarchical model, in the notation of `docs/derivation.md`:
#
#     y_ij | theta_i   ~ N(theta_i, sigma^2)          school i = 1..m, student j = 1..n_i
#     theta_i | mu     ~ N(mu, tau^2 sigma^2)
#     lam = 1/sigma^2  ~ Gamma(a, b),   omega = 1/tau^2 ~ Gamma(c, d),   mu ~ N(nu, 1/phi)
#
# `tau` is a ratio: the between-school SD is `tau * sigma`. We fit it with empirical Bayes and
# a hand-derived Gibbs sampler, state the same model in PyMC and sample it with NUTS, compare
# all of them with the exact posterior, and then ask the package whether the derivation behind
# the Gibbs sampler is right.
#
# **Running this notebook.** It is a plain Python script in jupytext's percent format, paired
# with a notebook: `jupytext --to notebook notebooks/math_tests.py` makes `math_tests.ipynb`,
# and `python notebooks/math_tests.py` runs it top to bottom (under a minute on 2 cores).
# The data are the copy packaged with hiercheck (`load_dataset("mathtest")`); with
# `HIERCHECK_FIGURES` set, every figure is also written there as a PNG
# (`notebooks/notebook_support.py`, which the notebooks share).

# %%
import os
import sys
import warnings

import matplotlib

if "MPLBACKEND" not in os.environ and "ipykernel" not in sys.modules:
    matplotlib.use("Agg")  # run as a script: draw to files, no screen assumed
import numpy as np  # noqa: E402

warnings.filterwarnings("ignore", category=FutureWarning)  # ArviZ's notice of its 1.x refactor
# PyTensor advises on BLAS, which this model (all elementwise) does not use
warnings.filterwarnings("ignore", message="PyTensor could not link to a BLAS")

from hiercheck.models import Priors, load_dataset  # noqa: E402
from hiercheck.models.engine import az  # noqa: E402
from hiercheck.samplers import empirical_bayes, exact, gibbs  # noqa: E402
from notebook_support import show  # noqa: E402

mathtest = load_dataset("mathtest")
priors = Priors.weakly_informative(mathtest)
print(mathtest)
print("priors (scaled to the data):", priors)

# %% [markdown]
# ## 1. The raw school means, and why the extremes are small schools
#
# A school's mean `ybar_i` estimates `theta_i` with standard error `sigma / sqrt(n_i)`. Even if
# every school had the same true mean, a school of 4 students would scatter about three times as
# far as one of 32. The band in the plot is that null scatter, the grand mean plus or minus two
# pooled within-school SDs over `sqrt(n)`: it is a funnel, and the most extreme means sit in its
# wide end.

# %%
from hiercheck.validation.plots import plot_school_means  # noqa: E402

show(plot_school_means(mathtest), "school_means")

table = mathtest.school_table()
distance = (table.ybar - mathtest.values.mean()).abs()
extremes = table.assign(distance=distance).nlargest(10, "distance")
print(extremes[["school", "n", "ybar"]].to_string(index=False))
print(f"median size of the 10 most extreme schools: {extremes.n.median():g}; "
      f"of all schools: {np.median(mathtest.n):g}")

# %% [markdown]
# ## 2. Empirical Bayes
#
# Integrate `theta` out: `ybar_i | mu, lam, omega ~ N(mu, (1/n_i + 1/omega) / lam)`, and the
# within-school sum of squares `ss_i` carries `lam` alone. Maximize that marginal likelihood over
# `(mu, lam, omega)` (`hiercheck.samplers.marginal.log_marginal_likelihood`; derivation in
# `docs/derivation.md`), then give each school its conditional posterior at the estimates,
#
#     theta_i | y ~ N(ybar_i - B_i (ybar_i - mu), 1 / (lam (n_i + omega))),  B_i = omega / (n_i + omega).
#
# `B_i` is the pull toward `mu`: largest for the smallest schools.

# %%
eb_fit = empirical_bayes.fit(mathtest)
print(eb_fit)

# %% [markdown]
# ## 3. The Gibbs sampler
#
# Four full conditionals, each a function in `samplers/gibbs.py` named after it (`draw_theta`,
# `draw_mu`, `draw_lam`, `draw_omega`), each with its formula in its docstring. A sweep draws them
# in turn; four chains run at once as one batch.

# %%
gibbs_posterior = gibbs.sample(mathtest, priors, draws=2000, chains=4, seed=1)
print(az.summary(gibbs_posterior, var_names=["mu", "sigma", "tau", "lam", "omega"]).to_string())

# %% [markdown]
# ## 4. The same model in PyMC
#
# `hiercheck.models.reference.build_model` states the model as the math reads, with the likelihood on the
# individual scores rather than the sufficient statistics, so that it shares no algebra with the
# hand-derived engines. NUTS needs nothing but this density and its gradient.

# %%
import importlib.util  # noqa: E402
import shutil  # noqa: E402

import pymc as pm  # noqa: E402

from hiercheck.models.reference import build_model, sample_nuts  # noqa: E402

model = build_model(mathtest, priors)
# the graph needs the optional graphviz binding and its `dot` program; without them, PyMC's text
if importlib.util.find_spec("graphviz") and shutil.which("dot"):
    graph = pm.model_to_graphviz(model)
    if "ipykernel" in sys.modules:
        from IPython.display import display

        display(graph)
    else:
        print(graph.source)
else:
    print(model.str_repr())

# %%
nuts_posterior = sample_nuts(mathtest, priors, draws=1000, chains=4, seed=2)
print(az.summary(nuts_posterior, var_names=["mu", "sigma", "tau"]).to_string())
print(f"divergences: {nuts_posterior.posterior.attrs['divergences']}, "
      f"largest r_hat: {nuts_posterior.posterior.attrs['max_r_hat']:.4f}")

# %% [markdown]
# ## 5. The engines side by side
#
# A fourth engine needs no sampler at all: with `theta` integrated out, the posterior of
# `(lam, omega)` is two-dimensional and `hiercheck.samplers.exact` computes it by quadrature, then draws
# i.i.d. from it. The table gives the posterior mean (SD) of each quantity, and for empirical
# Bayes the estimate (standard error).

# %%
from hiercheck.validation.engines import estimates_table, posterior_mean_kappa  # noqa: E402

exact_posterior = exact.sample(mathtest, priors, draws=2000, chains=4, seed=3)
posteriors = {"eb": eb_fit.to_inference_data(1000, 4, seed=4, priors=priors),
              "gibbs": gibbs_posterior, "nuts": nuts_posterior, "exact": exact_posterior}
print(estimates_table(posteriors).to_string())

# %% [markdown]
# Per school: the posterior of `theta_i` under each engine for 20 schools spread over the sizes.
# The black tick is the school's raw mean; small schools are pulled from it toward `mu`.

# %%
from hiercheck.validation.report import plot_theta_forest  # noqa: E402

show(plot_theta_forest(posteriors, mathtest), "theta_forest")

# %% [markdown]
# ## 6. Shrinkage against school size
#
# The shrinkage coefficient `kappa_i = (ybar_i - E[theta_i | y]) / ybar_i` is the share of its
# own mean a school gives up. Under empirical Bayes `|kappa_i| = B_i |ybar_i - mu| / |ybar_i|`:
# it falls with `n_i` and grows with the school's distance from `mu`. The fully Bayesian
# posteriors (crosses) average over `(mu, lam, omega)` instead of fixing them, and land close.

# %%
show(empirical_bayes.plot_shrinkage(eb_fit, posterior_kappa=posterior_mean_kappa(posteriors)),
     "shrinkage")

# %% [markdown]
# ## 7. Is the derivation right? The validation checks
#
# Agreement of the estimates is encouraging, not proof. `hiercheck.validation.check_sampler` runs every
# check on the package's own derivation, on this data: each conditional against the PyMC joint
# density, posterior quantiles against the exact posterior and NUTS, Geweke's joint-distribution
# test, simulation-based calibration, and the marginal likelihood against a dense computation
# and against statsmodels. Each check holds its false-alarm rate at `hiercheck.validation.result.ALPHA`
# (the p-value threshold in the table; the statistics are in `docs/validation.md`).
# The suite's "agreement vs nuts" would run NUTS again; we already have a NUTS run (section 4),
# so that comparison is made on it instead, with the same function the suite uses.

# %%
from hiercheck.validation import agreement, check_sampler  # noqa: E402
from hiercheck.validation.result import ALPHA  # noqa: E402
from hiercheck.validation.suite import CHECKS  # noqa: E402

verdict = check_sampler(data=mathtest, priors=priors, seed=0,
                        checks=[check for check in CHECKS if check != "agreement vs nuts"])
print(verdict)
print()
print(agreement.compare(gibbs_posterior, nuts_posterior, alpha=ALPHA))

# %% [markdown]
# Simulation-based calibration: for data simulated from the prior, the rank of each true value
# among the sampler's posterior draws is uniform when the sampler is right. Flat histograms and
# ECDF differences inside their bands.

# %%

show(verdict["sbc"].result.plot(), "sbc")

# %% [markdown]
# ## 8. And a wrong derivation?
#
# The same checks on a classic slip from `hiercheck.validation.mutants`: `omega`'s conditional with its
# rate missing the factor `lam`. The consistency check compares that conditional's draws with the
# full conditional implied by the PyMC density, and fails it.

# %%
from hiercheck.validation.mutants import get_mutant  # noqa: E402

slip = get_mutant("omega-rate-missing-lam")
print(slip.description)
print(check_sampler(slip.conditionals, data=mathtest, priors=priors, seed=0,
                    checks=["consistency", "geweke"], references=verdict.references))

# %% [markdown]
# ## 9. Where is the slip?
#
# A FAILED verdict names a check; `Verdict.diagnose()` says which function, which coordinate,
# and how its draws differ from the exact conditional. It reads verdicts of `check_gibbs`, the
# harness for samplers written as students write them: here the math-test hierarchy in sigma^2
# and tau^2 (`hiercheck.samplers.student`, docs/five-minutes.md), with theta's conditional
# ported from R with rnorm's sd given the variance. Each failing coordinate comes at the state
# where it differs most: `mean_shift` is the draws' mean minus the exact mean in exact SDs,
# `sd_ratio` their SD over the exact SD, beside the exact normal and the normal fitted to the
# draws.

# %%
from hiercheck import check_gibbs  # noqa: E402
from hiercheck.samplers.student import student_conditionals, student_model  # noqa: E402
from hiercheck.validation.diagnose import SHOWN_COLUMNS  # noqa: E402

ported = check_gibbs(student_model(mathtest),
                     student_conditionals(mathtest, slip="draw_theta_variance_as_sd"),
                     checks=["consistency"], seed=0, name="mathtest (student)")
print(ported)
print(ported.diagnose()[SHOWN_COLUMNS].head(6).to_string(index=False))

# %% [markdown]
# The worst coordinate's draws against its exact conditional: the spread is off, the centre
# right, as a variance passed for an SD would do.

# %%
show(ported.plot_diagnosis(), "diagnosis")
