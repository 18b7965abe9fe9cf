"""An image column's value as image bytes, whatever form a dataset gives it.

An embedded ``{bytes, path}`` struct (the ``datasets`` Image feature; a struct with only a path
names a file), plain bytes, base64 text (a ``data:image/...;base64,`` URI, or any text when the
column is declared base64), or a path under the image root (an absolute path only inside it,
as ``datasets`` loaders write them); a list of one image is that image. Base64 is measured
before it is decoded, so no text above what the largest allowed image takes is ever decoded.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from django.conf import settings

from annotation.exceptions import RowRejected
from annotation.services.imports.rows import read_image_file

_DATA_URI = re.compile(r"data:image/[A-Za-z0-9.+-]+;base64,", re.ASCII)
_SPACE = re.compile(r"\s+")


class ImageValues:
    """One row's image bytes and name from the mapped column, whatever form it takes."""

    def __init__(self, *, column: str, root: Path, base64: bool) -> None:
        self.column = column
        self.root = root
        self.base64 = base64

    def load(self, record: Mapping[str, Any]) -> tuple[bytes, str]:
        value = record.get(self.column)
        if isinstance(value, list):
            if len(value) != 1:
                raise RowRejected(f"field {self.column!r} holds {len(value)} images, not one")
            value = value[0]
        if value is None or value == b"" or value == "":
            raise RowRejected(f"missing image in field {self.column!r}")
        if isinstance(value, dict):
            return self._struct(value)
        if isinstance(value, bytes):
            return (_decode_base64(value.decode("ascii", "replace")) if self.base64 else value), ""
        if isinstance(value, str):
            return self._text(value)
        raise RowRejected(f"image is a {type(value).__name__}, not bytes, text or a struct")

    def _struct(self, value: Mapping[str, Any]) -> tuple[bytes, str]:
        data, name = value.get("bytes"), value.get("path")
        name = name if isinstance(name, str) else ""
        if isinstance(data, bytes) and data:
            return (_decode_base64(data.decode("ascii", "replace")) if self.base64 else data), name
        if isinstance(data, str) and data:  # JSON cannot hold bytes: text there is base64
            return self._text(data, path=False)[0], name
        if name:
            return self._file(name), name
        raise RowRejected(f"image in field {self.column!r} has neither bytes nor a path")

    def _text(self, value: str, *, path: bool = True) -> tuple[bytes, str]:
        uri = _DATA_URI.match(value)
        if uri:
            return _decode_base64(value[uri.end() :]), ""
        if self.base64 or not path:
            return _decode_base64(value), ""
        return self._file(value), value

    def _file(self, name: str) -> bytes:
        pure = PurePosixPath(name)
        if pure.is_absolute():
            # Absolute paths inside the image root are what ``datasets`` loaders write.
            for base in (self.root.as_posix(), self.root.resolve().as_posix()):
                if pure.is_relative_to(base):
                    return read_image_file(root=self.root, relative=str(pure.relative_to(base)))
        return read_image_file(root=self.root, relative=name)


def _decode_base64(text: str) -> bytes:
    limit = settings.IMAGE_MAX_BYTES
    if len(text) > (limit + 2) // 3 * 4 + 4096:  # room for line breaks
        raise RowRejected(f"image is about {len(text) * 3 // 4} bytes of base64, above {limit}")
    try:
        data = base64.b64decode(_SPACE.sub("", text), validate=True)
    except (binascii.Error, ValueError) as error:
        raise RowRejected(f"image is not valid base64: {error}") from error
    if not data:
        raise RowRejected("image is empty base64")
    return data
