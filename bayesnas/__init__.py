"""bayesnas: posterior-guided one-shot neural architecture search as a Pyro program.

The flow: data -> super-network (``bayesnas.spaces``) -> Pyro model (``bayesnas.models``) and
variational-dropout guide (``bayesnas.guides``) -> SVI search (``bayesnas.search``) ->
posterior.pt in a run directory.
"""

__version__ = "0.1.0"
