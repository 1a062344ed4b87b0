"""Reports are built only from run directories: tables (Markdown, CSV) and PNG figures."""

from sharpen.reports.report import summarize, table_rows, write_report

__all__ = ["summarize", "table_rows", "write_report"]
