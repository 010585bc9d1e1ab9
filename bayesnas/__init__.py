"""bayesnas: posterior-guided one-shot neural architecture search as a Pyro program.

The flow, one folder or module per stage: data (``bayesnas.data``) -> super-network
(``bayesnas.spaces``) -> Pyro model (``bayesnas.models``) and variational-dropout guide
(``bayesnas.guides``), joined in ``bayesnas.program`` -> SVI search (``bayesnas.search``) ->
posterior.pt -> draws and ranking (``bayesnas.selection``) -> export (``bayesnas.export``) ->
figures and summary (``bayesnas.report``). docs/architecture.md has the map.
"""

from typing import TYPE_CHECKING, Any

from bayesnas.version import __version__

if TYPE_CHECKING:
    from bayesnas.export import load_exported

__all__ = ["__version__", "load_exported"]


def __getattr__(name: str) -> Any:
    """Import ``load_exported`` on first use, so that ``import bayesnas`` stays light."""
    if name == "load_exported":
        from bayesnas.export import load_exported

        return load_exported
    raise AttributeError(f"module 'bayesnas' has no attribute {name!r}")
