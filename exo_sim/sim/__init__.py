"""The SimPy timed model: the decision core driven by simulated time (``exo-sim``).

* :mod:`~exo_sim.sim.settings` checks ``cfg.sim`` and resolves it;
* :mod:`~exo_sim.sim.links` holds the links between tiers as SimPy resources, with routes;
* :mod:`~exo_sim.sim.arrivals` holds the arrival processes (open and closed loop), in a registry;
* :mod:`~exo_sim.sim.model` is the timed model itself (moves -> transfers, recompute, codecs);
* :mod:`~exo_sim.sim.run` runs a composed config and builds the common result schema.
"""

from exo_sim.sim.run import SimResult, run_sim

__all__ = ["SimResult", "run_sim"]
