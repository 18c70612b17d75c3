"""ESS per second of the textbook and blocked Gibbs schemes against NUTS (PyMC and nutpie).

    python benchmarks/gibbs_schemes.py [--json PATH] [--quick] [--engines gibbs,blocked,...]
                                       [--datasets mathtest,hsb,rail]

On mathtest, hsb and rail, with the default priors `Priors.weakly_informative(data)`, every engine
runs the same fixed schedule: 4 chains, TUNE warm-up iterations then DRAWS kept draws per chain
(a fixed number of draws, not equal wall time). ESS is ArviZ's bulk and tail ESS over the 4
chains; ESS per second divides it by the wall time of the engine call (warm-up included):

    gibbs, blocked  GIBBS_REPLICATES calls with seeds SEED, SEED + 1, ...: the mean ESS over
                    them, the median wall time;
    nuts-pymc       one call; PyMC compiles its logp/gradient functions inside every call, so
                    that cost is in the time;
    nutpie          the second call on the same design (the compiled model is reused); the
                    first call's extra time is reported as `compile_s`.

The Gibbs cost per sweep per chain is timed separately with `hiercheck.samplers.gibbs.run` (its compiled
kernel when numba is installed; `python -m benchmarks` times the numpy reference too) on 4 and on
256 vectorized chains (the fastest of SWEEP_REPEATS timings of SWEEPS sweeps).

Because ESS per draw does not depend on how busy the machine is and wall time does, the table
"Blocked / textbook Gibbs: ratio of ESS per draw" is the robust comparison of the two schemes.
"""

from __future__ import annotations

import os
import warnings

import numpy as np
import pandas as pd

import common
from hiercheck.models import Priors, load_dataset
from hiercheck.models.engine import az
from hiercheck.samplers import gibbs

DATASETS = ("mathtest", "hsb", "rail")
ENGINES = ("gibbs", "blocked", "nuts-pymc", "nutpie")
CHAINS = 4
TUNE = 1000
DRAWS = 2000
GIBBS_REPLICATES = 5
SWEEP_CHAINS = (4, 256)
SWEEPS = 1000          # per timing of the sweep cost
SWEEP_REPEATS = 5
SEED = 20261125
VARIABLES = ("mu", "sigma", "tau", "omega", "theta_min")
QUICK = {"datasets": ("rail",), "tune": 20, "draws": 50, "replicates": 2, "sweeps": 20}


def _nuts(backend: str):
    from hiercheck.models.reference import sample_nuts

    def engine(data, priors, *, draws, chains, seed, tune):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # divergences and r_hat are recorded in the row
            return sample_nuts(data, priors, draws=draws, chains=chains, seed=seed, tune=tune,
                               backend=backend)
    return engine


def _mean_ess(summaries: list[dict]) -> dict:
    """The replicates' ESS summaries averaged, with the SD across replicates beside each mean;
    the slowest school is named after the first replicate."""
    out = {}
    for variable in VARIABLES:
        out[variable] = {}
        for kind in ("bulk", "tail"):
            values = np.array([summary[variable][kind] for summary in summaries])
            out[variable][kind] = float(values.mean())
            out[variable][f"{kind}_sd"] = float(values.std(ddof=1)) if values.size > 1 else None
    out["theta_min"]["school"] = summaries[0]["theta_min"]["school"]
    return out


def run_engine(name: str, data, priors, *, tune: int, draws: int, replicates: int) -> dict:
    """One engine on one data set: wall time, compile time (nutpie), ESS, r_hat.

    Gibbs runs `replicates` times with seeds SEED, SEED + 1, ...: the ESS is their mean (ESS
    estimates scatter by several per cent, which would swamp a small difference between the
    schemes) and the wall time their median. NUTS runs once, with SEED."""
    row = {"compile_s": None, "replicates": 1}
    if name in ("gibbs", "blocked"):
        scheme = "textbook" if name == "gibbs" else "blocked"
        # untimed: the first call of a process pays one-off costs (lazy imports, caches)
        gibbs.sample(data, priors, draws=1, chains=1, seed=SEED, tune=0, scheme=scheme)
        results, times = [], []
        for k in range(replicates):
            idata, seconds, _ = common.timed(
                lambda: gibbs.sample(data, priors, draws=draws, chains=CHAINS, seed=SEED + k,
                                     tune=tune, scheme=scheme))
            results.append(idata)
            times.append(seconds)
        seconds = float(np.median(times))
        row.update(replicates=replicates,
                   ess=_mean_ess([common.ess_summary(idata) for idata in results]))
    elif name == "nuts-pymc":
        idata, seconds, times = common.timed(
            lambda: _nuts("pymc")(data, priors, draws=draws, chains=CHAINS, seed=SEED, tune=tune))
        row["ess"] = common.ess_summary(idata)
    else:
        def call():
            return _nuts("nutpie")(data, priors, draws=draws, chains=CHAINS, seed=SEED, tune=tune)
        _, first, _ = common.timed(call)
        idata, seconds, times = common.timed(call)
        row["compile_s"] = first - seconds
        row["ess"] = common.ess_summary(idata)
    row.update(wall_s=seconds, wall_s_all=times,
               divergences=int(idata.posterior.attrs.get("divergences", 0)),
               max_r_hat=float(max(float(az.rhat(idata, var_names=[v])[v].max())
                                   for v in ("mu", "sigma", "tau", "theta"))))
    row["ess_per_s"] = {v: {kind: row["ess"][v][kind] / seconds for kind in ("bulk", "tail")}
                        for v in VARIABLES}
    return row


def sweep_cost(data, priors, scheme: str, chains: int, sweeps: int, repeats: int) -> dict:
    """Microseconds per sweep, and per sweep per chain, of `scheme` with `chains` chains run as
    one batch: the fastest of `repeats` timings of `sweeps` sweeps."""
    rng = np.random.default_rng(SEED)
    state = gibbs.initial_state(rng, data.stats, priors, (chains,))
    _, _, times = common.timed(
        lambda: gibbs.run(rng, data.stats, priors, state, tune=sweeps - 1, draws=1,
                          sweep=gibbs.SCHEMES[scheme]), repeats)
    seconds = min(times)  # the least disturbed repeat: other work only ever adds time
    return {"us_per_sweep": 1e6 * seconds / sweeps,
            "us_per_sweep_per_chain": 1e6 * seconds / sweeps / chains}


def main(argv=None) -> dict:
    parser = common.parser(__doc__.splitlines()[0])
    common.engines_argument(parser, ENGINES, ENGINES)
    parser.add_argument("--datasets", default=",".join(DATASETS),
                        help=f"comma-separated built-in data sets (default: "
                             f"{','.join(DATASETS)}; --quick uses {','.join(QUICK['datasets'])})")
    args = parser.parse_args(argv)
    engines = common.chosen(args.engines, ENGINES)
    datasets = QUICK["datasets"] if args.quick else args.datasets.split(",")
    tune, draws = (QUICK["tune"], QUICK["draws"]) if args.quick else (TUNE, DRAWS)
    replicates = QUICK["replicates"] if args.quick else GIBBS_REPLICATES
    sweeps = QUICK["sweeps"] if args.quick else SWEEPS
    sweep_repeats = 1 if args.quick else SWEEP_REPEATS

    machine = common.machine_info()
    runs, costs = [], []
    for name in datasets:
        data = load_dataset(name)
        priors = Priors.weakly_informative(data)
        for engine in engines:
            row = run_engine(engine, data, priors, tune=tune, draws=draws,
                             replicates=replicates)
            runs.append({"dataset": name, "N": data.N, "m": data.m, "engine": engine, **row})
        for scheme in ("textbook", "blocked"):
            for chains in SWEEP_CHAINS:
                costs.append({"dataset": name, "scheme": scheme, "chains": chains,
                              **sweep_cost(data, priors, scheme, chains, sweeps, sweep_repeats)})
    machine["load_average_end"] = list(os.getloadavg())

    payload = {"benchmark": "gibbs_schemes", "machine": machine,
               "settings": {"chains": CHAINS, "tune": tune, "draws": draws,
                            "gibbs_replicates": replicates, "sweeps": sweeps,
                            "sweep_repeats": sweep_repeats, "seed": SEED, "quick": args.quick,
                            "budget": "fixed number of draws"},
               "runs": runs, "sweep_cost": costs}
    report(payload)
    if args.json:
        common.write_json(args.json, payload)
    return payload


def per_draw_ratios(by_key: dict) -> list[dict]:
    """ESS(blocked) / ESS(textbook) at equal draws, as "ratio +- sd": the sd propagates the
    replicates' scatter, sd(ratio)/ratio = sqrt(cv_blocked^2 + cv_textbook^2), each cv the SD
    of the mean ESS over its replicates divided by that mean."""
    rows = []
    for dataset in dict.fromkeys(key[0] for key in by_key):
        if (dataset, "gibbs") not in by_key or (dataset, "blocked") not in by_key:
            continue
        textbook, blocked = by_key[dataset, "gibbs"], by_key[dataset, "blocked"]
        replicates = blocked["replicates"]
        for kind in ("bulk", "tail"):
            row = {"dataset": dataset, "ess": kind}
            for v in VARIABLES:
                ratio = blocked["ess"][v][kind] / textbook["ess"][v][kind]
                if replicates > 1:
                    cv = [run["ess"][v][f"{kind}_sd"] / run["ess"][v][kind]
                          / np.sqrt(replicates) for run in (blocked, textbook)]
                    row[v] = f"{ratio:.2f} +- {ratio * np.hypot(*cv):.2f}"
                else:
                    row[v] = f"{ratio:.2f}"
            rows.append(row)
    return rows


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
        common.show("Blocked / textbook Gibbs: ratio of ESS per draw (same draws; mean over "
                    f"{settings['gibbs_replicates']} seeds each, +- the ratio's SD from the "
                    "seeds' scatter)", pd.DataFrame(per_draw_ratios(by_key)).set_index(
                        ["dataset", "ess"]))
    common.show("Gibbs cost per sweep", pd.DataFrame(payload["sweep_cost"])
                .set_index(["dataset", "scheme", "chains"]), "{:.2f}".format)


if __name__ == "__main__":
    main()
