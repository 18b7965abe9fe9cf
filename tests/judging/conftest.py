"""Session-scoped tiny models for the judge engine tests: built once, loaded offline."""

import os
from pathlib import Path

import pytest

# Before transformers is imported anywhere: nothing may come from the hub in tests.
os.environ["HF_HUB_OFFLINE"] = "1"


@pytest.fixture(scope="session")
def tiny_qwen2vl_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("torch")
    import torch

    from judging.engine.testing import build_tiny_qwen2vl

    torch.manual_seed(0)
    return build_tiny_qwen2vl(tmp_path_factory.mktemp("tiny-qwen2vl"))


@pytest.fixture(scope="session")
def tiny_llava_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("torch")
    import torch

    from judging.engine.testing import build_tiny_llava

    torch.manual_seed(1)
    return build_tiny_llava(tmp_path_factory.mktemp("tiny-llava"))


@pytest.fixture(scope="session")
def tiny_model_paths(tiny_qwen2vl_path: Path, tiny_llava_path: Path) -> dict[str, Path]:
    return {"qwen2vl": tiny_qwen2vl_path, "llava": tiny_llava_path}


def _encoded_image(
    *,
    color: tuple[int, int, int] = (200, 30, 30),
    size: tuple[int, int] = (96, 64),
    fmt: str = "PNG",
) -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format=fmt)
    return buffer.getvalue()


@pytest.fixture(scope="session")
def make_image():
    """Encoded image bytes: make_image(color=..., size=..., fmt="PNG"|"JPEG"|"WEBP"|"GIF")."""
    return _encoded_image
