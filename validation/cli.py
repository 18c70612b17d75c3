"""The `hiercheck` command.

Every command takes the same data options (`--dataset NAME`, or `--data CSV --group COL --value COL`)
and the same prior option (`--prior a=..,b=..`, over the weakly informative priors scaled to the
data). Bad input ends the run with one line on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

__all__ = ["build_parser", "main"]

import argparse
import contextlib
import logging
import os
import sys
import warnings
import time
import traceback
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from hiercheck.errors import DataError, HiercheckError, SettingsError, require_integer
from hiercheck.models import DATASETS, DEFAULT_DATASET, GroupedData, Priors, load_dataset

from .builtin_models import BUILTIN_MODELS, models_with_engine
from .engines import (ENGINES, estimates_table, get_engine, posterior_mean_kappa, sbc_engine,
                      sbc_thin)

if TYPE_CHECKING:
    from hiercheck.samplers.empirical_bayes import EBFit

USAGE_ERROR = 2
INTERNAL_ERROR = 1
# A verdict's exit code: 0 passed, 1 a check failed, 3 nothing failed but something could not be
# checked (2 is bad input)
VERDICT_EXIT_CODES = {"passed": 0, "failed": 1, "incomplete": 3}


def main(argv: list[str] | None = None) -> int:
    """Run the `hiercheck` command: parse the arguments, run the command they name.

    Bad input (any `HiercheckError`) ends the run with one line on stderr and exit code 2; any
    other exception is a bug of the package's, reported in one line (the traceback with
    `--debug`) with exit code 1.

    Parameters
    ----------
    argv : list of str, optional
        The arguments after the program's name (default: `sys.argv[1:]`).

    Returns
    -------
    int
        The exit code: 0 done (and, for validate and sbc, passed), 1 a check failed or an
        internal error, 2 bad input or usage, 3 a verdict incomplete (nothing failed, but
        something could not be checked), 130 interrupted.

    Examples
    --------
    From a shell:

    .. code-block:: console

        $ hiercheck describe --dataset rail
        $ hiercheck fit --engine eb --data scores.csv --group school --value score
        $ hiercheck validate --dataset hsb --prior "a=2,b=0.5" --out results

    From Python, the same with the arguments as a list:

    >>> from hiercheck.validation.cli import main
    >>> main(["describe", "--dataset", "rail", "--out", "out"])  # doctest: +SKIP
    0
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    quiet_libraries()
    try:
        return args.run(args)
    except HiercheckError as error:  # every input problem the package detects
        print(f"hiercheck: error: {error}", file=sys.stderr)
        return USAGE_ERROR
    except KeyboardInterrupt:
        print("hiercheck: interrupted", file=sys.stderr)
        return 130
    except Exception as error:  # a bug, not bad input: one line, the traceback on request
        if args.debug:
            traceback.print_exc()
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else ""
        hint = "" if args.debug else " (run with --debug for the traceback)"
        print(f"hiercheck: internal error: {type(error).__name__}: {first_line}{hint}",
              file=sys.stderr)
        return INTERNAL_ERROR


def quiet_libraries() -> None:
    """Warnings as one line each; PyMC's progress chatter and PyTensor's advice about BLAS
    (which this model, all elementwise, does not use) off; figures drawn for files, not a screen
    (the library leaves the backend to its user, a notebook say).
    """
    import matplotlib

    matplotlib.use("Agg")
    # PyMC turns its INFO chatter on at import only when the root logger has no handler yet
    logging.basicConfig(level=logging.WARNING, format="hiercheck: %(name)s: %(message)s")
    warnings.filterwarnings("ignore", message="PyTensor could not link to a BLAS")
    warnings.showwarning = lambda message, category, *_, **__: print(
        f"hiercheck: warning: {message}", file=sys.stderr)


class OneLineParser(argparse.ArgumentParser):
    """Reports a usage error as one line (the full usage is one --help away)."""

    def error(self, message):
        self.exit(USAGE_ERROR, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def usable_cores() -> int:
    """The cores this process may run on (its affinity where the system reports it)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def build_parser() -> argparse.ArgumentParser:
    """The command line parser of every `hiercheck` command (describe, fit, validate, sbc,
    report, mutants, power) and its options.

    Returns
    -------
    argparse.ArgumentParser
        Its parsed arguments carry `run`, the function that runs the command named; a usage
        error exits with code 2 and one line.
    """
    parser = OneLineParser(
        prog="hiercheck",
        description="Fit the normal hierarchical model three independent ways and check that "
                    "they agree.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                     parser_class=OneLineParser)

    describe = commands.add_parser("describe", help="school-level summary and the means-vs-size plot")
    add_common_options(describe)
    describe.set_defaults(run=run_describe)

    fit = commands.add_parser("fit", help="fit with one engine or all, write the posterior(s)")
    add_common_options(fit)
    fit.add_argument("--engine", choices=[*ENGINES, "all"],
                     help="which engine; 'all' runs gibbs, eb, exact and nuts (default: all; "
                          "with --model: gibbs, the model's own Gibbs sampler, or nuts, PyMC's "
                          "NUTS on its PyMC model)")
    add_sampling_options(fit)
    fit.add_argument("--model", choices=list(BUILTIN_MODELS), metavar="NAME",
                     help="fit a built-in model on its own data and priors instead "
                          f"({', '.join(BUILTIN_MODELS)}); prints the summary of its parameters "
                          f"of at most {SUMMARY_SIZE} values (the scalars, the cheese model's m)")
    fit.set_defaults(run=run_fit)

    validate = commands.add_parser(
        "validate", help="every check of the hand-derived inference against the other engines")
    add_common_options(validate)
    depth = validate.add_mutually_exclusive_group()
    depth.add_argument("--quick", dest="quick", action="store_true", default=True,
                       help="the settings that finish in about a minute (default)")
    depth.add_argument("--full", dest="quick", action="store_false",
                       help="several times the power, and SBC of NUTS as well")
    validate.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    validate.add_argument("--fail-fast", action="store_true",
                          help="cheapest, most telling checks first; stop at the first failure")
    validate.add_argument("--mutant", metavar="NAME",
                          help="validate a wrong derivation of the catalogue instead of the "
                               "package's own (see `hiercheck mutants`; with --model, one of "
                               "the model's, `hiercheck mutants --model NAME`), to watch the "
                               "checks catch it")
    validate.add_argument("--scheme", default="textbook", choices=["textbook", "blocked"],
                          help="the Gibbs sweep every Gibbs-based check runs: the four complete "
                               "conditionals, or the blocked sweep with lam and mu drawn with "
                               "theta integrated out (default: textbook)")
    validate.add_argument("--model", choices=list(BUILTIN_MODELS), metavar="NAME",
                          help="check a built-in model's hand-derived sweep against its PyMC model "
                               f"with check_gibbs instead ({', '.join(BUILTIN_MODELS)})")
    validate.add_argument("--jobs", type=int, default=usable_cores(),
                          help="the checks in this many processes; the verdict does not depend "
                               "on it (default: the usable cores)")
    validate.set_defaults(run=run_validate)

    sbc = commands.add_parser("sbc", help="simulation-based calibration of one engine")
    add_common_options(sbc)
    sbc.add_argument("--engine", default="gibbs", choices=list(SBC_ENGINES),
                     help="which engine (default: gibbs)")
    sbc.add_argument("--reps", type=int, default=500, help="replications (default: 500)")
    sbc.add_argument("--draws", type=int, default=100,
                     help="posterior draws ranked per replication (default: 100)")
    sbc.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    workers = sbc.add_mutually_exclusive_group()
    workers.add_argument("--jobs", type=int, default=1,
                         help="replications in parallel in local processes (default: 1)")
    workers.add_argument("--scheduler", metavar="ADDRESS",
                         help="a dask.distributed scheduler to send the replications to")
    sbc.set_defaults(run=run_sbc)

    cache = commands.add_parser(
        "cache", help="the cache of reference posteriors: where it is, how big, or clear it")
    cache.add_argument("action", choices=("info", "clear"), help="info: folder and size; "
                       "clear: delete every entry")
    cache.add_argument("--debug", action="store_true", help="show tracebacks of internal errors")
    cache.set_defaults(run=run_cache)

    ppc = commands.add_parser(
        "ppc", help="posterior predictive checks of the model's assumptions (a common "
                    "within-school variance; independence within a group)")
    add_common_options(ppc)
    ppc.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    ppc.add_argument("--model", choices=list(PPC_MODELS), metavar="NAME",
                     help="a built-in model with its own data, fitted with its own Gibbs "
                          "sampler; its measurements have dates, so independence is checked "
                          f"too ({', '.join(PPC_MODELS)})")
    ppc.set_defaults(run=run_ppc)

    report = commands.add_parser(
        "report", help="a self-contained HTML report: fits, plots and the validation verdicts")
    add_common_options(report)
    report.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    report.add_argument("--model", choices=list(models_with_engine()), metavar="NAME",
                        help="a built-in model with its own data and Gibbs engine: its sampler "
                             "beside NUTS and check_gibbs's verdict "
                             f"({', '.join(models_with_engine())})")
    report.add_argument("--mutant", metavar="NAME",
                        help="with --model: check one of the model's mutants (`hiercheck "
                             "mutants --model NAME`) in place of its sweep; the page shows "
                             "where the slip is")
    report.set_defaults(run=run_report)

    mutants = commands.add_parser(
        "mutants", help="every check on every wrong derivation of the catalogue: which catches which")
    add_common_options(mutants)
    mutants.add_argument("--write", type=Path, nargs="*", default=[], metavar="FILE",
                         help="also replace the detection-matrix block of these Markdown files")
    mutants.add_argument("--model", choices=list(BUILTIN_MODELS), metavar="NAME",
                         help="the mutants of a built-in model, through check_gibbs "
                              f"({', '.join(BUILTIN_MODELS)})")
    mutants.set_defaults(run=run_mutants)

    power = commands.add_parser(
        "power", help="how small an error in each full conditional the checks catch")
    add_common_options(power)
    power.add_argument("--model", choices=list(BUILTIN_MODELS), metavar="NAME",
                       help="a built-in model: its own sweep through check_gibbs, each block whose "
                            "conditional is recognized as conjugate perturbed in turn (models: "
                            f"{', '.join(BUILTIN_MODELS)})")
    power.add_argument("--conditional", nargs="+", metavar="NAME",
                       help="the conditionals perturbed (default: every one the sweep draws from;"
                            f" names: {', '.join(POWER_CONDITIONALS)}; with --model, the "
                            "model's blocks, e.g. theta '(mu, beta)')")
    power.add_argument("--kind", nargs="+", default=["shift", "spread"],
                       choices=["shift", "spread", "kernel"],
                       help="shift: the draw moved by eps conditional SDs; spread: its deviation "
                            "from the conditional mean scaled by 1 + eps; kernel (omega only): "
                            "the example Metropolis kernel, its log acceptance ratio off by eps "
                            "(default: shift spread)")
    power.add_argument("--eps", nargs="+", type=float, default=[0.01, 0.03, 0.05],
                       metavar="EPS", help="the sizes of the error (default: 0.01 0.03 0.05)")
    power.add_argument("--seeds", type=int, default=4,
                       help="suite runs per perturbation, at seeds 0, 1, ... (default: 4)")
    power_depth = power.add_mutually_exclusive_group()
    power_depth.add_argument("--quick", dest="quick", action="store_true", default=True,
                             help="the suite's quick settings (default)")
    power_depth.add_argument("--full", dest="quick", action="store_false",
                             help="the suite's full settings")
    power.add_argument("--scheme", default="textbook", choices=["textbook", "blocked"],
                       help="the Gibbs sweep the checks run (default: textbook)")
    power.add_argument("--with-nuts", action="store_true",
                       help="add the agreement check against NUTS (needs PyMC's NUTS posterior)")
    power.add_argument("--jobs", type=int, default=1,
                       help="runs in this many forked processes; the results do not depend on "
                            "it (default: 1)")
    power.set_defaults(run=run_power)
    return parser


def add_common_options(parser: argparse.ArgumentParser) -> None:
    source = parser.add_argument_group("data (a built-in data set, or a CSV file)")
    source.add_argument("--dataset", choices=list(DATASETS), default=None,
                        help=f"built-in data set (default: {DEFAULT_DATASET})")
    source.add_argument("--data", type=Path, help="CSV file with a header row")
    source.add_argument("--group", help="the CSV's school column")
    source.add_argument("--value", help="the CSV's score column")
    parser.add_argument("--prior", default="",
                        help="prior settings NAME=NUMBER,... over the weakly informative defaults "
                             "(names: a b c d nu phi)")
    parser.add_argument("--out", type=Path, default=Path("hiercheck-out"),
                        help="folder for the files written (default: hiercheck-out)")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of internal errors")


def add_sampling_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--draws", type=int, default=1000, help="draws kept per chain (default: 1000)")
    parser.add_argument("--chains", type=int, default=4, help="chains (default: 4)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")


def load_data(args) -> GroupedData:
    """The data the options name; a CSV needs both of its column names."""
    if args.data is None:
        if args.group or args.value:
            raise SettingsError("--group and --value go with --data CSV")
        return load_dataset(args.dataset or DEFAULT_DATASET)
    if args.dataset:
        raise SettingsError("give either --dataset or --data, not both")
    missing = [flag for flag, given in (("--group", args.group), ("--value", args.value)) if not given]
    if missing:
        raise SettingsError(f"--data needs {' and '.join(missing)} (the CSV's column names)")
    return GroupedData.from_csv(args.data, group=args.group, value=args.value)


def load_priors(args, data: GroupedData) -> Priors:
    return Priors.from_string(args.prior, base=Priors.weakly_informative(data))


def output_folder(args) -> Path:
    args.out.mkdir(parents=True, exist_ok=True)
    return args.out


# -- describe -------------------------------------------------------------------------------------

def run_describe(args) -> int:
    from .plots import plot_school_means, save

    data = load_data(args)
    print(describe_text(data))
    path = output_folder(args) / "school_means.png"
    save(plot_school_means(data), path)
    print(f"\nwrote {path}")
    return 0


def describe_text(data: GroupedData, extremes: int = 3) -> str:
    table = data.school_table()
    pooled_sd = np.sqrt(data.stats.pooled_variance)
    lines = [
        f"{data.name}: {data.N} students in {data.m} schools",
        f"school sizes: min {data.n.min()}, median {np.median(data.n):g}, max {data.n.max()}"
        f" ({int((data.n == 1).sum())} with one student)",
        f"grand mean {data.values.mean():.6g}; school means from {data.ybar.min():.6g} "
        f"to {data.ybar.max():.6g} (SD {data.ybar.std(ddof=1):.4g}); pooled within-school SD "
        f"{pooled_sd:.4g}",
        "",
        "schools with the most extreme means:",
    ]
    ordered = table.sort_values("ybar")
    each = min(extremes, data.m // 2)  # so that no school is listed as both lowest and highest
    extreme = pd.concat([ordered.head(each), ordered.tail(each)])
    extreme = extreme.assign(rank=[f"lowest {k + 1}" for k in range(each)]
                             + [f"highest {each - k}" for k in range(each)])
    lines.append(extreme[["rank", "school", "n", "ybar", "sd"]].to_string(index=False))
    small = int((table.n <= np.median(data.n)).sum())
    among = int((extreme.n <= np.median(data.n)).sum())
    lines.append(f"\n{among} of these {2 * each} are at or below the median size "
                 f"({small} of {data.m} schools are).")
    return "\n".join(lines)


# -- fit ------------------------------------------------------------------------------------------

FIT_ALL = ("gibbs", "eb", "exact", "nuts")
MODEL_ENGINES = ("gibbs", "nuts")  # of `fit --model`: the model's own sampler, or PyMC's NUTS
# `fit --model` summarizes the variables of at most this many values a draw: the scalars and the
# cheese model's 4 mean coefficients m, not the 20 subjects' theta_i nor a 4 x 4 Sigma
SUMMARY_SIZE = 4


def run_fit(args) -> int:
    from hiercheck.models.engine import az, check_run_size

    if args.model:
        return run_model_fit(args)
    check_run_size(args.draws, args.chains)
    data = load_data(args)
    priors = load_priors(args, data)
    names = FIT_ALL if args.engine in (None, "all") else (args.engine,)
    folder = output_folder(args)
    results = {name: fit_and_write(name, get_engine(name), folder, data, priors,
                                   draws=args.draws, chains=args.chains, seed=args.seed)
               for name in names}
    if len(names) == 1:
        summary = az.summary(results[names[0]], var_names=["mu", "sigma", "tau", "lam", "omega"])
        print(summary.to_string())
        print()
    print(f"{data.name}: posterior mean (SD), and for eb the estimate (standard error), "
          f"under priors {priors}")
    print(estimates_table(results).to_string())
    if "eb" in results:
        eb_fit = eb_fit_of(data, results["eb"])
        print(f"\nempirical Bayes ({eb_fit.criterion}): 95% profile-likelihood intervals")
        print(eb_fit.profile_ci().to_string(float_format=lambda x: f"{x:.5g}"))
        print(f"wrote {write_shrinkage_plot(eb_fit, results, folder)}", file=sys.stderr)
    return 0


def fit_and_write(name: str, engine, folder: Path, *inputs, **settings):
    """engine(*inputs, **settings), its result written to folder/posterior_NAME.nc; the time it
    took on stderr.
    """
    started = time.perf_counter()
    print(f"fitting {name} ...", file=sys.stderr, flush=True)
    result = engine(*inputs, **settings)
    path = folder / f"posterior_{name}.nc"
    result.to_netcdf(path)
    print(f"  {name}: {time.perf_counter() - started:.1f} s, wrote {path}", file=sys.stderr)
    return result


def run_model_fit(args) -> int:
    """`fit --model NAME`: a built-in model on its own data and priors, with its Gibbs engine or
    PyMC's NUTS on its PyMC model; the posterior written, the summary of its small variables
    (`SUMMARY_SIZE`) printed.
    """
    from hiercheck.models.engine import az, check_run_size

    from .builtin_models import get_builtin

    refuse_data_options(args, ("--group", args.group), ("--value", args.value))
    name = args.engine or "gibbs"
    if name not in MODEL_ENGINES:
        raise SettingsError(f"with --model, --engine is gibbs (the model's own Gibbs sampler) "
                            f"or nuts (PyMC's NUTS on its PyMC model), not {name}")
    check_run_size(args.draws, args.chains)
    builtin = get_builtin(args.model)
    engine = builtin.sample if name == "gibbs" else builtin.sample_nuts
    if engine is None:
        raise SettingsError(f"the model {args.model} has no Gibbs engine (its BuiltinModel has "
                            "no sample); fit it with --engine nuts")
    data = builtin.load()
    result = fit_and_write(name, engine, output_folder(args), data, draws=args.draws,
                           chains=args.chains, seed=args.seed)
    posterior = result.posterior
    small = [variable for variable, values in posterior.data_vars.items()
             if values.isel(chain=0, draw=0).size <= SUMMARY_SIZE]
    print(f"the built-in model {args.model} on {data!r}: {name}, {args.chains} chains of "
          f"{args.draws} draws")
    print(az.summary(result, var_names=small or None).to_string())
    return 0


def eb_fit_of(data: GroupedData, result) -> EBFit:
    """The empirical Bayes fit behind an `eb` engine result, refitted with its recorded settings
    (a fit takes milliseconds).
    """
    from hiercheck.models.engine import engine_settings
    from hiercheck.samplers import empirical_bayes

    settings = engine_settings(result)
    return empirical_bayes.fit(data, method=settings["method"], reml=settings["reml"])


def write_shrinkage_plot(eb_fit: EBFit, results: dict, folder: Path) -> Path:
    """shrinkage.png: kappa_i against n_i for empirical Bayes and every sampled posterior."""
    from hiercheck.samplers import empirical_bayes

    from .plots import save

    path = folder / "shrinkage.png"
    save(empirical_bayes.plot_shrinkage(eb_fit, posterior_kappa=posterior_mean_kappa(results)),
         path)
    return path


# -- validate -------------------------------------------------------------------------------------

def run_validate(args) -> int:
    from .suite import check_sampler, nuts_sbc_check

    if args.model:
        return run_model_validation(args)
    require_integer("--jobs", args.jobs)
    data = load_data(args)
    priors = load_priors(args, data)
    folder = output_folder(args)
    derivation, scheme = {}, args.scheme
    if args.mutant:
        from .mutants import get_mutant

        mutant = get_mutant(args.mutant)
        derivation = {"conditionals": mutant.conditionals,
                      "log_marginal_likelihood": mutant.log_marginal_likelihood,
                      "restricted_log_likelihood": mutant.restricted_log_likelihood}
        scheme = mutant.scheme  # a slip in a collapsed conditional shows in the blocked sweep
    print(f"validating {'the mutant ' + args.mutant if args.mutant else 'the derivation'} on "
          f"{data.name} ({data.N} students in {data.m} schools), "
          f"{'quick' if args.quick else 'full'} settings, {scheme} sweep", file=sys.stderr)
    verdict = check_sampler(**derivation, data=data, priors=priors, quick=args.quick,
                            seed=args.seed, progress=True, fail_fast=args.fail_fast,
                            scheme=scheme, jobs=args.jobs, out=folder)
    if not args.quick and not (args.fail_fast and not verdict.passed):
        verdict = verdict.with_outcome(nuts_sbc_check(args.seed, folder / "sbc-nuts"))
    written = verdict.save(folder) + write_posterior_densities(verdict, folder)
    print(verdict)
    if args.fail_fast and verdict.status == "failed":
        failed = verdict.outcomes[-1]
        print(f"\nstopped at the first failure, {failed.check}; its table:")
        print(failed.table.to_string(index=False, float_format=lambda x: f"{x:.4g}"))
    print(f"wrote {len(written)} files to {folder}", file=sys.stderr)
    return VERDICT_EXIT_CODES[verdict.status]


def refuse_data_options(args, *others: tuple[str, object]) -> None:
    """With --model, options that choose data or priors (and `others`, (flag, value) pairs)
    would be ignored: a SettingsError naming the first one given.
    """
    options = (("--dataset", args.dataset), ("--data", args.data), ("--prior", args.prior),
               *others)
    given = [flag for flag, value in options if value]
    if given:
        raise SettingsError(f"--model brings its own data and priors; leave out {given[0]}")


def run_model_validation(args) -> int:
    """`validate --model NAME`: check_gibbs on a built-in model with its own data and sweep."""
    from .builtin_models import get_builtin, sweep_to_check
    from .generic import check_gibbs

    require_integer("--jobs", args.jobs)
    refuse_data_options(args)
    if args.scheme != "textbook":
        raise SettingsError("--scheme is an option of the flagship's checks; with --model, "
                            "check_gibbs runs the model's own sweep through every check")
    builtin = get_builtin(args.model)
    conditionals = sweep_to_check(args.model, args.mutant)
    folder = output_folder(args)
    subject = f"the mutant {args.mutant}" if args.mutant else "the hand-derived sweep"
    print(f"validating {subject} of the built-in model {args.model} with check_gibbs, "
          f"{'quick' if args.quick else 'full'} settings", file=sys.stderr)
    verdict = check_gibbs(builtin.build_model(builtin.load()), conditionals,
                          quick=args.quick, seed=args.seed, jobs=args.jobs, out=folder,
                          progress=True, name=args.model, batched=builtin.batched,
                          fail_fast=args.fail_fast)
    written = verdict.save(folder)
    print(verdict)
    written += print_diagnosis(verdict, folder)
    print(f"wrote {len(written)} files to {folder}", file=sys.stderr)
    return VERDICT_EXIT_CODES[verdict.status]


def print_diagnosis(verdict, folder: Path) -> list[Path]:
    """After a verdict whose consistency check failed: where the slip is
    (`diagnose.explain_failure`), its worst rows printed, all of them in diagnosis.csv, and the
    worst coordinate's draws against its exact conditional in diagnosis.png (when it has one).
    """
    from .diagnose import SHOWN_COLUMNS, explain_failure
    from .plots import save

    frame, figure = explain_failure(verdict)
    if frame is None:
        return []
    written = [folder / "diagnosis.csv"]
    frame.to_csv(written[0], index=False)
    print("\nwhere the slip is (Verdict.diagnose(); every row in diagnosis.csv):")
    print(frame[SHOWN_COLUMNS].head(8).to_string(index=False))
    if figure is not None:
        save(figure, folder / "diagnosis.png")
        written.append(folder / "diagnosis.png")
    return written


def write_posterior_densities(verdict, folder: Path) -> list[Path]:
    """posteriors.png, the posterior densities of mu, sigma, tau by engine: of the reference
    posteriors the checks computed and of the sampler's draws in the agreement checks (none if
    no agreement check ran).
    """
    from .plots import save
    from .report import plot_densities

    agreement = next((o for o in verdict.outcomes if o.check.startswith("agreement")), None)
    if agreement is None:
        return []
    # the references the agreement checks computed (cached properties), none computed here
    posteriors = {name: getattr(verdict.references, name) for name in ("exact", "nuts")
                  if name in vars(verdict.references)}
    sampled = agreement.result.posterior
    posteriors[sampled.posterior.attrs["engine"]] = sampled  # gibbs or blocked
    save(plot_densities(posteriors, verdict.references.data.name), folder / "posteriors.png",
         layout=False)
    return [folder / "posteriors.png"]


# -- mutants --------------------------------------------------------------------------------------

def run_mutants(args) -> int:
    from .result import matrix_markdown, replace_matrix_block
    from .suite import CHECKS, detection_matrix

    if args.model:
        return run_model_mutants(args)
    data = load_data(args)
    for path in args.write:  # before the long run: a bad file should fail fast
        if not path.is_file():
            raise DataError(f"{path}: no such file")
        try:
            replace_matrix_block(path.read_text(), "")
        except HiercheckError as error:
            raise DataError(f"{path}: {error}") from None
    matrix = detection_matrix(data=data, progress=True)
    output_folder(args)
    matrix.to_csv(args.out / "detection_matrix.csv", index=False)
    table = matrix_markdown(matrix, CHECKS)
    print(f"which check catches which derivation on {data.name} (quick settings, seed 0):")
    print(table)
    for path in args.write:
        path.write_text(replace_matrix_block(path.read_text(), table))
        print(f"wrote the matrix into {path}", file=sys.stderr)
    return 0


def run_model_mutants(args) -> int:
    """`mutants --model NAME`: the detection matrix of a built-in model, through check_gibbs."""
    from . import builtin_models
    from .generic import GENERIC_CHECKS
    from .result import matrix_markdown

    refuse_data_options(args, ("--write", args.write))
    matrix = builtin_models.detection_matrix(args.model, progress=True)
    output_folder(args)
    matrix.to_csv(args.out / "detection_matrix.csv", index=False)
    print(f"which check catches which derivation of {args.model} (check_gibbs, quick settings, "
          "seed 0):")
    print(matrix_markdown(matrix, GENERIC_CHECKS))
    return 0


# -- power ----------------------------------------------------------------------------------------

POWER_CONDITIONALS = ("theta", "mu", "lam", "omega", "mu_collapsed", "lam_collapsed")


def run_power(args) -> int:
    """`power`: the suite (with --model, check_gibbs on the model's sweep) on each perturbed
    conditional at several seeds; the detection rates and the smallest eps caught, as CSV, JSON
    and Markdown in --out/power.
    """
    import json

    from .power import (DEFAULT_CHECKS, detection_rates, model_power_study, power_markdown,
                        power_study, smallest_detected)

    for flag in ("seeds", "jobs"):
        require_integer(f"--{flag}", getattr(args, flag))
    folder = output_folder(args) / "power"
    if args.model:
        refuse_data_options(args, ("--scheme", args.scheme != "textbook"))
        checks = ("consistency",) + (("agreement vs nuts",) if args.with_nuts else ())
        runs = model_power_study(args.model, args.conditional, args.kind, args.eps, args.seeds,
                                 quick=args.quick, checks=checks, out=folder / "runs",
                                 jobs=args.jobs, progress=True)
        subject, described = args.model, {"model": args.model}
    else:
        data = load_data(args)
        priors = load_priors(args, data)
        checks = DEFAULT_CHECKS + (("agreement vs nuts",) if args.with_nuts else ())
        runs = power_study(args.conditional, args.kind, args.eps, args.seeds, data=data,
                           priors=priors, quick=args.quick, checks=checks, scheme=args.scheme,
                           out=folder / "runs", jobs=args.jobs, progress=True)
        subject, described = data.name, {"data": data.name, "scheme": args.scheme}
    rates = detection_rates(runs)
    smallest = smallest_detected(rates)
    runs.to_csv(folder / "power_runs.csv", index=False)
    rates.to_csv(folder / "power_rates.csv", index=False)
    smallest.to_csv(folder / "power_smallest.csv", index=False)
    (folder / "power.json").write_text(json.dumps(
        {**described, "quick": args.quick, "seeds": args.seeds,
         "rates": rates.to_dict(orient="records"),
         "smallest": smallest.astype(object).where(smallest.notna(), None).to_dict(orient="records")},
        indent=1, default=float))
    table = power_markdown(rates)
    (folder / "power.md").write_text(table + "\n")
    print(f"power of the {'quick' if args.quick else 'full'} checks on {subject}, "
          f"{args.seeds} seeds per perturbation:")
    print(table)
    print(f"wrote {folder}; each run is kept in {folder / 'runs'}, so a re-run resumes",
          file=sys.stderr)
    return 0


# -- sbc ------------------------------------------------------------------------------------------

SBC_ENGINES = ("gibbs", "blocked", "nuts", "eb", "exact")
GIBBS_SCHEMES = {"gibbs": "textbook", "blocked": "blocked"}  # SBC engine -> Gibbs sweep


def run_sbc(args) -> int:
    from .plots import save
    from .sbc import run_engine_sbc, run_gibbs_sbc

    for flag in ("reps", "draws", "jobs"):
        require_integer(f"--{flag}", getattr(args, flag))
    data = load_data(args)
    priors = load_priors(args, data)
    folder = output_folder(args) / f"sbc-{args.engine}"
    print(f"SBC of {args.engine} on the design of {data.name} ({data.m} schools), "
          f"{args.reps} replications of {args.draws} draws; saved as they finish in {folder}, "
          "so a re-run resumes", file=sys.stderr)
    if args.engine in GIBBS_SCHEMES:
        result = run_gibbs_sbc(data.n, priors, replications=args.reps, draws=args.draws,
                               seed=args.seed, out=folder, progress=True,
                               scheme=GIBBS_SCHEMES[args.engine])
    else:
        with sbc_executor(args) as executor:
            result = run_engine_sbc(sbc_engine(args.engine), data, priors,
                                    replications=args.reps, draws=args.draws,
                                    thin=sbc_thin(args.engine), seed=args.seed,
                                    executor=executor, out=folder, progress=True,
                                    engine_name=args.engine)
    result.table.to_csv(folder / "uniformity.csv", index=False)
    save(result.plot(), folder / "ranks.png")
    print(result.table.to_string(index=False, float_format=lambda x: f"{x:.3g}"))
    verdict = "uniform: calibrated" if result.passed else "NOT uniform: miscalibrated"
    print(f"{args.engine} on {data.name}: ranks {verdict} (Holm-corrected, alpha "
          f"{result.alpha}); wrote {folder}")
    return 0 if result.passed else 1


def sbc_executor(args):
    """A context manager giving the executor the options ask for (None: run here)."""
    from concurrent.futures import ProcessPoolExecutor

    if args.scheduler:
        return dask_executor(args.scheduler)
    if args.jobs > 1:
        return ProcessPoolExecutor(args.jobs)
    return contextlib.nullcontext(None)


@contextlib.contextmanager
def dask_executor(address: str):
    """An Executor on the dask.distributed cluster whose scheduler is at `address`."""
    try:
        from distributed import Client
    except ImportError:
        raise SettingsError("--scheduler needs dask.distributed: pip install 'hiercheck[distributed]'") from None
    try:
        client = Client(address, timeout="20s")
    except OSError as error:
        raise SettingsError(f"cannot reach the dask scheduler at {address} ({error})") from None
    with client:
        yield client.get_executor()


# -- report ---------------------------------------------------------------------------------------

def run_cache(args) -> int:
    """`hiercheck cache info` (folder, entries, size) or `hiercheck cache clear`."""
    from hiercheck.cache import DiskCache

    cache = DiskCache()
    if args.action == "clear":
        print(f"deleted {cache.clear()} files from {cache.folder}")
    else:
        entries, size = cache.size()
        print(f"{cache.folder}: {entries} entries, {size / 2**20:.1f} MiB "
              "(HIERCHECK_CACHE moves it)")
    return 0


PPC_DRAWS = 1000  # per chain, 4 chains: the p-value's Monte Carlo SD is about 0.008 at most
PPC_MODELS = ("bloodpressure",)  # built-in models whose measurements have a time order


def run_ppc(args) -> int:
    """Fit with the Gibbs sampler, then check the assumption of a common within-group variance
    (and, for a model whose measurements have dates, independence within a subject in date
    order); exits 1 when the data contradict an assumption.
    """
    from .plots import save

    data, results = model_ppc(args) if args.model else schools_ppc(args)
    folder = output_folder(args)
    for result in results:
        path = folder / f"ppc_{result.check.replace(' ', '_')}.png"
        save(result.plot(), path)
        print(f"wrote {path}", file=sys.stderr)
    table = pd.concat([result.table for result in results], ignore_index=True)
    table.to_csv(folder / "ppc.csv", index=False)
    print(f"{data.name}: posterior predictive checks (p < {results[0].alpha} puts the assumption "
          "in doubt)")
    print(table.to_string(index=False, float_format=lambda x: f"{x:.3g}"))
    return 0 if all(result.passed for result in results) else 1


def schools_ppc(args) -> tuple[GroupedData, list]:
    """The data the options name, fitted with the flagship's Gibbs sampler; the common-variance
    check (scores of a school have no time order).
    """
    from hiercheck.samplers import gibbs

    from .ppc import check_common_variance

    data = load_data(args)
    priors = load_priors(args, data)
    posterior = gibbs.sample(data, priors, draws=PPC_DRAWS, chains=4, seed=args.seed)
    return data, [check_common_variance(posterior, data, seed=args.seed)]


def model_ppc(args) -> tuple[GroupedData, list]:
    """`ppc --model bloodpressure`: the course's data under their default priors, fitted with the
    model's Gibbs sampler; independence within a subject in date order, then a common variance.
    """
    from hiercheck.models import bloodpressure
    from hiercheck.samplers import bloodpressure as bloodpressure_sampler

    from .ppc import check_common_variance, check_independence, time_order

    refuse_data_options(args)
    measured = bloodpressure.load()
    data = measured.grouped
    posterior = bloodpressure_sampler.sample(measured, draws=PPC_DRAWS, chains=4, seed=args.seed)
    in_order = np.array_equal(time_order(data.codes, measured.dates), np.arange(data.N))
    print(f"{data.name}: {data.N} measurements of {data.m} subjects, fitted with the model's "
          "Gibbs sampler; residuals paired in date order within each subject (the file "
          f"{'is already' if in_order else 'is not'} in that order)", file=sys.stderr)
    return data, [check_independence(posterior, data, dates=measured.dates, seed=args.seed),
                  check_common_variance(posterior, data, seed=args.seed)]


def run_report(args) -> int:
    """Writes OUT/index.html (of the data's schools, or with --model of a built-in model); exits
    0 once it is written, whatever the verdict it shows.
    """
    from .report import write_model_report, write_report

    if args.model:
        refuse_data_options(args)
        print(f"report on the built-in model {args.model} (check_gibbs, quick settings)",
              file=sys.stderr)
        path, verdict = write_model_report(args.model, output_folder(args), seed=args.seed,
                                           progress=True, mutant=args.mutant)
        print(f"validation {verdict.status.upper()}; wrote {path}")
        return 0
    if args.mutant:
        raise SettingsError("--mutant is an option of --model: the report of the flagship's "
                            "data checks the package's own derivation")
    data = load_data(args)
    priors = load_priors(args, data)
    print(f"report on {data.name} ({data.N} students in {data.m} schools)", file=sys.stderr)
    path, verdict = write_report(data, priors, output_folder(args), seed=args.seed,
                                 progress=True)
    print(f"validation {verdict.status.upper()}; wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
