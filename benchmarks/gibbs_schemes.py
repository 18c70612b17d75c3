"""ESS per second of the textbook and blocked Gibbs schemes against NUTS (PyMC and nutpie).

    python benchmarks/gibbs_schemes.py [--json PATH] [--quick] [--engines gibbs,blocked,...]

On mathtest, hsb and rail, with the default priors `Priors.weakly_informative(data)`, every engine
runs the same fixed schedule: 4 chains, TUNE warm-up iterations then DRAWS kept draws per chain
(a fixed number of draws, not equal wall time). ESS is ArviZ's bulk and tail ESS over the 4
chains; ESS per second divides it by the wall time of the engine call (warm-up included):

    gibbs, blocked  median of GIBBS_REPEATS identical calls (same seed, same draws);
    nuts-pymc       one call; PyMC compiles its logp/gradient functions inside every call, so
                    that cost is in the time;
    nutpie          the second call on the same design (the compiled model is reused); the
                    first call's extra time is reported as `compile_s`.

The Gibbs cost per sweep per chain is timed separately with `samplers.gibbs.run` on 4 and on
256 vectorized chains.
"""

from __future__ import annotations

import os
import warnings

import numpy as np
import pandas as pd

import common
from models import Priors
from models.engine import az
from samplers import gibbs

DATASETS = ("mathtest", "hsb", "rail")
ENGINES = ("gibbs", "blocked", "nuts-pymc", "nutpie")
CHAINS = 4
TUNE = 1000
DRAWS = 2000
GIBBS_REPEATS = 3
SWEEP_CHAINS = (4, 256)
SWEEPS = 1000          # per timing of the sweep cost
SWEEP_REPEATS = 3
SEED = 20261125
VARIABLES = ("mu", "sigma", "tau", "omega", "theta_min")
QUICK = {"datasets": ("rail",), "tune": 20, "draws": 50, "repeats": 1, "sweeps": 20}


def _nuts(backend: str):
    from models.reference import sample_nuts

    def engine(data, priors, *, draws, chains, seed, tune):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # divergences and r_hat are recorded in the row
            return sample_nuts(data, priors, draws=draws, chains=chains, seed=seed, tune=tune,
                               backend=backend)
    return engine


def run_engine(name: str, data, priors, *, tune: int, draws: int, repeats: int) -> dict:
    """One engine on one data set: wall time, compile time (nutpie), ESS, r_hat."""
    row = {"compile_s": None}
    if name in ("gibbs", "blocked"):
        scheme = "textbook" if name == "gibbs" else "blocked"
        # untimed: the first call of a process pays one-off costs (lazy imports, caches)
        gibbs.sample(data, priors, draws=1, chains=1, seed=SEED, tune=0, scheme=scheme)
        idata, seconds, times = common.timed(
            lambda: gibbs.sample(data, priors, draws=draws, chains=CHAINS, seed=SEED, tune=tune,
                                 scheme=scheme), repeats)
    elif name == "nuts-pymc":
        idata, seconds, times = common.timed(
            lambda: _nuts("pymc")(data, priors, draws=draws, chains=CHAINS, seed=SEED, tune=tune))
    else:
        def call():
            return _nuts("nutpie")(data, priors, draws=draws, chains=CHAINS, seed=SEED, tune=tune)
        _, first, _ = common.timed(call)
        idata, seconds, times = common.timed(call)
        row["compile_s"] = first - seconds
    row.update(wall_s=seconds, wall_s_all=times,
               divergences=int(idata.posterior.attrs.get("divergences", 0)),
               max_r_hat=float(max(float(az.rhat(idata, var_names=[v])[v].max())
                                   for v in ("mu", "sigma", "tau", "theta"))),
               ess=common.ess_summary(idata))
    row["ess_per_s"] = {v: {kind: row["ess"][v][kind] / seconds for kind in ("bulk", "tail")}
                        for v in VARIABLES}
    return row


def sweep_cost(data, priors, scheme: str, chains: int, sweeps: int, repeats: int) -> dict:
    """Microseconds per sweep per chain of `scheme` with `chains` chains run as one batch."""
    rng = np.random.default_rng(SEED)
    state = gibbs.initial_state(rng, data.stats, priors, (chains,))
    _, seconds, _ = common.timed(
        lambda: gibbs.run(rng, data.stats, priors, state, tune=sweeps - 1, draws=1,
                          sweep=gibbs.SCHEMES[scheme]), repeats)
    return {"us_per_sweep": 1e6 * seconds / sweeps,
            "us_per_sweep_per_chain": 1e6 * seconds / sweeps / chains}


def main(argv=None) -> dict:
    parser = common.parser(__doc__.splitlines()[0])
    common.engines_argument(parser, ENGINES, ENGINES)
    args = parser.parse_args(argv)
    engines = common.chosen(args.engines, ENGINES)
    datasets = QUICK["datasets"] if args.quick else DATASETS
    tune, draws = (QUICK["tune"], QUICK["draws"]) if args.quick else (TUNE, DRAWS)
    repeats = QUICK["repeats"] if args.quick else GIBBS_REPEATS
    sweeps = QUICK["sweeps"] if args.quick else SWEEPS
    sweep_repeats = 1 if args.quick else SWEEP_REPEATS

    machine = common.machine_info()
    runs, costs = [], []
    for name in datasets:
        data = common.load(name)
        priors = Priors.weakly_informative(data)
        for engine in engines:
            row = run_engine(engine, data, priors, tune=tune, draws=draws, repeats=repeats)
            runs.append({"dataset": name, "N": data.N, "m": data.m, "engine": engine, **row})
        for scheme in ("textbook", "blocked"):
            for chains in SWEEP_CHAINS:
                costs.append({"dataset": name, "scheme": scheme, "chains": chains,
                              **sweep_cost(data, priors, scheme, chains, sweeps, sweep_repeats)})
    machine["load_average_end"] = list(os.getloadavg())

    payload = {"benchmark": "gibbs_schemes", "machine": machine,
               "settings": {"chains": CHAINS, "tune": tune, "draws": draws,
                            "gibbs_repeats": repeats, "sweeps": sweeps,
                            "sweep_repeats": sweep_repeats, "seed": SEED, "quick": args.quick,
                            "budget": "fixed number of draws"},
               "runs": runs, "sweep_cost": costs}
    report(payload)
    if args.json:
        common.write_json(args.json, payload)
    return payload


def report(payload: dict) -> None:
    runs = payload["runs"]
    index = pd.MultiIndex.from_tuples([(r["dataset"], r["engine"]) for r in runs],
                                      names=["dataset", "engine"])
    settings = payload["settings"]
    common.show(f"Wall time and diagnostics ({settings['chains']} chains, {settings['tune']} "
                f"warm-up + {settings['draws']} draws each)",
                pd.DataFrame({"wall_s": [r["wall_s"] for r in runs],
                              "compile_s": [r["compile_s"] for r in runs],
                              "divergences": [r["divergences"] for r in runs],
                              "max_r_hat": [r["max_r_hat"] for r in runs],
                              "slowest_theta": [r["ess"]["theta_min"]["school"] for r in runs]},
                             index=index))
    for kind in ("bulk", "tail"):
        common.show(f"ESS ({kind})", pd.DataFrame(
            {v: [r["ess"][v][kind] for r in runs] for v in VARIABLES}, index=index),
            "{:.0f}".format)
        common.show(f"ESS ({kind}) per second", pd.DataFrame(
            {v: [r["ess_per_s"][v][kind] for r in runs] for v in VARIABLES}, index=index),
            "{:.4g}".format)
    by_key = {(r["dataset"], r["engine"]): r for r in runs}
    ratios = []
    for dataset in dict.fromkeys(r["dataset"] for r in runs):
        if (dataset, "gibbs") in by_key and (dataset, "blocked") in by_key:
            textbook, blocked = by_key[dataset, "gibbs"], by_key[dataset, "blocked"]
            for kind in ("bulk", "tail"):
                ratios.append({"dataset": dataset, "ess": kind, **{
                    v: blocked["ess_per_s"][v][kind] / textbook["ess_per_s"][v][kind]
                    for v in VARIABLES}})
    if ratios:
        common.show("Blocked / textbook Gibbs: ratio of ESS per second",
                    pd.DataFrame(ratios).set_index(["dataset", "ess"]), "{:.2f}".format)
    common.show("Gibbs cost per sweep", pd.DataFrame(payload["sweep_cost"])
                .set_index(["dataset", "scheme", "chains"]), "{:.2f}".format)


if __name__ == "__main__":
    main()
