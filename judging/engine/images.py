"""Image validation with Pillow before anything reaches a model processor."""

from __future__ import annotations

import io
import math
import warnings

from PIL import Image

from .types import ImageRejected

ALLOWED_FORMATS = ("JPEG", "PNG", "WEBP", "GIF")
# Far above any real SPA-VL image (a few megapixels), far below what exhausts a worker's memory.
MAX_SOURCE_PIXELS = 40_000_000


def decode_image(data: bytes, *, max_source_pixels: int = MAX_SOURCE_PIXELS) -> Image.Image:
    """Decode, check and fully load an image as RGB (first frame of a GIF).

    Raises ImageRejected for anything unreadable, of another format, or too large. The pixel
    limit is checked from the header before decoding, and Pillow's own bomb warning is an error
    here only (the global `Image.MAX_IMAGE_PIXELS` is left alone for other code).
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS)
            width, height = image.size
            if width * height > max_source_pixels:
                raise ImageRejected(f"image too large: {width}x{height} pixels")
            image.seek(0)
            image.load()
            return image.convert("RGB")
    except ImageRejected:
        raise
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombWarning) as exc:
        # Pillow reports truncated and corrupt files through all of these.
        raise ImageRejected(f"unreadable image ({type(exc).__name__})") from exc


def cap_pixels(image: Image.Image, *, max_pixels: int) -> Image.Image:
    """Downscale (keeping the aspect ratio) so the image has at most `max_pixels` pixels."""
    width, height = image.size
    if width * height <= max_pixels:
        return image
    scale = math.sqrt(max_pixels / (width * height))
    size = (max(1, math.floor(width * scale)), max(1, math.floor(height * scale)))
    return image.resize(size, Image.Resampling.BICUBIC)
