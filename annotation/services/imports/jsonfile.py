"""Reading a whole JSON list file, keeping rows with bad text rejectable one by one."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from annotation.exceptions import ImportFileError


def load_json_list(path: Path) -> list[Any]:
    """The file's top-level list, loaded whole.

    Bytes that are not UTF-8 are kept as surrogate escapes so the row holding them is rejected
    on its own (``text_field`` refuses text that cannot be encoded) instead of the whole file.
    """
    try:
        text = path.read_bytes().decode("utf-8", errors="surrogateescape")
    except OSError as error:
        raise ImportFileError(f"{path} cannot be read: {error}") from error
    try:
        document = json.loads(text)
    except ValueError as error:
        raise ImportFileError(f"{path.name} is not valid JSON: {error}") from error
    if not isinstance(document, list):
        raise ImportFileError(
            f"{path.name} holds a JSON {type(document).__name__}; expected a list of rows"
        )
    return document
