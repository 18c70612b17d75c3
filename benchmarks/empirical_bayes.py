"""Empirical Bayes: hiercheck's optimizers against statsmodels MixedLM and plain scipy Nelder-Mead.

    python benchmarks/empirical_bayes.py [--json PATH] [--quick]

On every built-in data set (`models.DATASETS`), for ML and for REML:

    profile       hiercheck.samplers.empirical_bayes.fit(data, method="profile", reml=...)
    nelder-mead   hiercheck.samplers.empirical_bayes.fit(data, method="nelder-mead", reml=...)
    statsmodels   smf.mixedlm("y ~ 1", frame, groups=frame["group"]).fit(reml=...), formula
                  and model construction included, as a user would call it
    scipy-nm      scipy.optimize.minimize(method="Nelder-Mead") with its default tolerances on
                  the negative log-likelihood written out below, from a naive start

Each wall time is the median of REPEATS calls. Every method's estimates are scored by one
log-likelihood written here from scratch (not hiercheck's): school i's scores are
N(mu 1, s2 I + g 1 1') with s2 = sigma^2 and g = tau^2 sigma^2 the between-school variance, so

    ML:   l(mu, s2, g) = -1/2 sum_i [n_i log 2pi + (n_i - 1) log s2 + log(s2 + n_i g)
                                    + ss_i / s2 + n_i (ybar_i - mu)^2 / (s2 + n_i g)]
    REML: l_R(s2, g) = l(mu_hat, s2, g) + 1/2 log 2pi - 1/2 log sum_i v_i,
          v_i = n_i / (s2 + n_i g),  mu_hat = sum_i v_i ybar_i / sum_i v_i

(REML with mu under a flat prior of density 1, statsmodels' convention). `diff_to_best` is that
score minus the best score of any method on the same data and criterion; `self_minus_ours` is the
method's own reported log-likelihood minus that score (0 up to rounding when both agree on the
likelihood's constants). The exact posterior's time (`hiercheck.samplers.exact.posterior`, default priors)
is the median of REPEATS calls too.
"""

from __future__ import annotations

import math
import os
import warnings

import numpy as np
import pandas as pd
from scipy import optimize

import common
from hiercheck.models import DATASETS, Priors, load_dataset
from hiercheck.samplers import empirical_bayes, exact

REPEATS = 5
METHODS = ("profile", "nelder-mead", "statsmodels", "scipy-nm")
QUICK = {"datasets": ("rail", "dyestuff2"), "repeats": 1}
LOG_2PI = math.log(2.0 * math.pi)


class Moments:
    """n_i, ybar_i, ss_i from the raw scores by pandas groupby (independent of hiercheck's)."""

    def __init__(self, frame: pd.DataFrame):
        grouped = frame.groupby("group")["y"]
        self.n = grouped.size().to_numpy(dtype=float)
        self.ybar = grouped.mean().to_numpy()
        self.ss = grouped.apply(lambda y: float(((y - y.mean()) ** 2).sum())).to_numpy()

    def loglik(self, mu, s2, g) -> float:
        total = s2 + self.n * g
        return -0.5 * float(np.sum(self.n * LOG_2PI + (self.n - 1) * math.log(s2)
                                   + np.log(total) + self.ss / s2
                                   + self.n * (self.ybar - mu) ** 2 / total))

    def gls_mean(self, s2, g) -> float:
        v = self.n / (s2 + self.n * g)
        return float(np.sum(v * self.ybar) / np.sum(v))

    def restricted_loglik(self, s2, g) -> float:
        v = self.n / (s2 + self.n * g)
        return (self.loglik(self.gls_mean(s2, g), s2, g)
                + 0.5 * LOG_2PI - 0.5 * math.log(float(np.sum(v))))

    def score(self, reml: bool, mu, s2, g) -> float:
        return self.restricted_loglik(s2, g) if reml else self.loglik(mu, s2, g)


def frame_of(data) -> pd.DataFrame:
    return pd.DataFrame({"y": data.values, "group": data.codes})


def fit_hiercheck(data, reml: bool, method: str):
    result = empirical_bayes.fit(data, method=method, reml=reml)
    return {"mu": result.mu, "s2": 1.0 / result.lam, "g": result.variance_ratio / result.lam,
            "self_loglik": result.loglik, "converged": result.converged, "note": result.message}


def fit_statsmodels(frame: pd.DataFrame, reml: bool):
    import statsmodels.formula.api as smf

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = smf.mixedlm("y ~ 1", frame, groups=frame["group"]).fit(reml=reml)
    notes = sorted({type(w.message).__name__ + ": " + str(w.message).splitlines()[0]
                    for w in caught})
    return {"mu": float(result.fe_params.iloc[0]), "s2": float(result.scale),
            "g": float(result.cov_re.iloc[0, 0]), "self_loglik": float(result.llf),
            "converged": bool(result.converged), "note": "; ".join(notes)}


def fit_scipy(frame: pd.DataFrame, reml: bool, moments: Moments):
    """Nelder-Mead with scipy's defaults over (mu, log s2, log g) for ML, (log s2, log g) for
    REML, from mu = mean(y), s2 = g = var(y)/2: what one writes without thinking about scales."""
    y = frame["y"].to_numpy()
    half = math.log(np.var(y) / 2.0)
    if reml:
        def negative(x):
            return -moments.restricted_loglik(math.exp(x[0]), math.exp(x[1]))
        result = optimize.minimize(negative, [half, half], method="Nelder-Mead")
        s2, g = math.exp(result.x[0]), math.exp(result.x[1])
        mu = moments.gls_mean(s2, g)
    else:
        def negative(x):
            return -moments.loglik(x[0], math.exp(x[1]), math.exp(x[2]))
        result = optimize.minimize(negative, [float(np.mean(y)), half, half],
                                   method="Nelder-Mead")
        mu, s2, g = result.x[0], math.exp(result.x[1]), math.exp(result.x[2])
    return {"mu": float(mu), "s2": s2, "g": g, "self_loglik": float(-result.fun),
            "converged": bool(result.success), "note": f"{result.nfev} evaluations"}


def benchmark_dataset(name: str, repeats: int) -> tuple[list[dict], dict]:
    data = load_dataset(name)
    frame = frame_of(data)
    moments = Moments(frame)
    rows = []
    for reml in (False, True):
        calls = {
            "profile": lambda: fit_hiercheck(data, reml, "profile"),
            "nelder-mead": lambda: fit_hiercheck(data, reml, "nelder-mead"),
            "statsmodels": lambda: fit_statsmodels(frame, reml),
            "scipy-nm": lambda: fit_scipy(frame, reml, moments),
        }
        found = []
        for method in METHODS:
            calls[method]()  # untimed: first-call costs (lazy imports, formula parsing caches)
            result, seconds, _ = common.timed(calls[method], repeats)
            ours = moments.score(reml, result["mu"], result["s2"], result["g"])
            found.append({"dataset": name, "N": data.N, "m": data.m,
                          "criterion": "REML" if reml else "ML", "method": method,
                          "time_ms": 1e3 * seconds, "loglik": ours,
                          "self_minus_ours": result["self_loglik"] - ours,
                          "mu": result["mu"], "sigma": math.sqrt(result["s2"]),
                          "between_sd": math.sqrt(result["g"]),
                          "converged": result["converged"], "note": result["note"]})
        best = max(row["loglik"] for row in found)
        for row in found:
            row["diff_to_best"] = row["loglik"] - best
        rows += found
    priors = Priors.weakly_informative(data)
    exact.posterior(data, priors)  # untimed warm-up, as above
    posterior, seconds, _ = common.timed(lambda: exact.posterior(data, priors), repeats)
    return rows, {"dataset": name, "N": data.N, "m": data.m, "time_ms": 1e3 * seconds,
                  "grid": "x".join(map(str, posterior.grid.log_density.shape))}


def main(argv=None) -> dict:
    args = common.parser(__doc__.splitlines()[0]).parse_args(argv)
    datasets = QUICK["datasets"] if args.quick else DATASETS
    repeats = QUICK["repeats"] if args.quick else REPEATS
    machine = common.machine_info()
    fits, exact_times = [], []
    for name in datasets:
        rows, exact_row = benchmark_dataset(name, repeats)
        fits += rows
        exact_times.append(exact_row)
    machine["load_average_end"] = list(os.getloadavg())
    payload = {"benchmark": "empirical_bayes", "machine": machine,
               "settings": {"repeats": repeats, "quick": args.quick},
               "fits": fits, "exact": exact_times}
    report(payload)
    if args.json:
        common.write_json(args.json, payload)
    return payload


def report(payload: dict) -> None:
    table = pd.DataFrame(payload["fits"]).set_index(["dataset", "criterion", "method"])
    common.show(f"Empirical Bayes fits (time: median of {payload['settings']['repeats']})",
                table[["time_ms", "loglik", "diff_to_best", "self_minus_ours", "mu", "sigma",
                       "between_sd", "converged"]], "{:.6g}".format)
    print("\n## Optimizer messages\n")
    for (dataset, criterion, method), note in table["note"].items():
        if note:
            print(f"{dataset} {criterion} {method}: {note}")
    common.show(f"Exact posterior by quadrature (time: median of "
                f"{payload['settings']['repeats']})",
                pd.DataFrame(payload["exact"]).set_index("dataset"), "{:.4g}".format)


if __name__ == "__main__":
    main()
