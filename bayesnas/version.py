"""The package's version, in a module of its own so that any stage can record it without
importing the package's top level (which imports ``export`` on demand)."""

__version__ = "0.1.0"
