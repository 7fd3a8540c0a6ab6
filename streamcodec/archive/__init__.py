"""Offline archival: batch, resumable, verifiable encoding of footage folders (see `run`, `verify`)."""

from .catalogue import Catalogue
from .restore import RestoreReport, restore
from .run import ArchiveOptions, RunSummary, archive
from .thin import ThinReport, thin_archive
from .verify import VerifyReport, verify

__all__ = [
    "ArchiveOptions",
    "Catalogue",
    "RestoreReport",
    "RunSummary",
    "ThinReport",
    "VerifyReport",
    "archive",
    "restore",
    "thin_archive",
    "verify",
]
