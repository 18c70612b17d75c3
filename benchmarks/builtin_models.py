"""Cost of the built-in models' Gibbs samplers (blood pressure, cheese), in the generic interface.

    python benchmarks/builtin_models.py [--json PATH] [--quick]

For each model, on its packaged data with the default priors, at a state reached after TUNE
sweeps from `initial_state` (seed SEED):

1. `per_call_us`: the median over REPEATS calls of each conditional `draw_*(rng, state, data)`,
   in microseconds, the state held fixed (the cheese model's store moments are then served from
   its cache, as in a run);
2. `sweep_us`: the median time of one sweep (`hiercheck.samplers.sweeps.sweep`) over SWEEPS
   sweeps of one chain;
3. `first_sweep_us`: one sweep on data the cheese sampler has not seen (the per-store moments
   formed afresh, as when a harness hands it new simulated data every sweep);
4. `ess_per_s`: the engine `sample` with 4 chains of DRAWS kept draws: the smallest bulk ESS
   (ArviZ) of the scalar parameters and of one block's entries, and that per second of its wall
   time (warm-up included).

Nothing here imports PyMC. The machine is shared; the load average is in the JSON.
"""

from __future__ import annotations

import statistics
import time
import warnings

import numpy as np
import pandas as pd

import common
from hiercheck.models import bloodpressure as bp_model
from hiercheck.models import cheese as cheese_model
from hiercheck.models.engine import az
from hiercheck.samplers import bloodpressure as bp_gibbs
from hiercheck.samplers import cheese as cheese_gibbs
from hiercheck.samplers.sweeps import sweep

SEED = 20261128
TUNE = 200
REPEATS = 200
SWEEPS = 500
DRAWS = 2000
QUICK = {"tune": 5, "repeats": 5, "sweeps": 5, "draws": 20}
MODELS = {
    "bloodpressure": (bp_model, bp_gibbs, ["mu", "beta", "lam", "omega"], "theta"),
    "cheese": (cheese_model, cheese_gibbs, ["lam"], "m"),
}


def median_us(function, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return 1e6 * statistics.median(times)


def measure(name: str, tune: int, repeats: int, sweeps: int, draws: int) -> dict:
    model_module, gibbs, scalars, block = MODELS[name]
    data = model_module.load()
    values = model_module.model_data(data)
    sampler = gibbs.conditionals()
    rng = np.random.default_rng(SEED)
    state = gibbs.initial_state(rng, values)
    for _ in range(tune):
        state = sweep(rng, sampler, state, values)
    per_call = {str(key): median_us(lambda draw=draw: draw(rng, state, values), repeats)
                for key, draw in sampler.items()}
    sweep_us = median_us(lambda: sweep(rng, sampler, state, values), sweeps)
    fresh = dict(values, y=values["y"] + 1.0)  # unequal to what the cheese cache holds
    start = time.perf_counter()
    sweep(rng, sampler, state, fresh)
    first_sweep_us = 1e6 * (time.perf_counter() - start)
    idata = gibbs.sample(data, draws=draws, chains=4, seed=SEED)
    wall = idata.posterior.attrs["sampling_time"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        ess = az.ess(idata, var_names=scalars + [block], method="bulk")
    smallest = {variable: float(ess[variable].min()) for variable in scalars + [block]}
    return {"per_call_us": per_call, "sweep_us": sweep_us, "first_sweep_us": first_sweep_us,
            "engine_wall_s": wall, "ess_bulk_min": smallest,
            "ess_per_s": {variable: value / wall for variable, value in smallest.items()}}


def main() -> None:
    arguments = common.parser(__doc__.splitlines()[0]).parse_args()
    settings = (dict(QUICK) if arguments.quick
                else {"tune": TUNE, "repeats": REPEATS, "sweeps": SWEEPS, "draws": DRAWS})
    results = {name: measure(name, **settings) for name in MODELS}
    for name, result in results.items():
        common.show(f"{name}: microseconds per call (median)",
                    pd.DataFrame({"us": {**result["per_call_us"], "sweep": result["sweep_us"],
                                         "sweep on new data": result["first_sweep_us"]}}))
        common.show(f"{name}: engine, 4 chains x {settings['draws']} draws "
                    f"({result['engine_wall_s']:.2f} s)",
                    pd.DataFrame({"ess_bulk_min": result["ess_bulk_min"],
                                  "ess_per_s": result["ess_per_s"]}))
    if arguments.json:
        common.write_json(arguments.json, {"machine": common.machine_info(),
                                           "settings": {**settings, "quick": arguments.quick,
                                                        "seed": SEED},
                                           "results": results})


if __name__ == "__main__":
    main()
