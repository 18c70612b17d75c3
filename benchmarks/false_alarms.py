"""False-alarm rates of every check of the suite on the correct derivation, and the detection
matrix (which check catches which mutant), in the settings `hiercheck validate` uses.

    python benchmarks/false_alarms.py                       # 20 seeds on hsb, quick settings
    python benchmarks/false_alarms.py --seeds 5 --matrix    # and the detection matrix (seed 0)
    python benchmarks/false_alarms.py --seeds 100 --jobs 2  # two seeds at a time
    python benchmarks/false_alarms.py --full --checks consistency --seeds 20   # full settings
    python benchmarks/false_alarms.py --json false_alarms.json
    python benchmarks/false_alarms.py --tabulate false_alarms.json   # the table again, no run
    python benchmarks/false_alarms.py --kernel metropolis-omega \
        --checks consistency "consistency (small)" --seeds 100      # a Markov kernel instead
    python benchmarks/false_alarms.py --scheme blocked --checks geweke sbc --seeds 100
    python benchmarks/false_alarms.py --nuts-sbc --seeds 10 --json nuts_sbc.json
                                 # NUTS SBC alone, as `hiercheck validate --full` runs it

For each seed s, `hiercheck.validation.check_sampler(seed=s)` runs all the checks on the package's own
derivation (or, with `--kernel NAME`, on the package's derivation with one conditional replaced
by a correct Markov kernel of `hiercheck.validation.kernels.KERNELS`; `--checks` runs some checks
only); a false alarm is a check failing it. Every statistical check is built to hold its
family-wise false-alarm rate at its alpha (the suite's ALPHA); the table also counts the runs
whose p-value fell at or below 0.01, the level of each check used on its own; an agreement check
that says "cannot verify" (the mixing gate) is an alarm at every level, and counted apart. The
deterministic checks (the marginal and restricted likelihoods, EB against statsmodels) have no
level: they fail or they do not. With `--nuts-sbc`, each seed runs `hiercheck.validation.suite.nuts_sbc_check(s)`
instead (SBC of NUTS, the reference, on the small design: 200 replications, every `--thin`-th of
`--thin` x 100 draws ranked); every alarm is then a false one, and the run's NUTS is compiled once.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
import warnings

import numpy as np
import pandas as pd

warnings.simplefilter("ignore")  # NUTS diagnostics and library notices: not what is measured

from hiercheck.models import load_dataset  # noqa: E402
from hiercheck.samplers.gibbs import SCHEMES  # noqa: E402
from hiercheck.validation.engines import NUTS_SBC_THIN  # noqa: E402
from hiercheck.validation.forked import forked_map, in_order  # noqa: E402
from hiercheck.validation.kernels import KERNELS  # noqa: E402
from hiercheck.validation.result import ALPHA, matrix_markdown  # noqa: E402
from hiercheck.validation.suite import (  # noqa: E402
    CHECKS, check_sampler, detection_matrix, nuts_sbc_check)


P_VALUE_CHECKS = ("consistency", "consistency (small)", "agreement vs exact", "agreement vs nuts",
                  "geweke", "sbc", "sbc (nuts)")
LEVELS = (0.01, ALPHA)


def false_alarms(data, seeds: int, kernel: str | None = None, checks=CHECKS,
                 scheme: str = "textbook", jobs: int = 1, quick: bool = True) -> dict:
    """Every check's value and verdict at each seed, on the package's derivation or with the
    example kernel `kernel` in it, at the quick or (not `quick`) the full settings; the seeds
    run in `jobs` forked processes (the same numbers whatever `jobs`)."""
    conditionals = KERNELS[kernel] if kernel else None

    def run(seed):
        verdict = check_sampler(conditionals, data=data, seed=seed, checks=checks, scheme=scheme,
                                quick=quick)
        return [(outcome.check, {"seed": seed, "statistic": outcome.statistic,
                                 "value": outcome.value, "passed": outcome.passed})
                for outcome in verdict.outcomes]

    outcomes = {}
    started = time.perf_counter()
    finished = []
    for seed, rows in forked_map(run, seeds, jobs):
        passed = all(row["passed"] for _, row in rows)
        print(f"seed {seed}: {'passed' if passed else 'FAILED'}", flush=True)
        finished.append((seed, rows))
    for rows in in_order(finished):
        for check, row in rows:
            outcomes.setdefault(check, []).append(row)
    return {"alpha": ALPHA, "seeds": seeds, "data": data.name, "kernel": kernel, "scheme": scheme,
            "settings": "quick" if quick else "full",
            "runs": outcomes,
            "seconds": time.perf_counter() - started}


def nuts_sbc_false_alarms(seeds: int, replications: int, thin: int, json_path=None) -> dict:
    """NUTS SBC's smallest Holm-adjusted p-value and verdict at each seed, with how many of its
    replications were under-thinned (their run's lowest ESS below the 100 ranked draws); the
    report is rewritten after every seed, so a long run that is stopped keeps what it did."""
    report = {"alpha": ALPHA, "seeds": 0, "data": "small design (sbc.QUICK_DESIGN)",
              "replications": replications, "thin": thin, "runs": {"sbc (nuts)": []}}
    started = time.perf_counter()
    for seed in range(seeds):
        outcome = nuts_sbc_check(seed, replications=replications, thin=thin)
        result = outcome.result
        report["runs"]["sbc (nuts)"].append(
            {"seed": seed, "value": outcome.value, "passed": outcome.passed,
             "seconds": outcome.seconds, "under_thinned": result.under_thinned,
             "lowest_ess": None if result.lowest_ess is None else float(result.lowest_ess.min())})
        report["seeds"], report["seconds"] = seed + 1, time.perf_counter() - started
        print(f"seed {seed}: {'passed' if outcome.passed else 'FAILED'} (min Holm p "
              f"{outcome.value:.3g}, {outcome.seconds:.0f} s)", flush=True)
        if json_path:
            with open(json_path, "w") as file:
                json.dump(report, file, indent=1, default=float)
    return report


def tabulate(report: dict) -> pd.DataFrame:
    """Alarms per check: at each level for the p-value checks (an alarm is an adjusted p at or
    below it, or an agreement check that could not verify), failures for the deterministic ones.
    The smallest and largest values are of the p-values alone."""
    rows = []
    for check, runs in report["runs"].items():
        unverified = [run.get("statistic", "").startswith("cannot verify") for run in runs]
        values = np.array([run["value"] for run, skip in zip(runs, unverified) if not skip])
        row = {"check": check, "seeds": len(runs), "cannot verify": sum(unverified)}
        for level in LEVELS:
            alarms = int(np.sum(values <= level)) + sum(unverified) if check in P_VALUE_CHECKS \
                else sum(not run["passed"] for run in runs)
            row[f"alarms at {level:g}"] = alarms
        row["smallest value"], row["largest value"] = (values.min(), values.max()) if values.size \
            else (np.nan, np.nan)
        rows.append(row)
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--dataset", default="hsb")
    parser.add_argument("--kernel", choices=sorted(KERNELS),
                        help="replace one conditional by this example Markov kernel")
    parser.add_argument("--checks", nargs="+", choices=CHECKS, default=CHECKS, metavar="CHECK",
                        help="run only these checks")
    parser.add_argument("--scheme", choices=SCHEMES, default="textbook",
                        help="the Gibbs sweep the checks run (default textbook)")
    parser.add_argument("--full", action="store_true", help="the full settings (default quick)")
    parser.add_argument("--jobs", type=int, default=1,
                        help="seeds at once, in forked processes (default 1; the same numbers)")
    parser.add_argument("--matrix", action="store_true", help="also the detection matrix")
    parser.add_argument("--json", help="write the numbers here")
    parser.add_argument("--tabulate", metavar="JSON", help="print the table of an earlier run")
    parser.add_argument("--nuts-sbc", action="store_true",
                        help="NUTS SBC alone, at the settings of `hiercheck validate --full`")
    parser.add_argument("--reps", type=int, default=200, help="NUTS SBC replications (default 200)")
    parser.add_argument("--thin", type=int, default=NUTS_SBC_THIN,
                        help=f"NUTS SBC thinning (default {NUTS_SBC_THIN}; 1 is the old unthinned run)")
    args = parser.parse_args()

    if args.tabulate:
        with open(args.tabulate) as file:
            report = json.load(file)
    elif args.nuts_sbc:
        report = nuts_sbc_false_alarms(args.seeds, args.reps, args.thin, args.json)
    else:
        report = false_alarms(load_dataset(args.dataset), args.seeds, args.kernel, args.checks,
                              args.scheme, args.jobs, quick=not args.full)
    subject = f"kernel {report['kernel']}" if report.get("kernel") else "the correct derivation"
    print(f"\nfalse alarms of {subject} on {report['data']}, {report['seeds']} seeds:")
    print(tabulate(report).to_string(index=False, float_format=lambda x: f"{x:.3g}"))
    if args.tabulate:
        return
    if args.matrix:
        matrix = detection_matrix(data=load_dataset(args.dataset))
        report["detection_matrix"] = matrix.to_dict(orient="records")
        print("\ndetection matrix, seed 0:")
        print(matrix_markdown(matrix, CHECKS))
    report["machine"] = {"python": platform.python_version(), "numpy": np.__version__,
                         "processor": platform.processor(), "date": time.strftime("%Y-%m-%d")}
    if args.json:
        with open(args.json, "w") as file:
            json.dump(report, file, indent=1, default=float)
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
