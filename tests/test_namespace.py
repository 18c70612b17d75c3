"""One import package, `hiercheck`: nothing at the top of site-packages but it, a user's folders
named models/, samplers/ or validation/ do not shadow it, every module says what it exports, and
the command tells bad input (exit 2) from a bug of its own (exit 1)."""

import importlib
import importlib.metadata
import pkgutil
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import hiercheck
from hiercheck import HiercheckError
from hiercheck.validation import cli

LAYERS = ("models", "samplers", "validation")


def installed_distribution() -> importlib.metadata.Distribution:
    """hiercheck's distribution as installed in site-packages (not an egg-info that a build left
    in the source tree, which the repository's folder on sys.path would find first)."""
    site_packages = [entry for entry in sys.path if Path(entry).name == "site-packages"]
    found = list(importlib.metadata.distributions(name="hiercheck", path=site_packages))
    assert len(found) == 1, f"hiercheck is installed {len(found)} times in {site_packages}"
    return found[0]


def test_the_distribution_installs_nothing_at_the_top_but_hiercheck():
    tops = {Path(str(f)).parts[0] for f in installed_distribution().files}
    assert not tops & set(LAYERS), sorted(tops)
    assert "hiercheck" in tops or any(t.startswith("__editable__") for t in tops), sorted(tops)


def test_the_public_names_are_exported():
    for name in ("GroupedData", "Priors", "load_dataset", "check_sampler", "Verdict",
                 "HiercheckError", "__version__", "conjugate_conditionals", "auto_gibbs"):
        assert name in hiercheck.__all__
        assert getattr(hiercheck, name) is not None
    assert hiercheck.__version__ == importlib.metadata.version("hiercheck")
    assert issubclass(hiercheck.HiercheckError, ValueError)


def every_module():
    names = ["hiercheck"]
    for layer in LAYERS:
        package = importlib.import_module(f"hiercheck.{layer}")
        names.append(package.__name__)
        names += [f"{package.__name__}.{info.name}" for info in pkgutil.iter_modules(package.__path__)]
    names += [f"hiercheck.{info.name}" for info in pkgutil.iter_modules(hiercheck.__path__)
              if info.name not in LAYERS]
    return sorted(set(names))


@pytest.mark.parametrize("module", every_module())
def test_every_module_declares_what_it_exports(module):
    imported = importlib.import_module(module)
    assert isinstance(getattr(imported, "__all__", None), list), f"{module} has no __all__"
    missing = [name for name in imported.__all__ if not hasattr(imported, name)]
    assert not missing, f"{module}.__all__ names {missing}, which it lacks"


def test_the_users_own_folders_do_not_shadow_the_package(tmp_path):
    """A notebook beside folders named like the layers imports hiercheck's, not the user's."""
    for layer in LAYERS:
        (tmp_path / layer).mkdir()
        (tmp_path / layer / "__init__.py").write_text(f"raise ImportError('the user\\'s {layer}')\n")
    code = "import hiercheck, hiercheck.samplers.gibbs; print(hiercheck.__version__)"
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == hiercheck.__version__
    command = shutil.which("hiercheck", path=str(Path(sys.executable).parent))
    assert command is not None, "the hiercheck command is not installed beside this Python"
    done = subprocess.run([command, "describe", "--dataset", "rail", "--out", "out"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "18 students in 6 schools" in done.stdout


def test_a_missing_csv_is_a_hiercheck_error(tmp_path):
    with pytest.raises(HiercheckError, match="no such file"):
        hiercheck.GroupedData.from_csv(tmp_path / "nowhere.csv", group="g", value="v")


def a_bug(args):
    raise KeyError("a dictionary the package built lacks its key")


def test_a_bug_is_an_internal_error_exit_1_in_one_line(monkeypatch, capsys):
    monkeypatch.setattr(cli, "run_describe", a_bug)
    assert cli.main(["describe", "--dataset", "rail"]) == cli.INTERNAL_ERROR == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("hiercheck: internal error: KeyError")
    assert "--debug" in err and "Traceback" not in err


def test_debug_shows_the_traceback_of_a_bug(monkeypatch, capsys):
    monkeypatch.setattr(cli, "run_describe", a_bug)
    assert cli.main(["describe", "--dataset", "rail", "--debug"]) == 1
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and "in a_bug" in err
    assert err.rstrip().splitlines()[-1].startswith("hiercheck: internal error: KeyError")


def test_bad_input_is_exit_2_not_an_internal_error(capsys, tmp_path):
    assert cli.main(["describe", "--data", str(tmp_path / "none.csv"), "--group", "g",
                     "--value", "v"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no such file" in err and "internal" not in err
