"""The column mapping of an hf-parquet import: which of a dataset's columns holds what.

Written ``key=column,key=column`` (``--map`` on the command line; the API takes the same text
or the parsed dict). Spaces around keys and columns are dropped; a column whose name holds a
comma or an equals sign cannot be mapped. Exactly one kind of responses is mapped:

- ``chosen`` and ``rejected`` (with ``chosen_model``, ``rejected_model``): a labelled pair;
- ``response_a`` and ``response_b`` (with ``model_a``, ``model_b``): a pair nobody compared yet;
- ``completions``: a list column of several responses (each element a struct whose
  ``completion_text`` field holds the text, ``response`` unless named, and whose
  ``completion_model`` field the model, ``model`` unless named; or plain text); its responses
  are paired later by ``make_pairs``;
- ``response`` (with ``model``): one response per row.

Besides ``image`` and ``question`` (both required): ``id`` (the source's id), ``class1``,
``class2`` and ``class3`` (the SPA-VL taxonomy, byte for byte) or ``category`` (the dataset's
own, through a taxonomy map), ``question_type``, and the option ``image_encoding=base64`` (image
text is base64 even without a ``data:image/...;base64,`` prefix). Every column not mapped is
kept as provenance.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from annotation.exceptions import ImportFileError

RESPONSE_SHAPES: dict[str, tuple[str, ...]] = {
    "labelled": ("chosen", "rejected"),
    "unlabelled": ("response_a", "response_b"),
    "completions": ("completions",),
    "single": ("response",),
}
# Each model column belongs to a response key, each completion field to ``completions``.
COMPANIONS = {
    "chosen_model": "chosen",
    "rejected_model": "rejected",
    "model_a": "response_a",
    "model_b": "response_b",
    "model": "response",
    "completion_text": "completions",
    "completion_model": "completions",
}
CLASSES = ("class1", "class2", "class3")
OTHER_COLUMNS = ("image", "question", "id", "category", "question_type", *CLASSES)
FIELD_KEYS = ("completion_text", "completion_model")  # fields inside an element, not columns
OPTION_VALUES = {"image_encoding": ("base64",)}
KEYS = (
    *OTHER_COLUMNS,
    *(key for shape in RESPONSE_SHAPES.values() for key in shape),
    *COMPANIONS,
    *OPTION_VALUES,
)
COMPLETION_DEFAULTS = {"completion_text": "response", "completion_model": "model"}


def parse_column_map(text: str) -> dict[str, str]:
    """``key=column,...`` as a dict, checked by :func:`check_column_map`."""
    mapping: dict[str, str] = {}
    for part in text.split(","):
        if not part.strip():
            continue
        key, equals, column = (piece.strip() for piece in part.partition("="))
        if not equals or not key or not column:
            raise ImportFileError(f"column map: {part.strip()!r} is not key=column")
        if key in mapping:
            raise ImportFileError(f"column map: {key!r} is mapped twice")
        mapping[key] = column
    return check_column_map(mapping)


def check_column_map(mapping: Mapping[str, str]) -> dict[str, str]:
    """The mapping as a plain dict, or ImportFileError saying what is wrong with it."""
    unknown = [key for key in mapping if key not in KEYS]
    if unknown:
        raise ImportFileError(
            f"column map: unknown key {', '.join(map(repr, unknown))}; use {', '.join(KEYS)}"
        )
    _check_values(mapping)
    _check_shape(mapping)
    _check_companions(mapping)
    _check_taxonomy(mapping)
    _check_reuse(mapping)
    return dict(mapping)


def _check_values(mapping: Mapping[str, str]) -> None:
    for key, value in mapping.items():
        if not isinstance(value, str) or not value.strip():
            raise ImportFileError(f"column map: {key!r} names no column")
    for key, allowed in OPTION_VALUES.items():
        if key in mapping and mapping[key] not in allowed:
            raise ImportFileError(f"column map: {key} is {' or '.join(allowed)}")
    missing = [key for key in ("image", "question") if key not in mapping]
    if missing:
        raise ImportFileError(f"column map: map {' and '.join(missing)} (key=column)")


def _check_shape(mapping: Mapping[str, str]) -> None:
    shapes = [name for name, keys in RESPONSE_SHAPES.items() if any(k in mapping for k in keys)]
    if not shapes:
        raise ImportFileError(
            "column map: map the responses: chosen and rejected (a labelled pair), response_a"
            " and response_b (an unlabelled pair), completions (a list of responses) or response"
        )
    if len(shapes) > 1:
        mapped = [k for name in shapes for k in RESPONSE_SHAPES[name] if k in mapping]
        raise ImportFileError(f"column map: map one kind of responses, not {', '.join(mapped)}")
    lacking = [key for key in RESPONSE_SHAPES[shapes[0]] if key not in mapping]
    if lacking:
        raise ImportFileError(f"column map: a pair needs {' and '.join(lacking)} too")


def _check_companions(mapping: Mapping[str, str]) -> None:
    for key, owner in COMPANIONS.items():
        if key in mapping and owner not in mapping:
            raise ImportFileError(f"column map: {key} needs {owner}")


def _check_taxonomy(mapping: Mapping[str, str]) -> None:
    classes = [key for key in CLASSES if key in mapping]
    if classes and len(classes) < len(CLASSES):
        raise ImportFileError("column map: map class1, class2 and class3 together")
    if classes and "category" in mapping:
        raise ImportFileError("column map: map class1-3 or category, not both")


def _check_reuse(mapping: Mapping[str, str]) -> None:
    """One column for two texts would make every pair one response twice; models may share."""
    seen: dict[str, str] = {}
    for key, column in mapping.items():
        if key in FIELD_KEYS or key in OPTION_VALUES or key in COMPANIONS:
            continue
        if column in seen:
            raise ImportFileError(f"column map: {column!r} is mapped twice ({seen[column]}, {key})")
        seen[column] = key


@dataclass(frozen=True)
class ColumnMap:
    """A checked mapping, with what the reader asks of it."""

    keys: Mapping[str, str]

    @classmethod
    def of(cls, mapping: Mapping[str, str]) -> ColumnMap:
        return cls(keys=check_column_map(mapping))

    @property
    def shape(self) -> str:
        return next(name for name, keys in RESPONSE_SHAPES.items() if keys[0] in self.keys)

    @property
    def base64_images(self) -> bool:
        return self.keys.get("image_encoding") == "base64"

    def get(self, key: str) -> str | None:
        return self.keys.get(key)

    def completion_field(self, key: str) -> str:
        return self.keys.get(key, COMPLETION_DEFAULTS[key])

    def columns(self) -> dict[str, str]:
        """Column -> key for every key naming a column of the file."""
        return {
            column: key
            for key, column in self.keys.items()
            if key not in FIELD_KEYS and key not in OPTION_VALUES
        }

    def check_columns(self, available: Sequence[str], *, where: str) -> None:
        """ImportFileError naming the mapped columns ``where`` (a file, a first line) lacks."""
        missing = [f"{c} ({key})" for c, key in self.columns().items() if c not in available]
        if missing:
            raise ImportFileError(
                f"{where} lacks the mapped columns {', '.join(missing)}; "
                f"it has {', '.join(available) or 'no columns'}"
            )

    def check_completion_fields(self, fields: Sequence[str] | None, *, where: str) -> None:
        """The completions' element fields (None: plain text) hold what the map names."""
        named = [key for key in FIELD_KEYS if key in self.keys]
        column = self.keys["completions"]
        if fields is None:
            if named:
                raise ImportFileError(
                    f"{where}: {column!r} is a list of text; {' and '.join(named)} do not apply"
                )
            return
        text = self.completion_field("completion_text")
        wanted = [text] + [self.keys[k] for k in named if k != "completion_text"]
        missing = [field for field in wanted if field not in fields]
        if missing:
            hint = "" if "completion_text" in named else " (name it with completion_text=FIELD)"
            raise ImportFileError(
                f"{where}: the elements of {column!r} lack {', '.join(missing)}{hint}; "
                f"they have {', '.join(fields) or 'no fields'}"
            )
