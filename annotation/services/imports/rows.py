"""What every reader yields: a parsed row or a rejected one, plus the checks readers share.

Readers never touch the database except through :class:`TaxonomyResolver`; the writer in
``core.py`` does all the writing, so the per-row rules live in one place.
"""

from __future__ import annotations

import functools
import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from django.conf import settings

from annotation.exceptions import RowRejected
from annotation.models import QuestionType, TaxonomyNode, text_digest
from annotation.services.imports.files import open_regular
from annotation.services.taxonomy import subcategory_index

MODEL_NAME_MAX = 200


@dataclass
class ImportRow:
    """One good row: an image, its question and zero, one or two responses.

    With ``is_pair`` the two responses make a pair: (chosen, rejected) as the source decided, or,
    without ``pair_labelled``, two responses nobody has compared yet. ``source_id`` and
    ``provenance`` (the source's other columns, JSON-ready) go on the pair, or on the question
    of a row that makes none.
    """

    number: int
    image: bytes
    image_name: str
    question: str
    subcategory_id: int | None
    question_type: str = QuestionType.UNKNOWN
    responses: tuple[tuple[str, str], ...] = ()  # (model name, text)
    is_pair: bool = False
    pair_labelled: bool = True
    image_is_placeholder: bool = False
    source_id: str = ""
    provenance: dict[str, Any] = field(default_factory=dict)
    image_sha256: str = field(init=False)
    question_sha256: str = field(init=False)
    response_keys: tuple[tuple[str, str], ...] = field(init=False)  # (model name, text SHA-256)

    def __post_init__(self) -> None:
        self.image_sha256 = hashlib.sha256(self.image).hexdigest()
        self.question_sha256 = text_digest(self.question)
        self.response_keys = tuple((model, text_digest(text)) for model, text in self.responses)
        if self.is_pair and self.response_keys[0] == self.response_keys[1]:
            raise RowRejected("the pair's two responses are the same response")


@dataclass(frozen=True)
class BadRow:
    number: int
    reason: str


@dataclass(frozen=True)
class NewImage:
    """An image a chunk stores for the first time, already checked with Pillow."""

    sha256: str
    data: bytes
    format: str
    width: int
    height: int
    dhash: int
    source_name: str
    is_placeholder: bool


def require_record(value: Any) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise RowRejected(f"row is a JSON {type(value).__name__}, not an object")
    return value


def text_field(record: Mapping[str, Any], name: str, *, allow_empty: bool = True) -> str:
    """A text value kept exactly as given, or RowRejected with the reason."""
    if name not in record or record[name] is None:
        raise RowRejected(f"missing field {name!r}")
    value = record[name]
    if isinstance(value, bytes):
        try:
            value = value.decode("utf-8")
        except UnicodeDecodeError as error:
            raise RowRejected(f"field {name!r} is not valid UTF-8") from error
    if not isinstance(value, str):
        raise RowRejected(f"field {name!r} is a {type(value).__name__}, not text")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as error:
        # JSON read with surrogateescape, or a lone "\ud800" escape: not valid UTF-8 text.
        raise RowRejected(f"field {name!r} is not valid UTF-8") from error
    if "\x00" in value:
        raise RowRejected(f"field {name!r} contains a NUL character")
    if not allow_empty and not value.strip():
        raise RowRejected(f"field {name!r} is empty")
    return value


def optional_text(record: Mapping[str, Any], name: str, default: str = "") -> str:
    return text_field(record, name) if record.get(name) is not None else default


def model_name_field(record: Mapping[str, Any], default: str) -> str:
    name = optional_text(record, "model", default)
    if len(name) > MODEL_NAME_MAX:
        raise RowRejected(f"model name is longer than {MODEL_NAME_MAX} characters")
    return name


def question_type_field(record: Mapping[str, Any]) -> str:
    value = optional_text(record, "question_type", QuestionType.UNKNOWN) or QuestionType.UNKNOWN
    if value not in QuestionType.values:
        raise RowRejected(f"unknown question_type {value!r} (easy, hardq, hards or unknown)")
    return value


class TaxonomyResolver:
    """Dataset strings -> live subcategory id, matched byte for byte."""

    def __init__(self) -> None:
        self._live = {keys: node.pk for keys, node in subcategory_index().items()}
        retired = TaxonomyNode.objects.subcategories().filter(retired_at__isnull=False)
        self._retired = {node.class_keys() for node in retired.with_paths()}

    def resolve(self, class1: str, class2: str, class3: str) -> int:
        keys = (class1, class2, class3)
        if keys in self._live:
            return self._live[keys]
        if keys in self._retired:
            raise RowRejected(f"taxonomy node {' / '.join(keys)} is retired")
        raise RowRejected(f"unknown taxonomy {' / '.join(keys)!r}")

    def resolve_record(self, record: Mapping[str, Any]) -> int:
        return self.resolve(*(text_field(record, f"class{n}") for n in (1, 2, 3)))

    def from_image_path(self, name: str) -> int | None:
        """A ``class1/class2/class3/N.jpg`` path names its subcategory; other shapes name none."""
        parts = _path_parts(name)
        if len(parts) != 4:
            return None
        return self.resolve(parts[0], parts[1], parts[2])


def _path_parts(name: str) -> tuple[str, ...]:
    """``PurePosixPath(name).parts``; the folder's parts are cached, as most rows share few."""
    head, _, tail = name.rpartition("/")
    return _folder_parts(head) + ((tail,) if tail not in ("", ".") else ())


@functools.lru_cache(maxsize=4096)
def _folder_parts(head: str) -> tuple[str, ...]:
    return PurePosixPath(head).parts


def read_image_file(*, root: Path, relative: str) -> bytes:
    """Bytes of an image under ``root``; paths escaping it (``..``, absolute, symlinks) refused,
    and so is anything but a regular file (a FIFO would block the import for ever)."""
    if not relative:
        raise RowRejected("empty image path")
    pure = PurePosixPath(relative)
    if pure.is_absolute() or Path(relative).is_absolute() or ".." in pure.parts:
        raise RowRejected(f"image path {relative!r} leaves the image root")
    base = root.resolve()
    target = (base / relative).resolve()
    if not target.is_relative_to(base):
        raise RowRejected(f"image path {relative!r} leaves the image root")
    limit = settings.IMAGE_MAX_BYTES
    try:
        with open_regular(target) as handle:
            size = os.fstat(handle.fileno()).st_size
            # One byte past the limit at most, in case the file grew since fstat.
            data = handle.read(limit + 1) if size <= limit else b""
    except FileNotFoundError as error:
        raise RowRejected(f"image file {relative!r} not found") from error
    except OSError as error:
        raise RowRejected(f"image file {relative!r} cannot be read: {error}") from error
    if max(size, len(data)) > limit:
        raise RowRejected(f"image is {max(size, len(data))} bytes, above {limit}")
    return data


def chosen_rejected(record: Mapping[str, Any]) -> tuple[tuple[str, str], tuple[str, str]]:
    """The source's (chosen, rejected) responses; their models are unknown."""
    return ("", text_field(record, "chosen")), ("", text_field(record, "rejected"))
