"""Evidence that hand-derived inference is right: the checks, the mutants they must catch, and the
`hiercheck` command. `check_sampler`, `detection_matrix` and `Verdict` (from
`hiercheck.validation.suite`), `check_gibbs` (from `hiercheck.validation.generic`, any PyMC
model) and `power_study` (from `hiercheck.validation.power`) load on first use, so the command starts without importing the numerical stack.
"""

_SUITE = ("check_sampler", "detection_matrix", "Verdict")
_GENERIC = ("check_gibbs",)
_POWER = ("power_study",)

__all__ = list(_SUITE + _GENERIC + _POWER)


def __getattr__(name: str) -> object:
    if name in _SUITE:
        from . import suite
        return getattr(suite, name)
    if name in _GENERIC:
        from . import generic
        return getattr(generic, name)
    if name in _POWER:
        from . import power
        return getattr(power, name)
    raise AttributeError(f"module 'hiercheck.validation' has no attribute {name!r}")
