"""A verdict's three outcomes: passed (every check ran on everything it meant to), failed (a check
saw a difference) or incomplete (none did, but something could not be checked), and the exit
codes the command gives them."""

import json

import numpy as np
import pandas as pd
import pytest

from hiercheck.validation import generic
from hiercheck.validation.cli import VERDICT_EXIT_CODES, main
from hiercheck.validation.result import (CheckOutcome, Verdict, cannot_verify, matrix_markdown,
                                         not_applicable)


def outcome(check: str, passed: bool) -> CheckOutcome:
    return CheckOutcome(check, "min Holm-adjusted p", 0.5 if passed else 1e-9, 0.001, passed,
                        0.1, pd.DataFrame({"p_holm": [0.5]}))


PASSED = outcome("consistency", True)
FAILED = outcome("geweke", False)
NOT_APPLICABLE = not_applicable("sbc", "improper prior on beta; a proper prior lets it run")
UNVERIFIED = cannot_verify("agreement vs nuts", "the sweep does not mix (ESS of a is 12 < 400)",
                           12.0, 400.0, 0.2, pd.DataFrame())


@pytest.mark.parametrize("outcomes, status", [
    ((PASSED,), "passed"),
    ((PASSED, FAILED), "failed"),
    ((PASSED, NOT_APPLICABLE), "incomplete"),
    ((PASSED, UNVERIFIED), "incomplete"),
    ((NOT_APPLICABLE, FAILED, UNVERIFIED), "failed"),
])
def test_failed_outranks_incomplete_which_outranks_passed(outcomes, status):
    verdict = Verdict(outcomes, "the sweep")
    assert verdict.status == status
    assert verdict.passed == (status == "passed")
    assert list(verdict.table.status) == [o.status for o in outcomes]


def test_what_could_not_be_checked_is_neither_passed_nor_failed():
    for unchecked in (NOT_APPLICABLE, UNVERIFIED):
        assert unchecked.status == "incomplete" and not unchecked.passed
    assert np.isnan(NOT_APPLICABLE.value)


def test_an_incomplete_verdict_says_what_was_not_checked_and_what_would_let_it_run():
    headline = str(Verdict((PASSED, NOT_APPLICABLE, UNVERIFIED), "the sweep")).splitlines()[0]
    assert headline == ("the sweep: INCOMPLETE (sbc: not applicable: improper prior on beta; a "
                        "proper prior lets it run; agreement vs nuts: cannot verify: the sweep "
                        "does not mix (ESS of a is 12 < 400))")
    assert str(Verdict((PASSED, FAILED, NOT_APPLICABLE), "the sweep")).startswith(
        "the sweep: FAILED (geweke)\n")


def test_the_saved_verdict_carries_its_status(tmp_path):
    Verdict((PASSED, UNVERIFIED), "the sweep").save(tmp_path)
    saved = json.loads((tmp_path / "verdict.json").read_text())
    assert saved["status"] == "incomplete" and saved["passed"] is False
    assert pd.read_csv(tmp_path / "verdict.csv").status.tolist() == ["passed", "incomplete"]


def test_the_exit_codes_of_the_three_outcomes():
    assert VERDICT_EXIT_CODES == {"passed": 0, "failed": 1, "incomplete": 3}


@pytest.mark.parametrize("outcomes, code", [((PASSED,), 0), ((PASSED, FAILED), 1),
                                            ((PASSED, NOT_APPLICABLE), 3)])
def test_validate_exits_with_its_verdicts_code(monkeypatch, capsys, tmp_path, outcomes, code):
    monkeypatch.setattr(generic, "check_gibbs",
                        lambda *args, **kwargs: Verdict(outcomes, "the sweep"))
    assert main(["validate", "--model", "bloodpressure", "--out", str(tmp_path)]) == code
    assert f"the sweep: {Verdict(outcomes, '').status.upper()}" in capsys.readouterr().out


def test_one_matrix_markdown_writes_both_harnesses_matrices():
    flagship = pd.DataFrame([{"derivation": "correct", "subtle": False, "geweke": False,
                              "sbc": "", "caught_by": 0},
                             {"derivation": "lam-off-by-one", "subtle": True, "geweke": True,
                              "sbc": True, "caught_by": 2}])
    assert matrix_markdown(flagship, ["geweke", "sbc", "power"]).splitlines() == [
        "| derivation | geweke | sbc | caught_by |", "| --- | --- | --- | --- |",
        "| correct | - |  | 0 |", "| lam-off-by-one (subtle) | caught | caught | 2 |"]
    model = pd.DataFrame([{"derivation": "beta-sign", "consistency": "raised", "sbc": True,
                           "caught_by": 2}])
    assert matrix_markdown(model, ["consistency", "sbc"]).splitlines()[-1] == \
        "| beta-sign | raised | caught | 2 |"
