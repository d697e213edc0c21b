"""holefill: a code-completion language server for Python."""

__version__ = "0.1.0"
