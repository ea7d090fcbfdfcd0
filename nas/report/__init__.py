"""Reports of a run: a self-contained HTML page (`html.write_report`, plotly) and static figures
(`plots.plot_run`, matplotlib).

Both read only the run store (`nas.run.load_run`), so they work on any finished or running search.
plotly and matplotlib are imported when a report is drawn, never by `import nas.report`.
"""

from nas.report.html import ReportSummary, write_report
from nas.report.plots import KINDS, plot_run

__all__ = ["KINDS", "ReportSummary", "plot_run", "write_report"]
