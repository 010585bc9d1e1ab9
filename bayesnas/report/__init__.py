"""Report: a run loaded once, its figures, the architecture figure, the summary and index.html."""

from bayesnas.report.page import FORMATS, INDEX, Figure, make_figures, plot_run, write_index
from bayesnas.report.run import RunData, latest_calls, load_run, top_candidate
from bayesnas.report.summary import summary, summary_rows, summary_text

__all__ = [
    "FORMATS",
    "INDEX",
    "Figure",
    "RunData",
    "latest_calls",
    "load_run",
    "make_figures",
    "plot_run",
    "summary",
    "summary_rows",
    "summary_text",
    "top_candidate",
    "write_index",
]
