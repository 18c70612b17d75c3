"""Time to 1000 effective draws of tau, and peak memory, per engine on mathtest.

    python benchmarks/engines.py [--json PATH] [--quick] [--engines gibbs,blocked,...]

Each engine runs in a fresh Python process of its own (so its imports and memory are its own),
with the default priors `Priors.weakly_informative(data)` and 4 chains:

1. a pilot run of PILOT_DRAWS draws per chain (after the engine's warm-up: TUNE iterations for
   Gibbs and NUTS, none for the exact sampler) gives ESS_bulk(tau) per kept draw, r;
2. the timed run keeps ceil(MARGIN * TARGET / (4 r)) draws per chain, the same warm-up, and
   reports its wall time, the bulk and tail ESS of tau it reached, and the time scaled to exactly
   1000, `s_per_1000_ess = wall_s * 1000 / ESS_bulk(tau)`;
3. nutpie compiles in its first call (the pilot) and reuses the model after; `compile_s` is the
   pilot's time minus that of a second, identical pilot. PyMC compiles its functions inside every
   call, so its times include that. `cold_s` = compile_s + wall_s.

Memory, in MiB: `rss_start` is the process's resident set after imports and data loading,
`peak_rss` its high-water mark over the whole process (resource.getrusage), `children_peak_rss`
the largest finished child process (PyMC's sampler workers), and `tracemalloc_peak` the peak of
Python and NumPy allocations during one more run of the timed size under tracemalloc (not timed:
tracemalloc slows allocation down). Memory that Rust (nutpie) or C libraries allocate on their
own is in the RSS figures only.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
import warnings
from pathlib import Path

import pandas as pd

import common

ENGINES = ("gibbs", "blocked", "exact", "nuts-pymc", "nutpie")
CHAINS = 4
TUNE = 1000
PILOT_DRAWS = 1000
TARGET = 1000
MARGIN = 1.2  # ask for 20% more than the pilot says, as ESS estimates scatter
SEED = 20261125
DATASET = "mathtest"
QUICK = {"tune": 20, "pilot": 50, "target": 50}


def _engine(name: str):
    """The engine as `f(data, priors, draws, tune, seed) -> InferenceData`."""
    if name in ("gibbs", "blocked"):
        from hiercheck.samplers import gibbs
        scheme = "textbook" if name == "gibbs" else "blocked"
        return lambda data, priors, draws, tune, seed: gibbs.sample(
            data, priors, draws=draws, chains=CHAINS, seed=seed, tune=tune, scheme=scheme)
    if name == "exact":
        from hiercheck.samplers import exact
        return lambda data, priors, draws, tune, seed: exact.sample(
            data, priors, draws=draws, chains=CHAINS, seed=seed)
    from hiercheck.models.reference import sample_nuts
    backend = "pymc" if name == "nuts-pymc" else "nutpie"

    def nuts(data, priors, draws, tune, seed):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # NUTS diagnostics are not what is measured here
            return sample_nuts(data, priors, draws=draws, chains=CHAINS, seed=seed, tune=tune,
                               backend=backend)
    return nuts


def _mib(kilobytes: int) -> float:
    return kilobytes / 1024.0  # ru_maxrss is in KiB on Linux


def measure(name: str, quick: bool) -> dict:
    """Everything about one engine, in this process."""
    from hiercheck.models import Priors, load_dataset

    tune, pilot, target = ((QUICK["tune"], QUICK["pilot"], QUICK["target"]) if quick
                           else (TUNE, PILOT_DRAWS, TARGET))
    if name == "exact":
        tune = 0  # i.i.d. draws: nothing to warm up
    engine = _engine(name)
    data = load_dataset(DATASET)
    priors = Priors.weakly_informative(data)
    if name in ("gibbs", "blocked", "exact"):
        engine(data, priors, 1, 0, SEED)  # untimed: first-call costs (lazy imports, caches)
    rss_start = _mib(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)

    def run(draws):
        return common.timed(lambda: engine(data, priors, draws, tune, SEED))

    idata, pilot_s, _ = run(pilot)
    compile_s = None
    if name == "nutpie":
        _, again_s, _ = run(pilot)
        compile_s = pilot_s - again_s
    per_draw = common.ess_summary(idata)["tau"]["bulk"] / (CHAINS * pilot)
    draws = math.ceil(MARGIN * target / (CHAINS * per_draw))
    idata, wall_s, _ = run(draws)
    ess = common.ess_summary(idata)["tau"]

    tracemalloc.start()
    engine(data, priors, draws, tune, SEED)
    traced_peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return {"engine": name, "target": target, "tune": tune, "pilot_draws": pilot,
            "pilot_s": pilot_s, "pilot_ess_per_draw": per_draw, "draws_per_chain": draws,
            "wall_s": wall_s, "ess_bulk_tau": ess["bulk"], "ess_tail_tau": ess["tail"],
            "s_per_1000_ess": wall_s * 1000 / ess["bulk"], "compile_s": compile_s,
            "cold_s": (compile_s or 0.0) + wall_s,
            "rss_start": rss_start,
            "peak_rss": _mib(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss),
            "children_peak_rss": _mib(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss),
            "tracemalloc_peak": traced_peak}


def in_child(name: str, quick: bool) -> dict:
    """`measure` in a fresh interpreter running this file with --one."""
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "one.json"
        command = [sys.executable, __file__, "--one", name, "--one-out", str(out)]
        if quick:
            command.append("--quick")
        completed = subprocess.run(command, capture_output=True, text=True)
        if completed.returncode != 0:
            raise RuntimeError(f"engine {name} failed:\n{completed.stderr[-3000:]}")
        return json.loads(out.read_text())


def main(argv=None) -> dict:
    parser = common.parser(__doc__.splitlines()[0])
    common.engines_argument(parser, ENGINES, ENGINES)
    parser.add_argument("--one", choices=ENGINES, help=argparse.SUPPRESS)
    parser.add_argument("--one-out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        Path(args.one_out).write_text(json.dumps(common.clean(measure(args.one, args.quick))))
        return {}
    machine = common.machine_info()
    start = time.perf_counter()
    rows = [in_child(name, args.quick) for name in common.chosen(args.engines, ENGINES)]
    machine["load_average_end"] = list(os.getloadavg())
    payload = {"benchmark": "engines", "machine": machine,
               "settings": {"dataset": DATASET, "chains": CHAINS, "seed": SEED,
                            "quick": args.quick, "margin": MARGIN,
                            "total_s": time.perf_counter() - start},
               "engines": rows}
    report(payload)
    if args.json:
        common.write_json(args.json, payload)
    return payload


def report(payload: dict) -> None:
    table = pd.DataFrame(payload["engines"]).set_index("engine")
    target = int(table["target"].iloc[0])
    common.show(f"Time to {target} effective draws of tau on {payload['settings']['dataset']} "
                f"(seconds; {payload['settings']['chains']} chains)",
                table[["tune", "draws_per_chain", "ess_bulk_tau", "ess_tail_tau", "wall_s",
                       "s_per_1000_ess", "compile_s", "cold_s"]])
    common.show("Memory (MiB)",
                table[["rss_start", "peak_rss", "children_peak_rss", "tracemalloc_peak"]],
                "{:.1f}".format)


if __name__ == "__main__":
    main()
