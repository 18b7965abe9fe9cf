"""The export's domain errors (kept with the export package; both are DomainErrors)."""

from annotation.exceptions import DomainError


class ExportDefinitionError(DomainError):
    """An export definition is invalid: unknown label or format, bad ratios, unreadable file."""


class ExportError(DomainError):
    """An export job cannot run, or its output directory is not usable."""


class ExportClaimLost(ExportError):
    """Another worker took the job over after this one's lease lapsed; this one must stop."""
