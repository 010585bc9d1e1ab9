"""The SVI search: ``run_search`` (run.py) drives a ``Searcher`` (searcher.py, on the step loop
of ``bayesnas/loop.py``) through its schedules (schedule.py), saved state (state.py), reported
metrics (metrics.py), per-step log (steplog.py) and, under torchrun, the data-parallel
reductions (parallel.py); these take the search's fixed parts (setup.py) and where it stands
(``LoopState``), not the Searcher."""

from bayesnas.search.metrics import NO_MODE, has_mode
from bayesnas.search.run import check_start, run_search
from bayesnas.search.schedule import PRUNED_LOGIT, cosine
from bayesnas.search.searcher import Searcher
from bayesnas.search.state import restore_threads

__all__ = [
    "NO_MODE",
    "PRUNED_LOGIT",
    "Searcher",
    "check_start",
    "cosine",
    "has_mode",
    "restore_threads",
    "run_search",
]
