"""check_gibbs ("any model") on the example models of tests/test_generic.py: its time, and the
false-alarm rate of its multivariate test.

    python benchmarks/generic.py --timing                   # check_gibbs quick on each model
    python benchmarks/generic.py --false-alarms 30          # consistency of the joint blocks, 30 seeds
    python benchmarks/generic.py --null 400                 # the two-sample tests alone, Gaussian pairs
    python benchmarks/generic.py --geweke-false-alarms 100  # Geweke on the blood-pressure sweep
    python benchmarks/generic.py --consistency-false-alarms 100  # consistency on that sweep
    python benchmarks/generic.py --geweke-tail-power 20     # a far-tail slip, three levels or five
    ... --geweke-levels 0.01 0.1 0.5 0.9 0.99               # Geweke's levels for the false alarms
    python benchmarks/generic.py --verdict-false-alarms 100 # every check on it
    python benchmarks/generic.py --evaluation 1000          # the batched density at 1000 points
    python benchmarks/generic.py --cheese-sigma             # consistency of the cheese Sigma block
    python benchmarks/generic.py --coupled-power 200        # a covariance 10% too large, 200 seeds
    python benchmarks/generic.py --wishart-power 200        # an inverse Wishart's scale 5% off
    python benchmarks/generic.py --certification-false-alarms 100  # chains that mix, certified?
    python benchmarks/generic.py --blanket                  # cheese's conjugate fits, two ways
    ... --json generic.json                                 # and save what was measured

Timing: each model's check_gibbs(quick=True, seed=0) from a fresh ModelReferences, so NUTS and
every compilation are inside (PyTensor's compiled C code is cached on disk between runs; the
first run on a machine compiles it). False alarms: the correct conditionals of the regression
(beta, 3 coupled coefficients) and the variance-components model ((mu, a), 21 coupled
elements), consistency only, seeds 0..N-1 with the references (NUTS, states) of seed 0: a false
alarm of the multivariate test is a seed at which the smallest Holm-adjusted p-value over the
joint block's rows alone is at or below the level. The null experiment draws pairs of samples
from one correlated normal and runs `two_sample_tests` on them, without any MCMC. Geweke's
false alarms: the built-in blood-pressure model's own (correct) sweep, Geweke's test alone at the
quick settings, seeds 0..N-1 (each seed its own chains and marginal draws; the model compiled
once), chains in two forked processes: the smallest Holm-adjusted p-value of each seed, at the
shipped levels of the prior quantiles or at `--geweke-levels`. Consistency's false alarms: the
same sweep, the consistency check alone, seeds 0..N-1 with the references (NUTS, states) of seed
0: the smallest Holm-adjusted p-value of each seed, and the reference each block used. Geweke's
tail power: the same sweep with lam's draws beyond its conditional's 99th percentile q stretched
to q + 1.5 (x - q), Geweke's test at seeds 0..N-1 at the shipped levels (0.1, 0.5, 0.9) and
with 0.01 and 0.99 added: the seeds at which each catches it. Verdict
false alarms: `check_gibbs` with every check on the same sweep, as `hiercheck validate --model
bloodpressure` runs it (batched, two processes), at seeds 0..N-1 with the references (NUTS, the
consistency states) of seed 0: each check's smallest Holm-adjusted p-value at each seed.
Evaluation: seconds per call of `CompiledModel.evaluate` at K points of the covariance model of
tests/test_generic_resized.py (40 observations of N_3(m, Sigma), Sigma inverse Wishart), one
BLAS thread, best of 5, compiled with the batched linear algebra
(`pymc_model.batched_linear_algebra`, as shipped) and without it (PyTensor's Blockwise loop).
Cheese Sigma: the consistency check of the built-in cheese model's Sigma block alone (10
log-Cholesky coordinates), for the shipped draw and the `Sigma-half-df` mutant, at quick settings
with 2 posterior states taken from the package's Gibbs engine (4 chains of 200 draws, in place of
NUTS, which takes 15 minutes) and 1 prior state: the smallest Holm-adjusted p, the reference
chains' least acceptance (1 for exact draws) and the reference the block used. Coupled power:
the regression's beta block (3 coefficients, predictors correlated 0.8, 0.5, 0.6) drawn from its
exact conditional and from one whose covariance is 10% too large (tau drawn exactly in both),
quick consistency alone (both stages) at seeds 0..N-1 with the references (NUTS, states) of seed
0: the seeds at which the check fails each, and at which a second stage ran. Wishart power: the
same for the Sigma block (3 x 3, 40 observations, inverse Wishart) of the covariance model of
tests/test_generic_resized.py, drawn exactly and with its scale matrix 5% too large, at quick
settings with the posterior states from the exact conjugate sweep (not NUTS). Certification
false alarms: a logistic regression's coefficients (3, 80 observations; not conjugate, so
their reference is certified chains) drawn by 50 random-walk Metropolis steps, consistency
alone at seeds 0..N-1 with the references of seed 0: the verdicts that are not "passed"
(a "cannot verify" there is a certification that failed chains that mix), and each seed's
smallest certification p-value. Blanket: each recognized conjugate block of the built-in
cheese model, `parameters` at one state and at a batch of 50 (the model's initial point
jittered), evaluated through the block's Markov blanket alone (as shipped) and through every
term of the model (the whole-model function recognition uses), best of 5 each, in one run.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np

warnings.simplefilter("ignore")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hiercheck.validation.generic import (  # noqa: E402
    GENERIC_QUICK, GEWEKE_LEVELS, ModelReferences, check_gibbs, consistency_check,
    parse_conditionals)
from hiercheck.validation.statistics import holm_adjust, two_sample_tests  # noqa: E402
from tests import test_generic as examples  # noqa: E402

MODELS = {
    "poisson-gamma": (examples.poisson_gamma_model, examples.POISSON_GAMMA),
    "regression": (examples.regression_model, examples.REGRESSION),
    "components": (examples.components_model, examples.COMPONENTS),
    "change point": (examples.changepoint_model, examples.CHANGEPOINT),
}
JOINT = {"regression": "beta", "components": "(mu, a)"}
LEVELS = (0.01, 0.001)
TAIL_LEVELS = (0.01, *GEWEKE_LEVELS, 0.99)


def timing() -> dict:
    times = {}
    for name, (build, conditionals) in MODELS.items():
        started = time.perf_counter()
        verdict = check_gibbs(build(), conditionals, seed=0, name=name)
        times[name] = {"seconds": time.perf_counter() - started, "passed": verdict.passed,
                       "checks": {o.check: round(o.seconds, 1) for o in verdict.outcomes}}
        print(f"{name}: {times[name]}", flush=True)
    return times


def false_alarms(seeds: int) -> dict:
    from hiercheck.validation.generic import _SweepRun

    results = {}
    for name, block in JOINT.items():
        build, conditionals = MODELS[name]
        references = ModelReferences(build(), GENERIC_QUICK, 0, name)
        blocks = parse_conditionals(conditionals, references.variables)
        smallest = []
        for seed in range(seeds):
            table = consistency_check(_SweepRun(blocks, references, seed), seed).table
            joint = table[table.block == block]
            smallest.append(float(holm_adjust(joint.p.to_numpy(dtype=float)).min()))
            print(f"{name} seed {seed}: smallest Holm-adjusted p of the joint block "
                  f"{smallest[-1]:.3g} ({len(joint)} tests)", flush=True)
        results[name] = {"seeds": seeds, "smallest": smallest, "tests": int(len(joint)),
                         **{f"alarms at {level}": int(np.sum(np.array(smallest) <= level))
                            for level in LEVELS}}
    return results


def geweke_false_alarms(seeds: int, levels: tuple[float, ...]) -> dict:
    """Geweke's test alone on the blood-pressure model's correct sweep, one run per seed."""
    from hiercheck.validation.generic import _SweepRun, geweke_check

    references, blocks = _blood_pressure_sweep()
    smallest = []
    for seed in range(seeds):
        table = geweke_check(_SweepRun(blocks, references, seed, jobs=2), seed,
                             levels=levels).table
        smallest.append(float(table.p_holm.min()))
        print(f"bloodpressure geweke seed {seed}: smallest Holm-adjusted p {smallest[-1]:.3g} "
              f"({len(table)} tests)", flush=True)
    return {"seeds": seeds, "levels": levels, "tests": int(len(table)), "smallest": smallest,
            **{f"seeds with min p_holm <= {level}": int(np.sum(np.array(smallest) <= level))
               for level in (0.05, 0.01, 0.001)}}


def consistency_false_alarms(seeds: int) -> dict:
    """The consistency check alone on the blood-pressure model's correct sweep, one per seed."""
    from hiercheck.validation.generic import _SweepRun

    references, blocks = _blood_pressure_sweep()
    smallest = []
    for seed in range(seeds):
        table = consistency_check(_SweepRun(blocks, references, seed), seed).table
        smallest.append(float(table.p_holm.min()))
        print(f"bloodpressure consistency seed {seed}: smallest Holm-adjusted p "
              f"{smallest[-1]:.3g} ({len(table)} tests)", flush=True)
    used = table.groupby("block", sort=False).reference.agg(lambda r: sorted(set(r)))
    return {"seeds": seeds, "tests": int(len(table)), "references": used.to_dict(),
            "smallest": smallest,
            **{f"seeds with min p_holm <= {level}": int(np.sum(np.array(smallest) <= level))
               for level in (0.05, 0.01, 0.001)}}


def _blood_pressure_sweep(conditionals: dict | None = None):
    """ModelReferences of the built-in blood-pressure model (seed 0) and the blocks of its sweep
    (its own, or `conditionals`)."""
    from hiercheck.validation.builtin_models import BUILTIN_MODELS

    builtin = BUILTIN_MODELS["bloodpressure"]
    references = ModelReferences(builtin.build_model(builtin.load()), GENERIC_QUICK, 0,
                                 "bloodpressure")
    blocks = parse_conditionals(conditionals or builtin.conditionals(), references.variables,
                                batched=builtin.batched)
    return references, blocks


def _draw_lam_with_a_stretched_tail(rng, state, data):
    """lam's draw, its part beyond the conditional's 99th percentile q stretched by 1.5."""
    from scipy import stats

    from hiercheck.samplers import bloodpressure

    shape, rate = bloodpressure.lam_conditional(state, data)
    draw = bloodpressure.draw_lam(rng, state, data)
    q = stats.gamma.ppf(0.99, shape, scale=1 / np.asarray(rate))
    return np.where(draw > q, q + 1.5 * (draw - q), draw)


def geweke_tail_power(seeds: int) -> dict:
    """Geweke's test on the blood-pressure sweep with a far-tail slip in lam, at the shipped
    levels and with 0.01 and 0.99 added: the seeds at which each catches it."""
    from hiercheck.samplers import bloodpressure
    from hiercheck.validation.generic import _SweepRun, geweke_check
    from hiercheck.validation.result import ALPHA

    references, blocks = _blood_pressure_sweep(
        {**bloodpressure.conditionals(), "lam": _draw_lam_with_a_stretched_tail})
    results = {}
    for levels in (GEWEKE_LEVELS, TAIL_LEVELS):
        smallest = []
        for seed in range(seeds):
            table = geweke_check(_SweepRun(blocks, references, seed, jobs=2), seed,
                                 levels=levels).table
            smallest.append(float(table.p_holm.min()))
            print(f"levels {levels} seed {seed}: smallest Holm-adjusted p {smallest[-1]:.3g}",
                  flush=True)
        results[str(levels)] = {"seeds": seeds, "smallest": smallest,
                                "caught": int(np.sum(np.array(smallest) <= ALPHA))}
    return results


def verdict_false_alarms(seeds: int) -> dict:
    """Every check of `check_gibbs` on the blood-pressure model's correct sweep, one run per seed:
    each check's smallest Holm-adjusted p-value at each seed, and the seeds where some check
    failed at the suite's alpha."""
    from hiercheck.validation.builtin_models import BUILTIN_MODELS

    builtin = BUILTIN_MODELS["bloodpressure"]
    model = builtin.build_model(builtin.load())
    references = ModelReferences(model, GENERIC_QUICK, 0, "bloodpressure")
    smallest: dict[str, list[float]] = {}
    failed = []
    for seed in range(seeds):
        verdict = check_gibbs(model, builtin.conditionals(), seed=seed, references=references,
                              jobs=2, batched=builtin.batched)
        for outcome in verdict.outcomes:
            smallest.setdefault(outcome.check, []).append(outcome.value)
        if not verdict.passed:
            failed.append(seed)
        print(f"bloodpressure seed {seed}: " + ", ".join(
            f"{o.check} {o.value:.3g}" for o in verdict.outcomes), flush=True)
    return {"seeds": seeds, "failed verdicts": failed, "smallest": smallest,
            **{f"{check}: seeds with min p_holm <= {level}": int(np.sum(np.array(values) <= level))
               for check, values in smallest.items() for level in (0.05, 0.01, 0.001)}}


def null_experiment(pairs: int, dimensions=(3, 21), size: int = 1000) -> dict:
    rng = np.random.default_rng(0)
    results = {}
    for d in dimensions:
        smallest = []
        for _ in range(pairs):
            a, b = rng.standard_normal((size, d)), rng.standard_normal((size, d))
            smallest.append(float(holm_adjust(np.array([p for *_, p in two_sample_tests(a, b)]))
                                  .min()))
        results[f"d={d}"] = {"pairs": pairs, **{f"alarms at {level}": int(np.sum(
            np.array(smallest) <= level)) for level in (0.05, 0.01, 0.001)}}
        print(f"d={d}: {results[f'd={d}']}", flush=True)
    return results


def evaluation(points: int) -> dict:
    from scipy import stats
    from threadpoolctl import threadpool_limits

    from hiercheck.validation import pymc_model
    from tests import test_generic_resized as covariance

    rng = np.random.default_rng(0)
    natural = {"m": rng.normal(size=(points, covariance.P)),
               "Sigma": stats.invwishart.rvs(8, covariance.TRUE_SIGMA, size=points,
                                             random_state=rng)}
    shipped, results = pymc_model.batched_linear_algebra, {}
    for label, rewrite in (("batched", shipped), ("blockwise loop", lambda outputs: outputs)):
        pymc_model.batched_linear_algebra = rewrite
        try:
            compiled = pymc_model.CompiledModel(covariance.covariance_model())
            compiled.term_owners  # noqa: B018 (compiles)
        finally:
            pymc_model.batched_linear_algebra = shipped
        u = compiled.to_unconstrained(natural)
        seconds = []
        with threadpool_limits(1):
            for _ in range(5):
                started = time.perf_counter()
                compiled.evaluate(u)
                seconds.append(time.perf_counter() - started)
        results[label] = {"points": points, "seconds": min(seconds)}
        print(f"{label}: {results[label]}", flush=True)
    return results


def cheese_sigma() -> dict:
    from dataclasses import replace

    from hiercheck.models import cheese as models
    from hiercheck.samplers import cheese as samplers
    from hiercheck.validation.generic import _SweepRun

    data = models.load()
    references = ModelReferences(models.build_model(data), replace(
        GENERIC_QUICK, posterior_points=2, prior_points=1), 0, "cheese")
    posterior = samplers.sample(data, draws=200, chains=4, seed=1).posterior
    references.__dict__["nuts"] = {name: posterior[name].to_numpy()
                                   for name in references.variables}
    results = {}
    for label, sweep in (("shipped", samplers.conditionals()),
                         ("Sigma-half-df", samplers.MUTANTS["Sigma-half-df"][1])):
        blocks = tuple(block for block in parse_conditionals(sweep, references.variables)
                       if block.names == ("Sigma",))
        started = time.perf_counter()
        table = consistency_check(_SweepRun(blocks, references, 0), 0).table
        results[label] = {"seconds": time.perf_counter() - started, "tests": len(table),
                          "min p_holm": float(table.p_holm.min()),
                          "least acceptance": float(table.reference_acceptance.min()),
                          "reference": sorted(set(table.reference))}
        print(f"{label}: {results[label]}", flush=True)
    return results


def draw_beta_block_too_wide(rng, state, data):
    """beta from N(m, 1.1 V): its exact conditional's covariance 10% too large."""
    mean, covariance = examples._beta_conditional(state, data, 0.01)
    return rng.multivariate_normal(mean, 1.1 * covariance)


def coupled_power(seeds: int) -> dict:
    """Quick consistency on the regression's beta block, correct and 10% too wide."""
    build, _ = MODELS["regression"]
    references = ModelReferences(build(), GENERIC_QUICK, 0, "regression")
    return _power_of_block(references, "beta", examples.REGRESSION, {
        "exact": examples.draw_beta_block, "covariance 10% too large": draw_beta_block_too_wide},
        seeds)


def wishart_power(seeds: int) -> dict:
    """Quick consistency on the covariance model's Sigma block, correct and 5% off in scale."""
    from tests import test_generic_resized as covariance

    references = covariance.covariance_references(GENERIC_QUICK)
    return _power_of_block(references, "Sigma", covariance.CONDITIONALS, {
        "exact": covariance.draw_Sigma, "scale 5% too large": covariance.draw_Sigma_scale_too_large},
        seeds)


def _power_of_block(references, name: str, conditionals: dict, draws: dict, seeds: int) -> dict:
    """The consistency check alone (both stages) at seeds 0..seeds-1 with `conditionals`, block
    `name` drawn by each of `draws` in turn: the seeds at which it fails, and at which a second
    stage ran."""
    from hiercheck.validation.generic import _SweepRun
    from hiercheck.validation.result import ALPHA

    results = {}
    for label, draw in draws.items():
        blocks = parse_conditionals(conditionals | {name: draw}, references.variables)
        failed, second_stage, smallest = [], [], []
        for seed in range(seeds):
            outcome = consistency_check(_SweepRun(blocks, references, seed), seed)
            table = outcome.table
            decided = table[table.stage == table.stage.max()]
            smallest.append(float(decided.p_holm.min()))
            failed.append(not outcome.passed)
            second_stage.append(bool(table.stage.max()))
            worst = decided.loc[decided.p_holm.idxmin()]
            print(f"{references.name} {name} {label} seed {seed}: "
                  f"{'FAILED' if failed[-1] else 'passed'}, stages {int(table.stage.max()) + 1}, "
                  f"smallest Holm-adjusted p {smallest[-1]:.3g} ({worst.block} "
                  f"{worst.coordinate} {worst.test})", flush=True)
        results[label] = {"seeds": seeds, "failed": int(np.sum(failed)),
                          "second stage": int(np.sum(second_stage)), "level": ALPHA / 2,
                          "tests": int(len(decided)), "smallest": smallest}
    return results


LOGISTIC_X = np.column_stack([np.ones(80), np.random.default_rng(5).normal(size=(80, 2))])
LOGISTIC_Y = np.random.default_rng(6).binomial(
    1, 1 / (1 + np.exp(-(LOGISTIC_X @ np.array([0.3, 1.0, -0.7])))))


def logistic_model():
    """y_i ~ Bernoulli(logit^-1(x_i beta)), beta ~ N(0, 2^2 I): no conjugate conditional."""
    import pymc as pm

    with pm.Model() as model:
        beta = pm.Normal("beta", 0.0, 2.0, shape=3)
        pm.Bernoulli("y", logit_p=pm.math.dot(LOGISTIC_X, beta), observed=LOGISTIC_Y)
    return model


def draw_logistic_coefficients(rng, state, data):
    """50 random-walk Metropolis steps (SD 0.3) on beta | y: a kernel that leaves it invariant."""
    def log_density(beta):
        eta = LOGISTIC_X @ beta
        return (data["y"] * eta - np.logaddexp(0.0, eta)).sum() - (beta**2).sum() / 8

    beta = np.array(state["beta"], dtype=float)
    current = log_density(beta)
    for _ in range(50):
        proposal = beta + 0.3 * rng.standard_normal(3)
        candidate = log_density(proposal)
        if np.log(rng.uniform()) < candidate - current:
            beta, current = proposal, candidate
    return beta


def certification_false_alarms(seeds: int) -> dict:
    """The logistic regression's consistency at each seed: its status and the smallest
    certification p-value of its reference chains."""
    references = ModelReferences(logistic_model(), GENERIC_QUICK, 0, "logistic regression")
    statuses, smallest = [], []
    for seed in range(seeds):
        [outcome] = check_gibbs(references.model, {"beta": draw_logistic_coefficients},
                                references=references, seed=seed,
                                checks=("consistency",)).outcomes
        statuses.append(outcome.status)
        smallest.append(float(outcome.table.reference_certification.min()))
        print(f"logistic consistency seed {seed}: {outcome.status}, smallest certification p "
              f"{smallest[-1]:.3g}", flush=True)
    return {"seeds": seeds, "not passed": int(sum(s != "passed" for s in statuses)),
            "statuses": statuses, "smallest certification p": smallest}


def blanket() -> dict:
    """Seconds per conjugate fit of each cheese block, blanket against whole model."""
    from hiercheck.validation import conjugate
    from hiercheck.validation.builtin_models import get_builtin

    builtin = get_builtin("cheese")
    model = builtin.build_model(builtin.load())
    found = conjugate.conjugate_conditionals(model)
    density = conjugate._density_of(model)
    state = conjugate._recognition_states(density, 0)[0]
    batch = {name: np.repeat(np.asarray(value)[None], 50, axis=0) for name, value in state.items()}
    results = {}
    for key, conditional in found.items():
        names = conditional.names
        for label, states in (("one state", state), ("50 states", batch)):
            for way, evaluator in (("blanket", density.blanket_evaluator(names)),
                                   ("whole model", density.whole)):
                at = conjugate._block_at(density, names, states, None, evaluator)[0]
                conditional._rule.fit(at)  # compiled, and warm
                seconds = []
                for _ in range(5):
                    started = time.perf_counter()
                    conditional._rule.fit(at)
                    seconds.append(time.perf_counter() - started)
                results[f"{key}, {label}, {way}"] = min(seconds)
                print(f"cheese {key}, {label}, {way}: {min(seconds) * 1e3:.3g} ms", flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timing", action="store_true")
    parser.add_argument("--false-alarms", type=int, default=0, metavar="SEEDS")
    parser.add_argument("--null", type=int, default=0, metavar="PAIRS")
    parser.add_argument("--geweke-false-alarms", type=int, default=0, metavar="SEEDS")
    parser.add_argument("--consistency-false-alarms", type=int, default=0, metavar="SEEDS")
    parser.add_argument("--geweke-levels", type=float, nargs="+", default=GEWEKE_LEVELS)
    parser.add_argument("--geweke-tail-power", type=int, default=0, metavar="SEEDS")
    parser.add_argument("--verdict-false-alarms", type=int, default=0, metavar="SEEDS")
    parser.add_argument("--evaluation", type=int, default=0, metavar="POINTS")
    parser.add_argument("--cheese-sigma", action="store_true")
    parser.add_argument("--coupled-power", type=int, default=0, metavar="SEEDS")
    parser.add_argument("--wishart-power", type=int, default=0, metavar="SEEDS")
    parser.add_argument("--certification-false-alarms", type=int, default=0, metavar="SEEDS")
    parser.add_argument("--blanket", action="store_true")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    measured = {}
    if args.cheese_sigma:
        measured["cheese sigma"] = cheese_sigma()
    if args.evaluation:
        measured["evaluation"] = evaluation(args.evaluation)
    if args.null:
        measured["null"] = null_experiment(args.null)
    if args.timing:
        measured["timing"] = timing()
    if args.false_alarms:
        measured["false alarms"] = false_alarms(args.false_alarms)
    if args.geweke_false_alarms:
        measured["geweke false alarms"] = geweke_false_alarms(args.geweke_false_alarms,
                                                              tuple(args.geweke_levels))
    if args.consistency_false_alarms:
        measured["consistency false alarms"] = consistency_false_alarms(
            args.consistency_false_alarms)
    if args.geweke_tail_power:
        measured["geweke tail power"] = geweke_tail_power(args.geweke_tail_power)
    if args.verdict_false_alarms:
        measured["verdict false alarms"] = verdict_false_alarms(args.verdict_false_alarms)
    if args.coupled_power:
        measured["coupled power"] = coupled_power(args.coupled_power)
    if args.wishart_power:
        measured["wishart power"] = wishart_power(args.wishart_power)
    if args.certification_false_alarms:
        measured["certification false alarms"] = certification_false_alarms(
            args.certification_false_alarms)
    if args.blanket:
        measured["blanket"] = blanket()
    if args.json:
        args.json.write_text(json.dumps(measured, indent=1))


if __name__ == "__main__":
    main()
