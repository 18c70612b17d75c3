"""A fresh clone stands alone: no file of the project reads, or sends its reader to, a folder
outside the repository. (.ci/run also runs the suite from a copy of the files in an empty
folder, where such a path would find nothing; this test names the line at fault.)"""

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# what `git ls-files` leaves out (.gitignore), for a copy of the project without .git
NOT_THE_PROJECTS = {".git", ".venv", "build", "__pycache__", ".pytest_cache", ".hypothesis"}

# A climb out of a Markdown file's folder is judged from that folder (its links resolve there);
# in any other file a relative path resolves from the working directory, at best the root, so
# one climb already leaves the repository.
CLIMBS = re.compile(r"(?<![.\w])((?:\.\./)+)")
DOT_DOT = re.compile(r"""["']\.\.["']""")  # Path(".."), os.path.join(folder, "..")
# Path(__file__).parents[k] or .parent k + 1 times: k above the file's depth is past the root
FILE_PARENTS = re.compile(r"Path\(__file__\)(?:\.resolve\(\))?\.parents\[(\d+)\]")
FILE_PARENT = re.compile(r"Path\(__file__\)(?:\.resolve\(\))?((?:\.parent\b)+)")
OUTSIDE = {
    "the parent of the repository's root":
        re.compile(r"(?i)\b\w*(?:repo|root)\w*(?:\(\))?\.parent\b"),
    "the data folder beside the repository":
        re.compile(r"""shared[/\\]data|["']shared["']\s*[/,]\s*["']data["']"""),
    "a folder named shared joined to a path": re.compile(r"""/\s*["']shared["']"""),
}


def project_files() -> list[Path]:
    """The files git tracks or would track (not ignored); without .git, every file outside the
    folders it ignores."""
    if (ROOT / ".git").exists():
        listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others",
                                 "--exclude-standard"], cwd=ROOT, capture_output=True, check=True)
        paths = (ROOT / name for name in listed.stdout.decode().split("\0") if name)
        return [path for path in paths if path.is_file()]  # deleted, not yet committed
    return [path for path in ROOT.rglob("*") if path.is_file()
            and not any(part in NOT_THE_PROJECTS or part.endswith(".egg-info")
                        for part in path.relative_to(ROOT).parts)]


def escapes(line: str, depth: int, markdown: bool) -> list[str]:
    """What in one line of a file `depth` folders below the root points outside the root."""
    found = [f"{climb} climbs out of the repository" for climb in CLIMBS.findall(line)
             if climb.count("../") > (depth if markdown else 0)]
    found += ["a '..' path component"] * len(DOT_DOT.findall(line))
    found += [f"Path(__file__).parents[{k}] is past the root" for k in FILE_PARENTS.findall(line)
              if int(k) > depth]
    found += [f"Path(__file__){chain} is past the root" for chain in FILE_PARENT.findall(line)
              if chain.count(".parent") > depth + 1]
    found += [what for what, pattern in OUTSIDE.items() if pattern.search(line)]
    return found


def test_no_file_refers_to_a_folder_outside_the_repository():
    files = project_files()
    assert ROOT / "pyproject.toml" in files and ROOT / "README.md" in files
    offending = []
    for path in files:
        if path == Path(__file__).resolve():  # it spells out the patterns it looks for
            continue
        content = path.read_bytes()
        if b"\0" in content:  # a figure, not text
            continue
        relative = path.relative_to(ROOT)
        for number, line in enumerate(content.decode("utf-8", "replace").splitlines(), 1):
            offending += [f"{relative}:{number}: {what}: {line.strip()}"
                          for what in escapes(line, len(relative.parts) - 1,
                                              path.suffix == ".md")]
    assert not offending, "\n".join(offending)


def test_the_check_catches_each_way_out_and_lets_the_word_shared_be():
    caught = [
        ("See `../shared/data/` beside the repository.", 0, True),
        ("[derivation](../../notes.md)", 1, True),
        ('DATA = Path("../data/mathtest.csv")', 0, False),
        ('folder = os.path.join(here, "..", "data")', 1, False),
        ("SHARED = Path(__file__).resolve().parents[2] / 'x'", 1, False),
        ("up = Path(__file__).parent.parent.parent", 1, False),
        ('DATA = REPO.parent / "data"', 1, False),
        ("DATA = repository_root().parent", 1, False),
        ("read from shared/data/SOURCES.md", 1, True),
        ('DATA = base / "shared" / "data"', 1, False),
    ]
    for line, depth, markdown in caught:
        assert escapes(line, depth, markdown), line
    let_be = [
        ("[the README](../README.md)", 1, True),
        ("ROOT = Path(__file__).resolve().parents[1]", 1, False),
        ("start = Path(__file__).resolve().parent", 1, False),
        ("figures = ROOT / 'docs' / 'figures'", 1, False),
        ("folder = tmp_path_factory.getbasetemp().parent / 'cache'", 1, False),
        ("the shared closed forms, shared between calls; shared data structures", 1, True),
        ("an elided path, models/.../builtin", 0, False),
        ('shared = y.ndim == 2 and y.strides[0] == 0', 1, False),
    ]
    for line, depth, markdown in let_be:
        assert not escapes(line, depth, markdown), line
