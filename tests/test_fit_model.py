"""`hiercheck fit --model NAME`: a built-in model fitted on its own data and priors, with its
own Gibbs engine or with NUTS on its PyMC model; the posterior as InferenceData, the summary of
its small variables, and one-line refusals of the options that would choose other data."""

import contextlib
import io
import json

import numpy as np
import pytest

from hiercheck.models import Priors
from hiercheck.models.engine import az
from hiercheck.validation.builtin_models import BUILTIN_MODELS, models_with_engine
from hiercheck.validation.cli import main

# The notebook's posterior of beta, the treatment effect (notebooks/blood_pressure.py, section 3:
# the model's Gibbs sampler, 4 chains of 2000 draws, seed 1; README.md reports it): mean -7.41,
# SD 4.53, both rounded to 0.01, from draws of bulk ESS 7669.
NOTEBOOK_BETA = {"mean": -7.41, "sd": 4.53, "ess": 7669}
ROUNDING = 0.005
Z = 4  # a difference of four Monte Carlo SEs: a false alarm once in 16,000 runs
FLAGSHIP_SCALARS = ["mu", "lam", "omega", "sigma", "tau"]
# the rows of the Gibbs engines' summaries: the variables of at most 4 values a draw (SUMMARY_SIZE)
SUMMARIZED = {
    "mathtest": FLAGSHIP_SCALARS,
    "hierarchy-small": FLAGSHIP_SCALARS,  # its 8 schools' theta_i are left out
    "bloodpressure": ["mu", "beta", "lam", "omega", "sigma", "tau"],
    "cheese": ["m[intercept]", "m[log_price]", "m[disp]", "m[log_price:disp]", "lam", "sigma"],
    "student": ["mu", "sigma2", "tau2"],
}


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def summary_rows(out: str) -> list[str]:
    """The variables of the az.summary table printed after the header line."""
    return [line.split()[0] for line in out.splitlines()[2:]]


def beta_moments(idata) -> dict[str, float]:
    """beta's posterior mean and SD, with their Monte Carlo SEs from the ESS: the mean's is
    ArviZ's; the SD's is ArviZ's written out (az.mcse(method="sd") fails under numba with
    numpy 2), the delta method on the mean of the squared deviations, with their own ESS."""
    beta = idata.posterior.beta.values
    squared = (beta - beta.mean()) ** 2
    return {"mean": float(beta.mean()), "sd": float(beta.std(ddof=1)),
            "mcse_mean": float(az.mcse(idata, var_names=["beta"], method="mean").beta),
            "mcse_sd": float(np.sqrt(squared.var() / az.ess(squared, method="mean"))
                             / (2 * np.sqrt(squared.mean()))),
            "kurtosis": float((squared ** 2).mean() / squared.mean() ** 2)}


@pytest.fixture(scope="module")
def bloodpressure_fit(tmp_path_factory):
    """`hiercheck fit --model bloodpressure` as a user runs it (default draws, chains, seed):
    its stdout and the posterior it wrote."""
    folder = tmp_path_factory.mktemp("fit-bloodpressure")
    out, err = io.StringIO(), io.StringIO()  # capsys is the tests' own, not a module fixture's
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["fit", "--model", "bloodpressure", "--out", str(folder)])
    assert code == 0, err.getvalue()
    return out.getvalue(), err.getvalue(), az.from_netcdf(folder / "posterior_gibbs.nc")


@pytest.mark.parametrize("name", list(BUILTIN_MODELS))
def test_fit_model_writes_the_gibbs_posterior_of_every_builtin(capsys, tmp_path, name):
    """Each built-in's Gibbs engine: every free variable of its PyMC model, under its name and
    with its dims after (chain, draw); the summary of the variables of at most SUMMARY_SIZE
    values a draw; the time taken."""
    code, out, err = run(capsys, "fit", "--model", name, "--draws", "20", "--chains", "2",
                         "--seed", "3", "--out", str(tmp_path))
    assert code == 0, err
    builtin = BUILTIN_MODELS[name]
    model = builtin.build_model(builtin.load())
    posterior = az.from_netcdf(tmp_path / "posterior_gibbs.nc").posterior
    assert posterior.sizes["chain"] == 2 and posterior.sizes["draw"] == 20
    for rv in model.free_RVs:
        values = posterior[rv.name]
        assert values.dims == ("chain", "draw", *model.named_vars_to_dims.get(rv.name, ()))
        assert np.isfinite(values.values).all()
    assert out.splitlines()[0].startswith(f"the built-in model {name} on ")
    assert summary_rows(out) == SUMMARIZED[name]
    assert "gibbs: " in err and f"wrote {tmp_path / 'posterior_gibbs.nc'}" in err


@pytest.mark.parametrize("name", ["mathtest", "hierarchy-small"])
def test_the_flagship_entries_sample_with_the_flagships_gibbs_under_their_priors(name):
    from hiercheck.samplers import gibbs
    from hiercheck.validation.suite import SMALL_PRIORS

    builtin = BUILTIN_MODELS[name]
    data = builtin.load()
    priors = {"mathtest": Priors.weakly_informative(data), "hierarchy-small": SMALL_PRIORS}[name]
    mine = builtin.sample(data, draws=5, chains=2, seed=7)
    expected = gibbs.sample(data, priors, draws=5, chains=2, seed=7)
    assert json.loads(mine.posterior.attrs["priors"]) == priors.as_dict()
    for variable in ("mu", "lam", "omega", "theta"):
        np.testing.assert_array_equal(mine.posterior[variable], expected.posterior[variable])


def test_every_builtin_has_a_gibbs_engine_and_report_model_keeps_its_choices(capsys, tmp_path):
    """The flagship's entries have the flagship's engine; their report stays `report --dataset`,
    which shows every engine of the flagship."""
    assert all(builtin.sample is not None for builtin in BUILTIN_MODELS.values())
    assert models_with_engine() == ("bloodpressure", "cheese", "student")
    with pytest.raises(SystemExit) as stopped:
        main(["report", "--model", "mathtest", "--out", str(tmp_path)])
    assert stopped.value.code == 2 and "invalid choice: 'mathtest'" in capsys.readouterr().err


def test_fit_model_bloodpressure_finds_the_notebooks_treatment_effect(bloodpressure_fit):
    """beta's posterior mean and SD from `hiercheck fit --model bloodpressure` (4 chains of 1000
    draws, seed 0) against the notebook's, within Z combined Monte Carlo SEs and the rounding."""
    out, _, idata = bloodpressure_fit
    assert "beta" in summary_rows(out)  # the treatment effect is in the printed summary
    fit = beta_moments(idata)
    # the notebook's from its ESS: SD/sqrt(ESS) for the mean and, by the delta method, for the SD
    # SD sqrt((kurtosis - 1)/(4 ESS)), the kurtosis (3 for a normal) taken from the fit's draws
    ess = NOTEBOOK_BETA["ess"]
    notebook_mcse = {"mean": NOTEBOOK_BETA["sd"] / np.sqrt(ess),
                     "sd": NOTEBOOK_BETA["sd"] * np.sqrt((fit["kurtosis"] - 1) / (4 * ess))}
    for moment in ("mean", "sd"):
        allowed = Z * np.hypot(fit[f"mcse_{moment}"], notebook_mcse[moment]) + ROUNDING
        assert abs(fit[moment] - NOTEBOOK_BETA[moment]) < allowed, (moment, fit)


@pytest.mark.slow
def test_fit_model_nuts_agrees_with_the_gibbs_engine_on_the_treatment_effect(
        bloodpressure_fit, capsys, tmp_path):
    """`--engine nuts`: PyMC's NUTS on the PyMC model, an independent computation of beta's
    posterior (2 chains of 1000 draws: half the time of the default 4); its mean and SD against
    the Gibbs engine's within Z combined Monte Carlo SEs. Its InferenceData has the PyMC model's
    free variables with the Gibbs engine's coordinates."""
    code, out, err = run(capsys, "fit", "--model", "bloodpressure", "--engine", "nuts",
                         "--chains", "2", "--seed", "1", "--out", str(tmp_path))
    assert code == 0, err
    assert "nuts: " in err and "beta" in summary_rows(out)
    gibbs_idata = bloodpressure_fit[2]
    nuts_idata = az.from_netcdf(tmp_path / "posterior_nuts.nc")
    posterior = nuts_idata.posterior
    assert set(posterior.data_vars) == {"mu", "beta", "lam", "omega", "theta"}
    assert posterior.sizes["chain"] == 2 and posterior.sizes["draw"] == 1000
    assert posterior.theta.dims == ("chain", "draw", "subject")
    np.testing.assert_array_equal(posterior.subject, gibbs_idata.posterior.subject)
    settings = json.loads(posterior.attrs["settings"])
    assert settings["seed"] == 1 and settings["divergences"] == 0
    gibbs, nuts = beta_moments(gibbs_idata), beta_moments(nuts_idata)
    for moment in ("mean", "sd"):
        allowed = Z * np.hypot(gibbs[f"mcse_{moment}"], nuts[f"mcse_{moment}"])
        assert abs(gibbs[moment] - nuts[moment]) < allowed, (moment, gibbs, nuts)


@pytest.mark.parametrize("options, message", [
    (["--dataset", "rail"], "--model brings its own data and priors; leave out --dataset"),
    (["--data", "x.csv"], "leave out --data"),
    (["--group", "school"], "leave out --group"),
    (["--value", "score"], "leave out --value"),
    (["--prior", "a=2"], "leave out --prior"),
    (["--engine", "all"], "with --model, --engine is gibbs"),
    (["--engine", "eb"], "with --model, --engine is gibbs"),
    (["--engine", "nutpie"], "or nuts (PyMC's NUTS on its PyMC model), not nutpie"),
    (["--draws", "0"], "draws must be an integer >= 1"),
    (["--chains", "0"], "chains must be an integer >= 1"),
])
def test_fit_model_refuses_in_one_line_with_exit_2(capsys, tmp_path, options, message):
    code, out, err = run(capsys, "fit", "--model", "bloodpressure", *options,
                         "--out", str(tmp_path))
    assert code == 2
    assert err.count("\n") == 1 and message in err and out == ""
    assert not list(tmp_path.glob("posterior_*.nc"))


def test_a_builtin_without_a_gibbs_engine_is_named(capsys, tmp_path, monkeypatch):
    monkeypatch.setitem(BUILTIN_MODELS, "cheese", BUILTIN_MODELS["cheese"]._replace(sample=None))
    code, _, err = run(capsys, "fit", "--model", "cheese", "--out", str(tmp_path))
    assert code == 2 and err.count("\n") == 1
    assert "the model cheese has no Gibbs engine" in err and "--engine nuts" in err


def test_an_unknown_model_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as stopped:
        main(["fit", "--model", "radon"])
    err = capsys.readouterr().err
    assert stopped.value.code == 2 and err.count("\n") == 1 and "invalid choice: 'radon'" in err


def test_fit_help_describes_model(capsys):
    with pytest.raises(SystemExit) as stopped:
        main(["fit", "--help"])
    assert stopped.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "--model NAME fit a built-in model on its own data and priors instead" in text
    assert f"({', '.join(BUILTIN_MODELS)})" in text
    assert "with --model: gibbs, the model's own Gibbs sampler, or nuts" in text
