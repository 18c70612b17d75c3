"""The README is a user's guide: short, the first example a student runs on their own sampler near
the top, no wall of prose, every link resolving, and its example's output the code's own."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
FENCE = "```"
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def prose_paragraphs(text: str) -> list[str]:
    """The paragraphs of running text: blocks between blank lines, outside code fences, without
    tables, indented blocks, headings and HTML comments."""
    paragraphs, block, in_code = [], [], False
    for line in text.splitlines() + [""]:
        if line.startswith(FENCE):
            in_code = not in_code
            continue
        if in_code:
            continue
        if line.strip():
            block.append(line)
            continue
        if block and not block[0].startswith(("|", "    ", "#", "<!--")):
            paragraphs.append(" ".join(block))
        block = []
    return paragraphs


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a Markdown heading: lower case, only letters, digits, spaces,
    hyphens and underscores kept, spaces made hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors_of(page: Path) -> set[str]:
    return {github_anchor(line.lstrip("#")) for line in page.read_text().splitlines()
            if line.startswith("#")}


def test_the_readme_is_short():
    assert len(README.read_text().splitlines()) <= 250


def test_the_first_example_checks_a_sampler_of_ones_own_within_80_lines():
    lines = README.read_text().splitlines()
    first = next(number for number, line in enumerate(lines, 1) if "check_gibbs(model" in line)
    assert first <= 80


@pytest.mark.parametrize("page", ["README.md", "docs/guide.md", "docs/five-minutes.md"])
def test_no_paragraph_is_over_150_words(page):
    long = [p[:60] for p in prose_paragraphs((ROOT / page).read_text()) if len(p.split()) > 150]
    assert not long, f"{page}: paragraphs over 150 words begin {long}"


@pytest.mark.parametrize("page", ["README.md", "docs/guide.md", "docs/five-minutes.md"])
def test_every_relative_link_resolves(page):
    source = ROOT / page
    for target in LINK.findall(source.read_text()):
        if target.startswith(("http://", "https://")):
            continue
        path, _, anchor = target.partition("#")
        linked = (source.parent / path).resolve() if path else source
        assert linked.is_file(), f"{page} links to {target}, which does not exist"
        if anchor:
            assert anchor in anchors_of(linked), f"{page} links to {target}: no such heading"


def test_prose_paragraphs_skip_code_and_tables():
    text = "one two\nthree\n\n```\ncode words here\n```\n\n| a | b |\n\n    indented\n\nlast"
    assert prose_paragraphs(text) == ["one two three", "last"]


def test_github_anchor_of_a_numbered_heading_with_code():
    assert github_anchor(" 8.1 Why the inverse Wishart, and how NUTS samples it") \
        == "81-why-the-inverse-wishart-and-how-nuts-samples-it"
    assert github_anchor(" Any PyMC model: `check_gibbs`") == "any-pymc-model-check_gibbs"


def python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)


def text_blocks(text: str) -> list[str]:
    return re.findall(r"```text\n(.*?)```", text, flags=re.DOTALL)


def without_seconds(table: str) -> list[list[str]]:
    """The verdict's printed lines split into cells, its last column (seconds) left out: the time
    is the machine's, every other cell the seed's."""
    rows = [line.split() for line in table.strip().splitlines()]
    return [rows[0]] + [row[:-1] for row in rows[1:]]


@pytest.mark.slow
def test_the_readmes_first_example_prints_what_the_readme_shows(capsys):
    """The example runs as written, passes the two checks that apply under its improper priors,
    and prints the README's verdict cell for cell but for the seconds; the slip the README names
    (numpy's gamma given the rate) fails consistency at sigma2 alone, and agreement."""
    import numpy as np

    text = README.read_text()
    namespace: dict = {}
    exec(python_blocks(text)[0], namespace)
    printed = capsys.readouterr().out
    verdict = namespace["verdict"]
    assert [o.status for o in verdict.outcomes] == ["passed", "passed", "incomplete", "incomplete"]
    assert without_seconds(printed) == without_seconds(text_blocks(text)[0])

    school, P, N = namespace["school"], namespace["P"], namespace["N"]

    def draw_sigma2_with_rate_for_scale(rng, state, data):
        theta, mu, tau2 = state["theta"], state["mu"], state["tau2"]
        rate = (np.sum((data["y"] - theta[school]) ** 2) + np.sum((theta - mu) ** 2) / tau2) / 2
        return 1 / rng.gamma((N + P) / 2, rate)

    assert "`rng.gamma((N + P) / 2, rate)`" in text
    slip = namespace["check_gibbs"](namespace["model"], {**namespace["sweep"],
                                                         "sigma2": draw_sigma2_with_rate_for_scale},
                                    seed=0, checks=("consistency", "agreement vs nuts"))
    assert [o.status for o in slip.outcomes] == ["failed", "failed"]
    assert all(np.asarray(slip.table["value"]) < 1e-15)
    smallest = slip["consistency"].table.groupby("block")["p_holm"].min()
    assert list(smallest[smallest < slip["consistency"].threshold].index) == ["sigma2"]
    shift = slip.diagnose().set_index("block").loc["sigma2", "mean_shift"]
    assert abs(shift) > 20  # the README's "32 SDs from the exact conditional"