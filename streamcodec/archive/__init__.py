"""Offline archival: batch, resumable, verifiable encoding of footage folders (see `run`, `verify`)."""

from .catalogue import Catalogue
from .restore import RestoreReport, restore
from .run import ArchiveOptions, RunSummary, archive
from .verify import VerifyReport, verify

__all__ = ["ArchiveOptions", "Catalogue", "RestoreReport", "RunSummary", "VerifyReport", "archive", "restore", "verify"]
