"""What every check shares: its result (`CheckTable`, a row per test), its row of a verdict
(`CheckOutcome`), the verdict itself (`Verdict`), the level it is held to (`ALPHA`), its random
stream (`integer_seeds`, `seed_streams`), its timing (`timed`), the decision in two stages of a
test whose first stage is in doubt (`in_stages`), the loop that runs a harness's checks one at a
time or side by side (`run_tasks`), and the detection matrix written as Markdown
(`matrix_markdown`, `replace_matrix_block`). Both harnesses, `check_sampler` and
`check_gibbs`, and every check build on this module; it imports no check.
"""

from __future__ import annotations

__all__ = [
    "ALPHA", "AMBIGUOUS_P", "LATER_STAGE_DRAWS", "MATRIX_END", "MATRIX_START", "MIN_HOLM_P", "CheckOutcome", "CheckTable", "Figured",
    "Verdict", "cannot_verify", "in_stages", "run_tasks", "integer_seeds", "matrix_markdown", "not_applicable",
    "p_value_summary", "replace_matrix_block", "seed_streams", "timed",
]

import html
import json
import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np
import pandas as pd

from hiercheck._typing import SeedLike
from hiercheck.errors import DataError

from .forked import forked_map, in_order
from .statistics import min_holm_p

if TYPE_CHECKING:
    from matplotlib.figure import Figure

# Per statistical check. Six of them at 0.001 make a correct derivation fail `hiercheck validate`
# less than 0.6% of the time, and keep a check's expected false alarms over 20 seeds at 0.02.
# The mutants are caught at p-values far below it (docs/validation.md).
ALPHA = 0.001

# A check in stages: a first stage whose smallest Holm-adjusted p-value lies in (alpha/2,
# AMBIGUOUS_P] decides nothing and a second stage of LATER_STAGE_DRAWS times as many draws does.
# Four times the draws double an error's z: one whose first stage gave p = 0.25 (z about 2.9 for
# the smallest of 63 raw p-values) gives z about 5.8, p about 5e-7 after Holm, in the second. A
# correct derivation's first stage fell at or below 0.25 in 13 to 22 runs in 100
# (docs/validation.md).
AMBIGUOUS_P = 0.25
LATER_STAGE_DRAWS = 4


@dataclass(frozen=True)
class CheckTable:
    """The result of a check: a row per test, each passed or not.

    Attributes
    ----------
    table : pandas.DataFrame
        A row per test, with a boolean column `agree`, true in each row whose test passed.
    """

    table: pd.DataFrame

    @property
    def passed(self) -> bool:
        """Whether every test passed."""
        return bool(self.table.agree.all())


MIN_HOLM_P = "min Holm-adjusted p"  # the statistic of every check of p-values


@runtime_checkable
class Figured(Protocol):
    """A check's result that draws a figure of itself (`sbc.SBCResult`: its rank plots)."""

    def summary_figure(self, table_name: str) -> object:
        """The figure of the result.

        Parameters
        ----------
        table_name : str
            The file of the check's table, named in the title.

        Returns
        -------
        object
            What a plot function drew (Axes, an array of them, or a Figure): `plots.save`
            writes it.
        """


@dataclass(frozen=True)
class CheckOutcome:
    """One row of a verdict; `table` is the check's own table, `result` its own result.

    Attributes
    ----------
    check : str
        The check's name.
    statistic : str
        What the check reports, e.g. a p-value or a largest |z|.
    value : float
        The statistic's value.
    threshold : float
        The value the statistic is held to.
    passed : bool
        Whether the check passed: it ran on everything it meant to and saw no difference.
    seconds : float
        How long the check took.
    table : pandas.DataFrame
        The check's own table.
    result : object
        The check's own result, for its plots (None if there is none).
    files : tuple of pathlib.Path
        What `save` wrote as the check finished (`check_sampler`'s `out`), else empty.
    unverified : str
        What the check could not verify and why, when that kept it from a verdict (it does not
        apply, its reference or the sweep did not mix, a block it cannot test); empty otherwise.
        Such a check has not passed, and has not failed either: it is "incomplete".
    """

    check: str
    statistic: str
    value: float
    threshold: float
    passed: bool
    seconds: float
    table: pd.DataFrame = field(repr=False)
    result: object = field(repr=False, default=None)  # the check's own result, for its plots
    files: tuple[Path, ...] = field(repr=False, default=())
    unverified: str = ""

    @property
    def status(self) -> str:
        """"passed", "failed" (the check saw a difference) or "incomplete" (it saw none, but
        could not verify something: `unverified` says what).
        """
        if self.passed:
            return "passed"
        return "incomplete" if self.unverified else "failed"

    def save(self, folder: Path) -> list[Path]:
        """check_<name>.csv, the check's table, and <name>.png, the summary figure of a result
        that draws one (`Figured`: SBC's rank plots of its most suspect quantities).

        Parameters
        ----------
        folder : pathlib.Path
            Where to write them; made if missing.

        Returns
        -------
        list of pathlib.Path
            The files written.
        """
        folder.mkdir(parents=True, exist_ok=True)
        written = [folder / f"check_{_slug(self.check)}.csv"]
        self.table.to_csv(written[0], index=False)
        if isinstance(self.result, Figured):
            from .plots import save as save_figure  # matplotlib, only for a figure

            written.append(folder / f"{_slug(self.check)}.png")
            save_figure(self.result.summary_figure(written[0].name), written[-1])
        return written

    def saved(self, folder: Path) -> CheckOutcome:
        """The outcome with `files`, what `save` wrote in `folder`.

        Parameters
        ----------
        folder : pathlib.Path
            Where to write them.

        Returns
        -------
        CheckOutcome
            A new outcome; this one is unchanged.
        """
        return replace(self, files=tuple(self.save(folder)))


def _slug(check: str) -> str:
    """A check's name as a file name: 'consistency (small)' -> 'consistency_small'."""
    return re.sub(r"[^a-z0-9]+", "_", check).strip("_")


@dataclass(frozen=True)
class Verdict:
    """The outcome of every check run on a derivation: a row per check, and one of three
    outcomes (`status`): "passed" (every check ran on everything it meant to and passed),
    "failed" (some check saw a difference) or "incomplete" (none did, but something could not
    be checked: the rows that say what and why).

    Attributes
    ----------
    outcomes : tuple of CheckOutcome
        Each check's outcome, in the order they ran.
    subject : str
        What was checked, for the report.
    references : object or None
        The references the checks compared against, for a further call to share
        (`check_sampler`'s `References`, `check_gibbs`'s `ModelReferences`).
    blocks : tuple
        The sweep `check_gibbs` checked, as its `generic.Block`s (each function with the
        variables it draws, and whether it takes a batch): what `diagnose` calls again. Empty
        for a verdict of `check_sampler`.
    """

    outcomes: tuple[CheckOutcome, ...]
    subject: str
    references: object | None = field(default=None, repr=False)
    blocks: tuple = field(default=(), repr=False)

    def with_outcome(self, outcome: CheckOutcome) -> Verdict:
        """The verdict with one more check's outcome.

        Parameters
        ----------
        outcome : CheckOutcome
            The outcome to append.

        Returns
        -------
        Verdict
            A new verdict; this one is unchanged.
        """
        return replace(self, outcomes=self.outcomes + (outcome,))

    @property
    def status(self) -> str:
        """"failed" if any check failed, else "incomplete" if any could not verify something,
        else "passed".
        """
        statuses = {outcome.status for outcome in self.outcomes}
        for status in ("failed", "incomplete"):
            if status in statuses:
                return status
        return "passed"

    @property
    def passed(self) -> bool:
        """Whether every check passed (`status` "passed"): not when one failed, nor when one
        could not verify what it meant to.
        """
        return self.status == "passed"

    @property
    def table(self) -> pd.DataFrame:
        """A row per check: check, statistic, value, threshold, passed, status, seconds."""
        return pd.DataFrame([{"check": o.check, "statistic": o.statistic, "value": o.value,
                              "threshold": o.threshold, "passed": o.passed, "status": o.status,
                              "seconds": round(o.seconds, 1)} for o in self.outcomes])

    def headline(self) -> str:
        """One line: the subject and its outcome in capitals, and the checks that failed or,
        for an incomplete verdict, what could not be verified.

        Returns
        -------
        str
            For example "... : INCOMPLETE (geweke: improper prior on beta; a proper prior
            lets it run)".
        """
        status = self.status
        if status == "failed":
            detail = ", ".join(o.check for o in self.outcomes if o.status == "failed")
        else:
            detail = "; ".join(f"{o.check}: {o.unverified}" for o in self.outcomes
                               if o.status == "incomplete")
        return f"{self.subject}: {status.upper()}" + (f" ({detail})" if detail else "")

    def summary(self) -> pd.DataFrame:
        """The verdict as a table, a row per check (the same as `table`).

        Returns
        -------
        pandas.DataFrame
            Columns check, statistic, value, threshold, passed, status, seconds.
        """
        return self.table

    def diagnose(self, draws: int | None = None, seed: int = 0) -> pd.DataFrame:
        """Where the slip is: a row per coordinate of each block that failed the consistency
        check, at the state where it differs most, with the user's draws measured against the
        exact conditional (`hiercheck.validation.diagnose.diagnose`, which says what each column
        holds).

        Parameters
        ----------
        draws : int, optional
            Calls of the user's function per block and state; default as many as the
            consistency check made there.
        seed : int, default 0
            Fixes the starts and the calls: the same seed gives the same frame.

        Returns
        -------
        pandas.DataFrame
            Columns `hiercheck.validation.diagnose.COLUMNS`; no rows when no block failed.

        Raises
        ------
        SettingsError
            For a verdict of `check_sampler`, or one without a consistency check to read.
        """
        from .diagnose import diagnose  # the draw functions' machinery, only when asked

        return diagnose(self, draws=draws, seed=seed)

    def plot_diagnosis(self, coordinate: str | None = None, draws: int | None = None,
                       seed: int = 0) -> Figure:
        """The user's draws of one failing coordinate against its exact conditional: histogram
        and density, empirical and exact CDF (`hiercheck.validation.diagnose.plot_diagnosis`).

        Parameters
        ----------
        coordinate : str, optional
            A coordinate of `diagnose()`'s frame; default its first (worst) one that has an
            exact conditional.
        draws : int, optional
            As for `diagnose`.
        seed : int, default 0
            As for `diagnose`: the figure shows that frame's draws.

        Returns
        -------
        matplotlib.figure.Figure
            The figure, two panels.

        Raises
        ------
        SettingsError
            As `diagnose`, and when no failing coordinate (or not `coordinate`) has an exact
            conditional to draw.
        """
        from .diagnose import plot_diagnosis  # matplotlib, only for a figure

        return plot_diagnosis(self, coordinate=coordinate, draws=draws, seed=seed)

    def _repr_html_(self) -> str:
        color = {"passed": "#1a6b1a", "failed": "#a11", "incomplete": "#a60"}[self.status]
        return (f'<p style="color:{color}"><b>{html.escape(self.headline())}</b></p>'
                + self.table.to_html(index=False, float_format=lambda x: f"{x:.3g}"))

    def __getitem__(self, check: str) -> CheckOutcome:
        for outcome in self.outcomes:
            if outcome.check == check:
                return outcome
        raise KeyError(f"no check {check!r} in this verdict; checks are "
                       f"{', '.join(o.check for o in self.outcomes)}")

    def __str__(self) -> str:
        return "\n".join([self.headline(), self.table.to_string(
            index=False, float_format=lambda x: f"{x:.3g}")])

    def save(self, folder: Path) -> list[Path]:
        """verdict.csv, verdict.json and each check's files (`CheckOutcome.save`: its table, and
        an SBC check's figure), those not already written there as the check finished.

        Parameters
        ----------
        folder : pathlib.Path
            Where to write them; made if missing.

        Returns
        -------
        list of pathlib.Path
            The verdict's files and every check's, written here or kept.
        """
        folder.mkdir(parents=True, exist_ok=True)
        written = [folder / "verdict.csv", folder / "verdict.json"]
        self.table.to_csv(written[0], index=False)
        written[1].write_text(json.dumps({"subject": self.subject, "status": self.status,
                                          "passed": self.passed,
                                          "checks": self.table.to_dict(orient="records")},
                                         indent=2, default=float))
        for outcome in self.outcomes:
            kept = outcome.files and all(path.parent == folder for path in outcome.files)
            written += outcome.files if kept else outcome.save(folder)
        return written


# -- random streams and timing --------------------------------------------------------------------

def integer_seeds(seed: SeedLike, count: int) -> list[int]:
    """`count` independent seeds from one, as integers that every check accepts.

    Parameters
    ----------
    seed : SeedLike
        The seed they are children of (`numpy.random.SeedSequence(seed).spawn`).
    count : int
        How many.

    Returns
    -------
    list of int
        The seeds, each from its own child stream.
    """
    return [int(child.generate_state(1)[0]) for child in np.random.SeedSequence(seed).spawn(count)]


def in_stages(run_stage: Callable[[int, int], CheckTable], alpha: float) -> list[CheckTable]:
    """A test in two stages, each at level alpha/2: run_stage(0, 1) fails if its smallest
    Holm-adjusted p-value is at most alpha/2 and passes if it is above AMBIGUOUS_P; in between,
    run_stage(1, LATER_STAGE_DRAWS), with that many times the draws and independent of the
    first, decides alone. A correct derivation fails at the first stage with probability at most
    alpha/2 and at the second with at most (AMBIGUOUS_P - alpha/2) alpha/2: at most alpha in all.

    Parameters
    ----------
    run_stage : callable
        run_stage(stage, factor) -> the stage's result, its table's Holm-adjusted p-values held
        to alpha/2; `factor` multiplies the draws.
    alpha : float
        The family-wise false-alarm rate of the whole test.

    Returns
    -------
    list of CheckTable
        The result of each stage run: the last decided.
    """
    results = []
    for stage, factor in enumerate((1, LATER_STAGE_DRAWS)):
        results.append(run_stage(stage, factor))
        if not alpha / 2 < min_holm_p(results[-1].table) <= AMBIGUOUS_P:
            break
    return results


def run_tasks(tasks: Sequence[Callable[[], list[CheckOutcome]]], *, jobs: int = 1,
              fail_fast: bool = False, out: Path | None = None, progress: bool = False,
              here: Iterable[int] = (), before_forking: Callable[[], None] | None = None
              ) -> list[CheckOutcome]:
    """The outcomes of a harness's tasks (each runs one or more checks), in the tasks' order: one
    at a time when `fail_fast` (stopping after the first task with a failed outcome) or with one
    job, else side by side in `jobs` forked processes (`forked.forked_map`), the tasks `here` in
    this process meanwhile. Each outcome is saved in `out` (if given) by the process that ran it.

    Parameters
    ----------
    tasks : sequence of callable
        task() -> the outcomes of its checks.
    jobs : int, default 1
        Processes at most.
    fail_fast : bool, default False
        One at a time, stopping at the first failure (the caller orders the tasks).
    out : pathlib.Path, optional
        Where each check's files are written as it finishes (`CheckOutcome.saved`).
    progress : bool, default False
        A progress bar over the tasks.
    here : iterable of int, optional
        Tasks that run in this process while the workers run the others (they need what is
        costly to compute and this process keeps afterwards).
    before_forking : callable, optional
        Called once before the workers are forked: what more than one task reads, computed once.

    Returns
    -------
    list of CheckOutcome
        Every outcome of the tasks run.
    """
    from tqdm.auto import tqdm

    def run(index: int) -> list[CheckOutcome]:
        outcomes = tasks[index]()
        return outcomes if out is None else [outcome.saved(out) for outcome in outcomes]

    if fail_fast or min(jobs, len(tasks)) < 2:
        outcomes = []
        for index in tqdm(range(len(tasks)), desc="checks", disable=not progress):
            outcomes += run(index)
            if fail_fast and any(outcome.status == "failed" for outcome in outcomes):
                break
        return outcomes
    if before_forking is not None:
        before_forking()
    finished = forked_map(run, len(tasks), jobs, here=tuple(here))
    return [outcome for result in in_order(tqdm(finished, total=len(tasks), desc="checks",
                                                disable=not progress))
            for outcome in result]


def seed_streams(seed: SeedLike, names: Sequence[str]) -> dict[str, int]:
    """An independent integer seed for each name (the checks, and the references they compare
    against), all children of one `SeedSequence(seed)`: a reference never shares its stream with
    a check that is compared with it, and a result depends on the seed alone.

    Parameters
    ----------
    seed : SeedLike
        The run's seed.
    names : sequence of str
        What needs a stream, each name once; a name's seed depends on its position.

    Returns
    -------
    dict of str to int
        name -> its seed.
    """
    return dict(zip(names, integer_seeds(seed, len(names))))


def timed(check: str, statistic: str, run: Callable[[], object],
          summarize: Callable[[object], tuple]) -> CheckOutcome:
    """The outcome of `run()`, timed: summarize(result) gives (value, threshold, passed, table).

    Parameters
    ----------
    check : str
        The check's name.
    statistic : str
        What `value` is.
    run : callable
        run() -> the check's result.
    summarize : callable
        summarize(result) -> (value, threshold, passed, table); `p_value_summary` for a check of
        p-values.

    Returns
    -------
    CheckOutcome
        Its row, with the result for the check's plots.
    """
    start = time.perf_counter()
    result = run()
    value, threshold, passed, table = summarize(result)
    return CheckOutcome(check, statistic, float(value), float(threshold), bool(passed),
                        time.perf_counter() - start, table, result)


def p_value_summary(result: object) -> tuple[float, float, bool, pd.DataFrame]:
    """(smallest Holm-adjusted p, the level it was tested at, passed, table) of a result with
    `table`, `alpha` and `passed`: ALPHA, or ALPHA/2 for each stage of a check in stages, whose
    value is then the smallest p of the stage that decided (the last).

    Parameters
    ----------
    result : object
        A check's result.

    Returns
    -------
    tuple
        What `timed` summarizes a check of p-values by.
    """
    table = result.table
    # a check in stages is decided by its last: its value is that stage's (`in_stages`)
    decided = table[table.stage == table.stage.max()] if "stage" in table else table
    return min_holm_p(decided), result.alpha, result.passed, table


def not_applicable(check: str, reason: str) -> CheckOutcome:
    """A check that does not apply: incomplete, with NaN value and the reason as its statistic.

    Parameters
    ----------
    check : str
        The check's name.
    reason : str
        Why it does not apply.

    Returns
    -------
    CheckOutcome
        Its row.
    """
    return CheckOutcome(check, f"not applicable: {reason}", np.nan, np.nan, False, 0.0,
                        pd.DataFrame({"reason": [reason]}), unverified=f"not applicable: {reason}")


def cannot_verify(check: str, reason: str, value: float, threshold: float, seconds: float,
                  table: pd.DataFrame, result: object = None) -> CheckOutcome:
    """A check that could not reach a verdict: it refuses to pass, and is incomplete.

    Parameters
    ----------
    check : str
        The check's name.
    reason : str
        What kept it from a verdict.
    value, threshold : float
        The statistic it reached, and what it is held to.
    seconds : float
        How long it took.
    table : pandas.DataFrame
        Its table.
    result : object, optional
        Its full result, where it has one (what it did check, and what it could not).

    Returns
    -------
    CheckOutcome
        Its row, incomplete, its statistic "cannot verify: <reason>".
    """
    return CheckOutcome(check, f"cannot verify: {reason}", float(value), float(threshold), False,
                        seconds, table, result, unverified=f"cannot verify: {reason}")


# -- the detection matrix as Markdown -------------------------------------------------------------

MATRIX_START, MATRIX_END = "<!-- detection matrix -->", "<!-- /detection matrix -->"


def matrix_markdown(matrix: pd.DataFrame, checks: Iterable[str]) -> str:
    """A detection matrix as a GitHub table, a row per derivation: for each check 'caught'
    (True: it failed the derivation), '-' (False) or the cell as it is (blank where the check
    does not apply, "raised" where a function raised), then caught_by. A derivation marked
    `subtle` (a column of the flagship's matrix) is named "NAME (subtle)".

    Parameters
    ----------
    matrix : pandas.DataFrame
        Columns derivation, caught_by, a column per check, and optionally subtle.
    checks : iterable of str
        The checks' columns, in the table's order; those missing from the matrix are left out.

    Returns
    -------
    str
        The Markdown table.
    """
    def cell(value) -> str:
        if isinstance(value, (bool, np.bool_)):
            return "caught" if value else "-"
        return str(value)

    shown = [check for check in checks if check in matrix.columns]
    columns = ["derivation", *shown, "caught_by"]
    lines = ["| " + " | ".join(columns) + " |", "|" + " --- |" * len(columns)]
    for row in matrix.to_dict(orient="records"):
        name = f"{row['derivation']} (subtle)" if row.get("subtle") else row["derivation"]
        cells = [name, *(cell(row[check]) for check in shown), str(row["caught_by"])]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def replace_matrix_block(text: str, table: str) -> str:
    """`text` with the lines between the detection-matrix markers replaced by `table`.

    Parameters
    ----------
    text : str
        A document holding the markers MATRIX_START and MATRIX_END.
    table : str
        What goes between them.

    Returns
    -------
    str
        The document with the block replaced.

    Raises
    ------
    DataError
        If the markers are missing or out of order.
    """
    start, end = text.find(MATRIX_START), text.find(MATRIX_END)
    if start < 0 or end < start:
        raise DataError(f"no {MATRIX_START} ... {MATRIX_END} block to replace")
    return text[:start + len(MATRIX_START)] + "\n" + table + "\n" + text[end:]
