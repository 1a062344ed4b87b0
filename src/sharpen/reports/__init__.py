"""Reports are built only from run directories: tables (Markdown, CSV) and PNG figures."""

from sharpen.reports.report import summarize, write_report
from sharpen.reports.tables import table_rows

__all__ = ["summarize", "table_rows", "write_report"]
