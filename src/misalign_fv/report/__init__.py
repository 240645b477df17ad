"""The study report: tables, figures and report.md/report.html built from the workflow's results.

The report rule calls :func:`build_report`; every input problem raises :class:`ReportInputError`.
"""

from misalign_fv.report.build import build_report
from misalign_fv.report.load import ReportInputError

__all__ = ["ReportInputError", "build_report"]
