"""The hand-derived engines against PyMC NUTS, nutpie and statsmodels, side by side in one run.

    python -m benchmarks [--json PATH] [--quick] [--sections ess,eb,sbc,scaling,profile]

Run from the repository's root. Prints a table per section and writes every number, with the
machine, the versions and the load average, as strict JSON (default `benchmark.json`). Every
ratio is computed from numbers measured in the same run. Seeds are fixed. Sections:

ess      Minimum ESS per second on mathtest: the smallest ArviZ ESS, bulk and tail, over every
         variable (mu, lam, omega, sigma, tau and every theta_i) divided by a wall time. 4 chains,
         TUNE warm-up iterations then DRAWS kept draws per chain for every engine (the exact
         sampler has no warm-up). Times:
           gibbs, blocked      the whole `gibbs.sample` call (compiled kernel, InferenceData
                               included), median of GIBBS_REPLICATES seeds, the ESS of each seed
                               with its own time; `compile_s` is the first call's extra time
                               (numba's cache load or compile);
           gibbs-numpy         the same with the kernel switched off: the reference sweeps;
           exact               `exact.sample` (quadrature grid included);
           nuts-pymc           end to end: `pm.sample` from a built model, its C compilation,
                               worker start-up and tuning included; `sampling_s` is PyMC's own
                               `sampling_time` (tuning and draws only);
           nutpie              `compile_s` is `nutpie.compile_pymc_model`; the wall time is the
                               second of two `nutpie.sample` calls on the compiled model.
eb       Empirical Bayes on hsb (ML): `empirical_bayes.fit` by profile and by Nelder-Mead, and
         statsmodels' MixedLM from a data frame, median of EB_REPEATS; every optimum scored by
         one log-likelihood formula (benchmarks/empirical_bayes.py).
sbc      Gibbs SBC (`hiercheck.validation.sbc.run_gibbs_sbc`, vectorized blocks of 50, one process) of SBC_REPS
         replications x SBC_DRAWS kept draws on the mathtest design, with thin 1 (the headline)
         and thin 10; NUTS SBC (`hiercheck.validation.engines.sbc_engine("nuts")`: nutpie, compiled once per
         worker process) through a 2-process executor: NUTS_SBC_REPS replications of SBC_DRAWS
         draws after a 2-replication warm-up that compiles the model in both workers.
scaling  Simulated designs from m = 10 to 100,000 schools of 100 students on average (N up to
         10,000,000), each in a fresh process: `GroupedData.from_arrays` + the EB profile fit,
         then `gibbs.sample` of 4 chains, 1000 sweeps keeping every 5th, and the process's peak
         resident memory (imports included).
verdict  Time to a verdict, as a user waits for it: `hiercheck validate` on hsb, each run a fresh
         process (imports included), with an empty reference cache (cold), the same command again
         (warm: the references read back, the checks in as many processes as cores), the same
         with `--jobs 1` (the checks one after another), and the gross slip
         `--mutant theta-variance-for-precision --fail-fast` (cheapest checks first, stop at the
         first failure), each with its exit code; `hiercheck validate --model NAME` (check_gibbs,
         SBC's units in as many processes as cores) cold and warm for each of VERDICT_MODELS.
         With --quick, the fail-fast run alone.
profile  Where a sweep's time goes: microseconds per chain-sweep of the kernel and the
         reference at 4 and 256 chains, the random-number floor (the same normal and gamma
         variates drawn in a compiled loop with no arithmetic), and the reference's time per
         conditional.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the scripts import `common` bare
import common  # noqa: E402
import empirical_bayes as eb_bench  # noqa: E402

from hiercheck.models import GroupedData, Priors, load_dataset  # noqa: E402
from hiercheck.models.engine import POSTERIOR_VARIABLES, az  # noqa: E402
from hiercheck.samplers import empirical_bayes, exact, gibbs  # noqa: E402

SECTIONS = ("ess", "eb", "sbc", "scaling", "profile", "verdict")
SEED = 20261125
CHAINS = 4
TUNE = 1000
DRAWS = 2000
GIBBS_REPLICATES = 5
EB_REPEATS = 7
SBC_REPS = 1000
SBC_DRAWS = 1000
SBC_TUNE = 200
NUTS_SBC_REPS = 20
SCALING_M = (10, 100, 1000, 10_000, 100_000)
STUDENTS_PER_SCHOOL = 100
SCALING_SWEEPS, SCALING_THIN = 1000, 5
PROFILE_CHAINS = (4, 256)
PROFILE_SWEEPS = 2000
BARS = {  # the bars: (ratio or time, comparison, bound)
    "gibbs_vs_pymc_end_to_end": (">=", 100.0), "gibbs_vs_nutpie_sampling": (">=", 10.0),
    "eb_profile_vs_statsmodels": (">=", 100.0), "gibbs_sbc_s": ("<", 60.0),
    "scaling_build_and_eb_s": ("<", 5.0), "scaling_gibbs_s": ("<", 30.0),
    "scaling_peak_rss_gib": ("<", 3.0), "validate_cold_s": ("<", 30.0),
    "validate_warm_s": ("<", 10.0), "fail_fast_s": ("<", 5.0),
    "gibbs_sbc_small_design_s": ("<", 1.0), "check_gibbs_bloodpressure_cold_s": ("<", 60.0),
    "check_gibbs_bloodpressure_warm_s": ("<", 15.0),
}
QUICK = {"tune": 20, "draws": 50, "replicates": 2, "eb_repeats": 1, "sbc_reps": 20,
         "sbc_draws": 20, "sbc_tune": 10, "nuts_sbc_reps": 0, "scaling_m": (10, 100),
         "profile_sweeps": 20}


# -- ESS per second -----------------------------------------------------------------------------

def min_ess(posterior) -> dict:
    """The smallest bulk and tail ESS over every variable and every school, and where."""
    present = [name for name in POSTERIOR_VARIABLES if name in posterior]
    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for kind in ("bulk", "tail"):
            ess = az.ess(posterior, var_names=present, method=kind)
            values = {name: float(np.min(ess[name].values)) for name in present}
            slowest = min(values, key=values.get)
            out[kind] = values[slowest]
            out[f"{kind}_variable"] = slowest
    out["min"] = min(out["bulk"], out["tail"])
    return out


@contextmanager
def reference_path():
    """`gibbs.run` without its compiled kernels: every sweep by the numpy conditionals."""
    kernels = dict(gibbs._KERNELS)
    gibbs._KERNELS.clear()
    try:
        yield
    finally:
        gibbs._KERNELS.update(kernels)


def gibbs_row(name: str, data, priors, tune: int, draws: int, replicates: int) -> dict:
    scheme = "blocked" if name == "blocked" else "textbook"

    def call(seed):
        return gibbs.sample(data, priors, draws=draws, chains=CHAINS, seed=seed, tune=tune,
                            scheme=scheme)
    with reference_path() if name == "gibbs-numpy" else _nothing():
        _, first, _ = common.timed(lambda: call(SEED - 1))
        runs = [common.timed(lambda: call(SEED + k)) for k in range(replicates)]
    rates = [min_ess(idata.posterior)["min"] / seconds for idata, seconds, _ in runs]
    median = int(np.argsort(rates)[len(rates) // 2])
    idata, seconds, _ = runs[median]
    compile_s = None if name == "gibbs-numpy" else first - seconds
    ess = min_ess(idata.posterior)
    return {"engine": name, "wall_s": seconds, "compile_s": compile_s, "ess": ess,
            "min_ess_per_s": rates[median], "min_ess_per_s_all": rates,
            "min_ess_per_s_with_compile": ess["min"] / (seconds + (compile_s or 0.0))}


@contextmanager
def _nothing():
    yield


def nuts_rows(data, priors, tune: int, draws: int) -> list[dict]:
    import nutpie

    from hiercheck.models import reference

    rows = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        start = time.perf_counter()
        trace = reference._sample_pymc(data, priors, "centered", draws=draws, tune=tune,
                                       chains=CHAINS, seed=SEED, target_accept=0.8, cores=None)
        wall = time.perf_counter() - start
        ess = min_ess(trace.posterior)
        sampling = float(trace.posterior.attrs["sampling_time"])
        rows.append({"engine": "nuts-pymc", "wall_s": wall, "sampling_s": sampling,
                     "compile_s": wall - sampling, "ess": ess,
                     "min_ess_per_s": ess["min"] / wall,
                     "min_ess_per_s_sampling": ess["min"] / sampling})
        with reference._quiet_graph_rewriter():
            start = time.perf_counter()
            compiled = nutpie.compile_pymc_model(reference.build_model(data, priors))
            compile_s = time.perf_counter() - start
        times = []
        for _ in range(2):
            start = time.perf_counter()
            trace = nutpie.sample(compiled, draws=draws, tune=tune, chains=CHAINS, cores=2,
                                  seed=SEED, progress_bar=False)
            times.append(time.perf_counter() - start)
    ess = min_ess(trace.posterior)
    rows.append({"engine": "nutpie", "wall_s": times[-1], "sampling_s": times[-1],
                 "compile_s": compile_s, "first_sample_s": times[0], "ess": ess,
                 "min_ess_per_s": ess["min"] / times[-1],
                 "min_ess_per_s_with_compile": ess["min"] / (compile_s + times[-1])})
    return rows


def section_ess(quick: bool, skip_nuts: bool) -> dict:
    data = load_dataset("mathtest")
    priors = Priors.weakly_informative(data)
    tune, draws = (QUICK["tune"], QUICK["draws"]) if quick else (TUNE, DRAWS)
    replicates = QUICK["replicates"] if quick else GIBBS_REPLICATES
    rows = [gibbs_row(name, data, priors, tune, draws, replicates)
            for name in ("gibbs", "blocked", "gibbs-numpy")]
    exact.sample(data, priors, draws=1, chains=1, seed=SEED)  # untimed: first-call costs
    idata, seconds, _ = common.timed(lambda: exact.sample(data, priors, draws=draws,
                                                          chains=CHAINS, seed=SEED))
    ess = min_ess(idata.posterior)
    rows.append({"engine": "exact", "wall_s": seconds, "ess": ess,
                 "min_ess_per_s": ess["min"] / seconds})
    if not skip_nuts:
        rows += nuts_rows(data, priors, tune, draws)
    by = {row["engine"]: row for row in rows}
    ratios = {"gibbs_vs_gibbs_numpy": by["gibbs"]["min_ess_per_s"]
              / by["gibbs-numpy"]["min_ess_per_s"]}
    if not skip_nuts:
        ratios["gibbs_vs_pymc_end_to_end"] = (by["gibbs"]["min_ess_per_s"]
                                              / by["nuts-pymc"]["min_ess_per_s"])
        ratios["gibbs_vs_pymc_sampling"] = (by["gibbs"]["min_ess_per_s"]
                                            / by["nuts-pymc"]["min_ess_per_s_sampling"])
        ratios["gibbs_vs_nutpie_sampling"] = (by["gibbs"]["min_ess_per_s"]
                                              / by["nutpie"]["min_ess_per_s"])
        ratios["blocked_vs_nutpie_sampling"] = (by["blocked"]["min_ess_per_s"]
                                                / by["nutpie"]["min_ess_per_s"])
    return {"dataset": "mathtest", "chains": CHAINS, "tune": tune, "draws": draws,
            "rows": rows, "ratios": ratios}


# -- empirical Bayes ----------------------------------------------------------------------------

def section_eb(quick: bool) -> dict:
    data = load_dataset("hsb")
    frame = eb_bench.frame_of(data)
    moments = eb_bench.Moments(frame)
    repeats = QUICK["eb_repeats"] if quick else EB_REPEATS
    calls = {"profile": lambda: eb_bench.fit_hiercheck(data, False, "profile"),
             "nelder-mead": lambda: eb_bench.fit_hiercheck(data, False, "nelder-mead"),
             "statsmodels": lambda: eb_bench.fit_statsmodels(frame, False)}
    rows = []
    for method, call in calls.items():
        call()  # untimed: first-call costs
        result, seconds, _ = common.timed(call, repeats)
        rows.append({"method": method, "time_ms": 1e3 * seconds,
                     "loglik": moments.loglik(result["mu"], result["s2"], result["g"]),
                     "mu": result["mu"], "sigma": float(np.sqrt(result["s2"])),
                     "between_sd": float(np.sqrt(result["g"]))})
    best = max(row["loglik"] for row in rows)
    for row in rows:
        row["diff_to_best"] = row["loglik"] - best
    by = {row["method"]: row for row in rows}
    return {"dataset": "hsb", "criterion": "ML", "rows": rows, "ratios": {
        "eb_profile_vs_statsmodels": by["statsmodels"]["time_ms"] / by["profile"]["time_ms"],
        "eb_profile_vs_nelder_mead": by["nelder-mead"]["time_ms"] / by["profile"]["time_ms"],
        "eb_profile_minus_statsmodels_loglik": by["profile"]["loglik"]
        - by["statsmodels"]["loglik"]}}


# -- SBC ----------------------------------------------------------------------------------------

def section_sbc(quick: bool, skip_nuts: bool) -> dict:
    from hiercheck.validation.engines import sbc_engine
    from hiercheck.validation.sbc import QUICK_DESIGN, QUICK_PRIORS, run_engine_sbc, run_gibbs_sbc

    data = load_dataset("mathtest")
    priors = Priors.weakly_informative(data)
    reps, draws, tune = ((QUICK["sbc_reps"], QUICK["sbc_draws"], QUICK["sbc_tune"]) if quick
                         else (SBC_REPS, SBC_DRAWS, SBC_TUNE))
    rows = []
    for thin in (1, 10):
        result, seconds, _ = common.timed(lambda: run_gibbs_sbc(
            data.n, priors, replications=reps, draws=draws, thin=thin, tune=tune, seed=SEED))
        rows.append({"engine": "gibbs", "replications": reps, "draws": draws, "thin": thin,
                     "tune": tune, "sweeps": tune + draws * thin, "wall_s": seconds,
                     "reps_per_s": reps / seconds, "uniform": result.passed,
                     "not_uniform": _not_uniform(result)})
    small, small_s, _ = common.timed(lambda: run_gibbs_sbc(
        QUICK_DESIGN, QUICK_PRIORS, replications=reps, draws=draws, thin=1, tune=tune, seed=SEED))
    rows.append({"engine": f"gibbs, small design {QUICK_DESIGN.tolist()}", "replications": reps,
                 "draws": draws, "thin": 1, "tune": tune, "sweeps": tune + draws,
                 "wall_s": small_s, "reps_per_s": reps / small_s, "uniform": small.passed,
                 "not_uniform": _not_uniform(small)})
    nuts_reps = 0 if skip_nuts else (QUICK["nuts_sbc_reps"] if quick else NUTS_SBC_REPS)
    if nuts_reps:
        engine = sbc_engine("nuts")
        with warnings.catch_warnings(), ProcessPoolExecutor(2) as executor:
            warnings.simplefilter("ignore")
            _, warm_s, _ = common.timed(lambda: run_engine_sbc(
                engine, data, priors, replications=2, draws=draws, seed=SEED - 1,
                executor=executor))
            result, seconds, _ = common.timed(lambda: run_engine_sbc(
                engine, data, priors, replications=nuts_reps, draws=draws, seed=SEED,
                executor=executor))
        rows.append({"engine": "nuts (nutpie, 2 processes)", "replications": nuts_reps,
                     "draws": draws, "thin": 1, "tune": 500, "warm_up_s": warm_s,
                     "wall_s": seconds, "reps_per_s": nuts_reps / seconds,
                     "uniform": result.passed, "not_uniform": _not_uniform(result)})
    ratios = {"gibbs_sbc_s": rows[0]["wall_s"], "gibbs_sbc_small_design_s": small_s}
    if nuts_reps:
        ratios["gibbs_vs_nuts_sbc_reps_per_s"] = rows[0]["reps_per_s"] / rows[-1]["reps_per_s"]
    return {"design": "mathtest", "rows": rows, "ratios": ratios}


def _not_uniform(result) -> str:
    """The quantities whose ranks fail uniformity (Holm, alpha 0.01), with their p-values."""
    table = result.table
    return "; ".join(f"{row.quantity} (chi2 p {row.chi2_p_holm:.2g}, ecdf p {row.ecdf_p_holm:.2g})"
                     for row in table[~table.uniform].itertuples())


# -- scaling ------------------------------------------------------------------------------------

def scaling_case(m: int) -> dict:
    """One design, in this process: simulate, then time building the data, the EB fit and Gibbs."""
    rng = np.random.default_rng(SEED + m)
    sizes = rng.multinomial(m * (STUDENTS_PER_SCHOOL - 2), np.full(m, 1.0 / m)) + 2
    codes = np.repeat(np.arange(m), sizes)
    school_means = rng.normal(50.0, 5.0, m)
    values = school_means[codes] + rng.normal(0.0, 10.0, codes.size)
    rss_before = peak_rss_gib()
    # the first sample of a process loads the compiled kernel (numba's cache): timed apart
    _, kernel_load_s, _ = common.timed(lambda: gibbs.sample(
        load_dataset("rail"), Priors.weakly_informative(load_dataset("rail")), draws=1, chains=1,
        seed=SEED, tune=0))
    start = time.perf_counter()
    data = GroupedData.from_arrays(codes, values, name=f"simulated {m}")
    built = time.perf_counter()
    fit = empirical_bayes.fit(data)
    fitted = time.perf_counter()
    idata = gibbs.sample(data, Priors.weakly_informative(data),
                         draws=SCALING_SWEEPS // SCALING_THIN, chains=CHAINS, seed=SEED, tune=0,
                         thin=SCALING_THIN)
    sampled = time.perf_counter()
    return {"m": m, "N": data.N, "build_s": built - start, "eb_s": fitted - built,
            "build_and_eb_s": fitted - start, "gibbs_s": sampled - fitted,
            "eb_converged": bool(fit.converged),
            "kept_draws": int(idata.posterior.sizes["draw"]), "kernel_load_s": kernel_load_s,
            "rss_after_simulation_gib": rss_before,
            "peak_rss_gib": peak_rss_gib()}


def peak_rss_gib() -> float:
    """This process's peak resident memory in GiB: VmHWM, which (unlike getrusage's ru_maxrss,
    kept across exec on Linux) starts afresh in a new program, so the parent's peak is not ours."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 2**20  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


def section_scaling(quick: bool) -> dict:
    rows = []
    for m in (QUICK["scaling_m"] if quick else SCALING_M):
        with tempfile.TemporaryDirectory() as folder:
            out = Path(folder) / "case.json"
            completed = subprocess.run([sys.executable, "-m", "benchmarks", "--scaling-case",
                                        str(m), "--json", str(out)], cwd=common.REPO,
                                       capture_output=True, text=True)
            if completed.returncode != 0:
                raise RuntimeError(f"scaling case m={m} failed:\n{completed.stderr[-3000:]}")
            rows.append(json.loads(out.read_text()))
    largest = rows[-1]
    return {"sweeps": SCALING_SWEEPS, "thin": SCALING_THIN, "chains": CHAINS, "rows": rows,
            "ratios": {"scaling_build_and_eb_s": largest["build_and_eb_s"],
                       "scaling_gibbs_s": largest["gibbs_s"],
                       "scaling_peak_rss_gib": largest["peak_rss_gib"]}}


# -- where the time goes ------------------------------------------------------------------------

def _rng_floor_kernel():
    """A compiled loop drawing a sweep's variates (m + 1 normals, 2 gammas per chain) and
    nothing else; the sum keeps the compiler from dropping the draws."""
    import numba

    @numba.njit
    def draw_only(rng, chains, m, sweeps, shape):
        total = 0.0
        for _ in range(sweeps):
            for _ in range(chains * (m + 1)):
                total += rng.standard_normal()
            for _ in range(2 * chains):
                total += rng.standard_gamma(shape)
        return total
    return draw_only


def section_profile(quick: bool) -> dict:
    data = load_dataset("mathtest")
    priors = Priors.weakly_informative(data)
    stats, m = data.stats, data.m
    sweeps = QUICK["profile_sweeps"] if quick else PROFILE_SWEEPS
    rng = np.random.default_rng(SEED)
    draw_only = _rng_floor_kernel()
    draw_only(rng, 1, 2, 1, 3.0)  # compile
    rows = []
    for chains in PROFILE_CHAINS:
        state = gibbs.initial_state(rng, stats, priors, (chains,))
        row = {"chains": chains}
        for label, context in (("kernel", _nothing), ("reference", reference_path)):
            for scheme, sweep in gibbs.SCHEMES.items():
                with context():
                    gibbs.run(rng, stats, priors, state, tune=1, draws=1, sweep=sweep)
                    _, _, times = common.timed(lambda: gibbs.run(
                        rng, stats, priors, state, tune=sweeps - 1, draws=1, sweep=sweep), 3)
                row[f"{label}_{scheme}_us"] = 1e6 * min(times) / sweeps / chains
        _, _, times = common.timed(lambda: draw_only(rng, chains, m, sweeps, 50.0), 3)
        row["rng_floor_compiled_us"] = 1e6 * min(times) / sweeps / chains

        def numpy_variates():
            for _ in range(sweeps):
                rng.standard_normal((chains, m))
                rng.standard_normal(chains)
                rng.standard_gamma(50.0, chains)
                rng.standard_gamma(50.0, chains)
        _, _, times = common.timed(numpy_variates, 3)
        row["rng_floor_numpy_calls_us"] = 1e6 * min(times) / sweeps / chains
        rows.append(row)
    state = gibbs.broadcast_state(gibbs.initial_state(rng, stats, priors, (CHAINS,)), stats)
    conditionals = []
    for name in ("draw_theta", "draw_mu", "draw_lam", "draw_omega"):
        draw = getattr(gibbs, name)
        _, _, times = common.timed(lambda: [draw(rng, state, stats, priors)
                                            for _ in range(sweeps)], 3)
        conditionals.append({"conditional": name, "chains": CHAINS,
                             "us_per_call": 1e6 * min(times) / sweeps})
    return {"dataset": "mathtest", "m": m, "sweeps": sweeps, "per_chain_sweep": rows,
            "reference_conditionals": conditionals}


# -- verdict ------------------------------------------------------------------------------------

VERDICT_RUNS = (  # (label, arguments after `hiercheck validate`, a fresh cache?)
    ("cold", ["--dataset", "hsb"], True),
    ("warm", ["--dataset", "hsb"], False),
    ("warm, one process", ["--dataset", "hsb", "--jobs", "1"], False),  # what --jobs buys
    ("fail-fast on a gross slip", ["--dataset", "hsb", "--mutant", "theta-variance-for-precision",
                                   "--fail-fast"], False),
)
QUICK_VERDICT_RUNS = ((*VERDICT_RUNS[3][:2], True),)  # --quick: the seconds-long one alone
VERDICT_MODELS = ("bloodpressure",)  # `validate --model NAME`: check_gibbs, cold and warm


def timed_command(arguments: list[str], cache: Path, out: Path) -> dict:
    """`hiercheck validate ARGUMENTS` in a fresh process: wall time and exit code."""
    command = [sys.executable, "-m", "hiercheck.validation.cli", "validate", *arguments,
               "--out", str(out)]
    environment = {**os.environ, "HIERCHECK_CACHE": str(cache)}
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=environment)
    return {"wall_s": time.perf_counter() - start, "exit_code": done.returncode,
            "last_line": (done.stdout.strip().splitlines() or [""])[0][:100]}


def section_verdict(quick: bool, models: tuple[str, ...] = VERDICT_MODELS) -> dict:
    rows = []
    runs = (QUICK_VERDICT_RUNS if quick else VERDICT_RUNS) + tuple(
        run for model in (() if quick else models) for run in (
        (f"{model} cold", ["--model", model], True), (f"{model} warm", ["--model", model], False)))
    with tempfile.TemporaryDirectory() as folder:
        for label, arguments, fresh in runs:
            if fresh:  # an empty cache; the runs after it until the next fresh one reuse it
                cache = Path(folder) / f"cache-{len(rows)}"
            # a folder of its own: a run must not resume SBC units that another one saved
            row = timed_command(arguments, cache, Path(folder) / f"out-{len(rows)}")
            rows.append({"run": label, "command": "hiercheck validate " + " ".join(arguments),
                         "fresh": fresh, **row})
    names = {"cold": "validate_cold_s", "warm": "validate_warm_s",
             "warm, one process": "validate_warm_one_process_s",
             "fail-fast on a gross slip": "fail_fast_s",
             **{f"{model} {kind}": f"check_gibbs_{model}_{kind}_s"
                for model in models for kind in ("cold", "warm")}}
    return {"rows": rows, "ratios": {names[row["run"]]: row["wall_s"] for row in rows}}


# -- output -------------------------------------------------------------------------------------

def verdicts(ratios: dict) -> list[dict]:
    rows = []
    for name, (comparison, bound) in BARS.items():
        if name in ratios:
            value = ratios[name]
            met = value >= bound if comparison == ">=" else value < bound
            rows.append({"measure": name, "value": value, "bar": f"{comparison} {bound:g}",
                         "met": bool(met)})
    return rows


def report(payload: dict) -> None:
    results = payload["sections"]
    if "ess" in results:
        ess = results["ess"]
        table = pd.DataFrame([{
            "engine": row["engine"], "wall_s": row["wall_s"],
            "sampling_s": row.get("sampling_s"), "compile_s": row.get("compile_s"),
            "min_ess_bulk": row["ess"]["bulk"], "min_ess_tail": row["ess"]["tail"],
            "slowest": f"{row['ess']['bulk_variable']}/{row['ess']['tail_variable']}",
            "min_ess_per_s": row["min_ess_per_s"],
            "min_ess_per_s_sampling": row.get("min_ess_per_s_sampling")} for row in ess["rows"]])
        common.show(f"Minimum ESS per second on mathtest ({ess['chains']} chains, {ess['tune']} "
                    f"warm-up + {ess['draws']} draws each)", table.set_index("engine"))
    if "eb" in results:
        common.show("Empirical Bayes on hsb (ML; time: median)",
                    pd.DataFrame(results["eb"]["rows"]).set_index("method"), "{:.6g}".format)
    if "sbc" in results:
        common.show("SBC throughput on the mathtest design",
                    pd.DataFrame(results["sbc"]["rows"]).set_index("engine"))
    if "scaling" in results:
        common.show(f"Scaling: build + EB fit, then Gibbs ({CHAINS} chains, {SCALING_SWEEPS} "
                    f"sweeps keeping every {SCALING_THIN}th); peak RSS in GiB",
                    pd.DataFrame(results["scaling"]["rows"]).set_index("m"))
    if "profile" in results:
        profile = results["profile"]
        common.show("Microseconds per chain-sweep (mathtest, 100 schools): compiled kernel, "
                    "reference sweeps, random-number floor",
                    pd.DataFrame(profile["per_chain_sweep"]).set_index("chains"), "{:.3g}".format)
        common.show("Reference sweeps: microseconds per call of each conditional (4 chains)",
                    pd.DataFrame(profile["reference_conditionals"]).set_index("conditional"),
                    "{:.3g}".format)
    if "verdict" in results:
        common.show("Time to a verdict: hiercheck validate, a fresh process each",
                    pd.DataFrame(results["verdict"]["rows"]).set_index("run"), "{:.3g}".format)
    common.show("Ratios from this run", pd.DataFrame(
        [{"measure": k, "value": v} for k, v in payload["ratios"].items()]).set_index("measure"),
        "{:.4g}".format)
    if payload["bars"]:
        common.show("The issue's bars", pd.DataFrame(payload["bars"]).set_index("measure"),
                    "{:.4g}".format)


def main(argv=None) -> dict:
    parser = common.parser(__doc__.splitlines()[0])
    parser.set_defaults(json="benchmark.json")
    parser.add_argument("--sections", default=",".join(SECTIONS),
                        help=f"comma-separated subset of {','.join(SECTIONS)}")
    parser.add_argument("--skip-nuts", action="store_true",
                        help="leave out PyMC and nutpie (they compile for tens of seconds)")
    parser.add_argument("--scaling-case", type=int, metavar="M", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.scaling_case is not None:
        common.write_json(args.json, scaling_case(args.scaling_case))
        return {}
    sections = common.chosen(args.sections, SECTIONS)
    machine = common.machine_info()
    results = {}
    for name in sections:
        if name == "ess":
            results[name] = section_ess(args.quick, args.skip_nuts)
        elif name == "eb":
            results[name] = section_eb(args.quick)
        elif name == "sbc":
            results[name] = section_sbc(args.quick, args.skip_nuts)
        elif name == "scaling":
            results[name] = section_scaling(args.quick)
        elif name == "verdict":
            results[name] = section_verdict(args.quick)
        else:
            results[name] = section_profile(args.quick)
    machine["load_average_end"] = list(os.getloadavg())
    ratios = {k: v for section in results.values() for k, v in section.get("ratios", {}).items()}
    payload = {"benchmark": "hiercheck", "machine": machine,
               "settings": {"quick": args.quick, "sections": sections, "seed": SEED,
                            "skip_nuts": args.skip_nuts},
               "sections": results, "ratios": ratios,
               "bars": [] if args.quick else verdicts(ratios)}
    report(payload)
    common.write_json(args.json, payload)
    print(f"\nwrote {args.json}")
    return payload


if __name__ == "__main__":
    main()
