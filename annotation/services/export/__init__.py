"""Dataset export: definitions frozen into specs, split plans, writers per format, jobs.

Public entry points: ``create_export_job``, ``start_export_job``, ``run_export_job``,
``load_spec``, ``select_export_pairs``, ``export_agreement_figures`` (the card's hook).
"""

from annotation.services.export.card import export_agreement_figures
from annotation.services.export.errors import (
    ExportClaimLost,
    ExportDefinitionError,
    ExportError,
)
from annotation.services.export.jobs import create_export_job, run_export_job, start_export_job
from annotation.services.export.plan import select_export_pairs
from annotation.services.export.spec import ExportSpec, load_spec, spec_from_definition

__all__ = [
    "ExportClaimLost",
    "ExportDefinitionError",
    "ExportError",
    "ExportSpec",
    "create_export_job",
    "export_agreement_figures",
    "load_spec",
    "run_export_job",
    "select_export_pairs",
    "spec_from_definition",
    "start_export_job",
]
