"""The package's exceptions and warnings, in one place.

Everything about a user's input (data, priors, settings, a user's function that returns the wrong
thing) raises a subclass of `HiercheckError`, itself a `ValueError`; the `hiercheck` command turns
it into one line and exit code 2. Any other exception is a bug in the package. Results that should
not be trusted blindly (NUTS' divergences, an optimizer that stopped short) are warnings of
`HiercheckWarning`'s classes, never silent flags.
"""

from __future__ import annotations

__all__ = [
    "ConjugacyError", "ConvergenceWarning", "DataError", "HiercheckError", "HiercheckWarning", "NutsWarning",
    "PriorError", "QuadratureError", "SettingsError", "StoreMismatchError", "UserFunctionError", "DivergenceError",
    "require_integer",
]


class HiercheckError(ValueError):
    """Input the package cannot work with; the message is one line naming the problem and where."""


class DataError(HiercheckError):
    """Input that cannot be a data set (a file, a column, a value, a design)."""


class PriorError(HiercheckError):
    """A prior setting that is not a number, or a prior under which the posterior is improper."""


class SettingsError(HiercheckError):
    """A setting a run cannot use: an unknown engine, scheme, method or check, a bad run length."""


class ConjugacyError(SettingsError):
    """A block that is not conjugate where it is asked to be: `auto_gibbs` on a model with a
    non-conjugate block, or a state at which a recognized conditional fails its verification.
    """


class UserFunctionError(HiercheckError):
    """A user's function (a draw function, a likelihood) returned something that cannot be right:
    the wrong shape or type, NaN or infinity, a non-positive precision.
    """


class DivergenceError(UserFunctionError):
    """A chain of the user's sweep left the model's support or overflowed: a function returned a
    value that is not finite, or failed (or the model's simulation of the observations failed)
    at a state that earlier draws had carried past what the model makes plausible. Evidence
    against the sweep: the check in which it happened fails, naming the function whose output
    first left that range.
    """


class QuadratureError(HiercheckError):
    """The exact posterior cannot be resolved on a grid for these data and priors."""


class StoreMismatchError(HiercheckError):
    """A folder holds a saved run with other settings; resuming it would mix two experiments."""


class HiercheckWarning(UserWarning):
    """A result that was computed but should not be trusted blindly."""


class NutsWarning(HiercheckWarning):
    """NUTS finished, but its diagnostics (divergences, r_hat) say not to trust it blindly."""


class ConvergenceWarning(HiercheckWarning):
    """An optimizer stopped before its convergence criterion was met."""


def require_integer(name: str, value: object, least: int = 1) -> int:
    """`value` as an int, or a `SettingsError` naming `name` unless it is an integer >= `least`.

    Parameters
    ----------
    name : str
        How the user knows the setting (an argument or an option), for the message.
    value : object
        The setting as given.
    least : int, default 1
        The smallest value allowed.

    Returns
    -------
    int
        The setting.

    Raises
    ------
    SettingsError
        If `value` is not an integer (bools are not) or is below `least`.
    """
    import numpy as np

    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < least:
        raise SettingsError(f"{name} must be an integer >= {least}, got {value!r}")
    return int(value)
