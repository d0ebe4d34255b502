"""Reports: the summary table (terminal and markdown), report.md and its charts."""

from .markdown import write_report
from .tables import print_summary, summary_markdown

__all__ = ["print_summary", "summary_markdown", "write_report"]
