"""The export specification: a definition frozen into plain, validated, JSON-able values."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from annotation.models import ExportDefinition, ExportFormat, FinalLabel, QuestionType
from annotation.services.export.errors import ExportDefinitionError

DECIDING_LABELS = (
    FinalLabel.IMPORTED,
    FinalLabel.JUDGE_ONLY,
    FinalLabel.CONFIRMED,
    FinalLabel.FLIPPED,
    FinalLabel.ADJUDICATED,
)
SPLITS = ("train", "validation", "test")
SEPARATE_MODES = ("exclude", "separate")


@dataclass(frozen=True, kw_only=True)
class ExportSpec:
    name: str = "all-labelled"
    final_labels: tuple[str, ...] = tuple(str(label) for label in DECIDING_LABELS)
    min_judge_confidence: float | None = None
    judge_configuration_id: int | None = None
    taxonomy_keys: tuple[str, ...] = ()
    question_types: tuple[str, ...] = ()
    exclude_flagged: bool = False
    tie_mode: str = "exclude"
    both_unsafe_mode: str = "exclude"
    ratios: dict[str, float] = field(
        default_factory=lambda: {"train": 0.8, "validation": 0.1, "test": 0.1}
    )
    split_seed: int = 0
    near_duplicate_distance: int = 4
    formats: tuple[str, ...] = (str(ExportFormat.SPAVL_PARQUET),)
    include_provenance: bool = False
    # rlhf-json: the absolute folder the tars will be unpacked into, so that the data configs
    # name absolute paths; empty: paths relative to that folder, where the commands run.
    rlhf_data_root: str = ""

    def __post_init__(self) -> None:
        _check_subset("final_labels", self.final_labels, [str(x) for x in DECIDING_LABELS])
        _check_subset("question_types", self.question_types, QuestionType.values)
        _check_subset("formats", self.formats, ExportFormat.values)
        _check_subset("tie_mode", (self.tie_mode, self.both_unsafe_mode), SEPARATE_MODES)
        if sorted(self.ratios) != sorted(SPLITS) or any(r < 0 for r in self.ratios.values()):
            raise ExportDefinitionError("ratios need train, validation and test, none negative")
        if sum(self.ratios.values()) <= 0:
            raise ExportDefinitionError("the split ratios add up to zero")
        if self.min_judge_confidence is not None and not 0.5 <= self.min_judge_confidence <= 1:
            raise ExportDefinitionError("min_judge_confidence must be between 0.5 and 1")
        if not 0 <= self.near_duplicate_distance <= 16:
            raise ExportDefinitionError("near_duplicate_distance must be between 0 and 16")
        if not _is_data_root(self.rlhf_data_root):
            raise ExportDefinitionError("rlhf_data_root must be empty or an absolute path")

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        return {
            key: list(value) if isinstance(value, tuple) else value for key, value in data.items()
        }

    @property
    def separate_labels(self) -> tuple[str, ...]:
        """Non-deciding labels written to their own file instead of being dropped."""
        modes = {FinalLabel.TIE: self.tie_mode, FinalLabel.BOTH_UNSAFE: self.both_unsafe_mode}
        return tuple(str(label) for label, mode in modes.items() if mode == "separate")


def _is_data_root(root: object) -> bool:
    """Empty, or an absolute path without control characters (the card puts it in commands)."""
    return isinstance(root, str) and (not root or (root.startswith("/") and root.isprintable()))


def _check_subset(name: str, values: tuple[str, ...], allowed: Any) -> None:
    unknown = sorted(set(values) - set(allowed))
    if unknown:
        raise ExportDefinitionError(f"{name}: unknown value(s) {', '.join(unknown)}")


def spec_from_json(data: dict[str, Any]) -> ExportSpec:
    """Build a spec from a snapshot or a JSON definition file; unknown keys are an error."""
    known = set(ExportSpec.__dataclass_fields__)
    unknown = sorted(set(data) - known)
    if unknown:
        raise ExportDefinitionError(f"unknown definition key(s): {', '.join(unknown)}")
    values: dict[str, Any] = {
        key: tuple(value) if isinstance(value, list) else value for key, value in data.items()
    }
    try:
        return ExportSpec(**values)
    except TypeError as error:
        raise ExportDefinitionError(str(error)) from error


def spec_from_definition(definition: ExportDefinition) -> ExportSpec:
    return ExportSpec(
        name=definition.name,
        final_labels=tuple(definition.final_labels),
        min_judge_confidence=definition.min_judge_confidence,
        judge_configuration_id=definition.judge_configuration_id,
        taxonomy_keys=tuple(definition.taxonomy_keys),
        question_types=tuple(definition.question_types),
        exclude_flagged=definition.exclude_flagged,
        tie_mode=definition.tie_mode,
        both_unsafe_mode=definition.both_unsafe_mode,
        ratios={
            "train": definition.train_ratio,
            "validation": definition.validation_ratio,
            "test": definition.test_ratio,
        },
        split_seed=definition.split_seed,
        near_duplicate_distance=definition.near_duplicate_distance,
        formats=tuple(definition.formats),
        include_provenance=definition.include_provenance,
    )


def load_spec(*, name_or_path: str | None) -> tuple[ExportSpec, ExportDefinition | None]:
    """A saved definition by name, a JSON definition file, or (None) the default spec."""
    if not name_or_path:
        return ExportSpec(), None
    definition = ExportDefinition.objects.filter(name=name_or_path).first()
    if definition is not None:
        return spec_from_definition(definition), definition
    path = Path(name_or_path)
    if not path.is_file():
        raise ExportDefinitionError(f"no export definition or JSON file named {name_or_path!r}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ExportDefinitionError(f"cannot read {path}: {error}") from error
    if not isinstance(data, dict):
        raise ExportDefinitionError(f"{path} must hold a JSON object")
    return spec_from_json(data), None
