"""Offline archival: batch, resumable, verifiable encoding of footage folders (see `run`, `verify`)."""

from .catalogue import Catalogue
from .run import ArchiveOptions, RunSummary, archive
from .verify import VerifyReport, restore, verify

__all__ = ["ArchiveOptions", "Catalogue", "RunSummary", "VerifyReport", "archive", "restore", "verify"]
