"""Fixtures the test files share (the data sets built into the package, and their CSV files),
and the guard that keeps `pytest -m "not slow"` fast: a test that compiles a PyTensor function
(every PyMC model's log density, NUTS, nutpie) fails unless it is marked `slow`."""

import os
from contextlib import ExitStack
from importlib import resources

import pytest

from hiercheck.models import GroupedData, Priors, load_dataset


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    """Around the whole of a test not marked slow, fixtures of every scope included, compiling a
    PyTensor function fails the test. (Compiling in a subprocess is not seen: such tests are
    marked by hand.)"""
    if item.get_closest_marker("slow") is not None:
        yield
        return
    from pytensor.compile.function import types

    def refuse(*args, **kwargs):
        raise AssertionError(f"{item.nodeid} compiles a PyTensor function (PyMC or nutpie): "
                             "mark it @pytest.mark.slow")

    original = types.FunctionMaker.__init__
    types.FunctionMaker.__init__ = refuse
    try:
        yield
    finally:
        types.FunctionMaker.__init__ = original


# The files that take a minute or more of a worker's time, costliest first (minutes in a
# clean-clone run of .ci/run, 2026-11-29). They are handed to the two workers first and the
# many small files fill in after them, so that the workers finish together: in the order
# pytest-xdist picks by default (most tests first) the costliest files came last and one worker
# idled while the other finished them.
COSTLIEST_FIRST = ("test_generic.py", "test_suite.py", "test_sbc.py", "test_notebook.py",
                   "test_generic_flagship.py", "test_consistency.py", "test_report.py",
                   "test_student.py", "test_bloodpressure.py", "test_reference.py",
                   "test_benchmarks.py", "test_exact.py", "test_cli.py", "test_cheese.py",
                   "test_kill_resume.py")


def pytest_collection_modifyitems(items):
    """The files of COSTLIEST_FIRST first, in its order; the others after, as collected
    (`--no-loadscope-reorder` keeps this order in the workers' queue)."""
    def rank(item):
        name = item.path.name
        return COSTLIEST_FIRST.index(name) if name in COSTLIEST_FIRST else len(COSTLIEST_FIRST)
    items.sort(key=rank)


@pytest.fixture(scope="session", autouse=True)
def _a_cache_of_the_tests_own(tmp_path_factory):
    """References cached by one test run never leak into the user's cache, nor from it; the
    command-line tests' subprocesses inherit the setting. The workers of one run share the
    folder (the parent of their own temporary folders), so a reference that two test files
    need (NUTS on hsb, say) is computed once, whichever worker runs them; entries are written
    atomically, so a worker never reads another's half-written one as sound."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        folder = tmp_path_factory.getbasetemp().parent / "hiercheck-cache"
        folder.mkdir(exist_ok=True)
    else:
        folder = tmp_path_factory.mktemp("hiercheck-cache")
    saved = os.environ.get("HIERCHECK_CACHE")
    os.environ["HIERCHECK_CACHE"] = str(folder)
    yield folder
    if saved is None:
        os.environ.pop("HIERCHECK_CACHE")
    else:
        os.environ["HIERCHECK_CACHE"] = saved


@pytest.fixture(scope="session")
def packaged_csv():
    """The path of a CSV file packaged with hiercheck (`hiercheck.models.packaged`), by file name:
    what a user passes to `--data`, and what a test reads without hiercheck's loaders."""
    with ExitStack() as files:
        yield lambda filename: files.enter_context(resources.as_file(
            resources.files("hiercheck.models").joinpath("builtin", filename)))


@pytest.fixture(scope="session")
def mathtest() -> GroupedData:
    return load_dataset("mathtest")


@pytest.fixture(scope="session")
def mathtest_nuts(mathtest):
    """PyMC's NUTS on the math-test data under the default priors, run once for the whole test
    run: kept in the tests' cache, so the second worker that needs it reads it back (the files
    that use it may run on different workers)."""
    from hiercheck.cache import PICKLE, DiskCache, data_parts
    from hiercheck.models.reference import sample_nuts

    priors, settings = Priors.weakly_informative(mathtest), {"draws": 2500, "chains": 4, "seed": 1}
    parts = {**data_parts(mathtest), "priors": priors.as_dict(), **settings}
    return DiskCache().get("test-mathtest-nuts", parts,
                           lambda: sample_nuts(mathtest, priors, **settings), PICKLE)
