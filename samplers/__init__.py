"""Hand-derived inference: the Gibbs sampler, empirical Bayes, and the exact posterior.

Imports `models`; never imports PyMC.
"""
