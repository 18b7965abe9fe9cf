"""Image intake: validate untrusted bytes with Pillow, then store each image once by content."""

from __future__ import annotations

import hashlib
import io
import warnings

import PIL.Image
from django.conf import settings
from django.db import IntegrityError, transaction

from annotation.exceptions import ImageRejected
from annotation.models import Image

DHASH_SIZE = 8


def _difference_hash(picture: PIL.Image.Image) -> int:
    """64-bit dHash: compares neighbouring pixels of a 9x8 greyscale thumbnail.

    Near-duplicate images (re-encoded, resized) differ in a few bits; returned signed so it fits
    a bigint column.
    """
    small = picture.convert("L").resize((DHASH_SIZE + 1, DHASH_SIZE), PIL.Image.Resampling.LANCZOS)
    pixels = small.tobytes()
    value = 0
    for row in range(DHASH_SIZE):
        for col in range(DHASH_SIZE):
            left = pixels[row * (DHASH_SIZE + 1) + col]
            right = pixels[row * (DHASH_SIZE + 1) + col + 1]
            value = (value << 1) | (left > right)
    return value - (1 << 64) if value >= 1 << 63 else value


def hamming_distance(a: int, b: int) -> int:
    return ((a ^ b) & ((1 << 64) - 1)).bit_count()


def inspect_image(data: bytes) -> tuple[str, int, int, int]:
    """Return (format, width, height, dhash) of untrusted bytes, or raise ImageRejected.

    Only the allow-listed formats are opened (a decompression bomb in a format nobody meant to
    accept is a real CVE class), the pixel limit is checked before decoding, and the whole image
    is decoded once so a truncated file is caught here and not at export.
    """
    if not data:
        raise ImageRejected("empty image")
    if len(data) > settings.IMAGE_MAX_BYTES:
        raise ImageRejected(f"image is {len(data)} bytes, above {settings.IMAGE_MAX_BYTES}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", PIL.Image.DecompressionBombWarning)
            with PIL.Image.open(io.BytesIO(data), formats=list(settings.IMAGE_FORMATS)) as picture:
                width, height = picture.size
                if width * height > settings.IMAGE_MAX_PIXELS:
                    raise ImageRejected(
                        f"image is {width}x{height} pixels, above {settings.IMAGE_MAX_PIXELS}"
                    )
                image_format = picture.format or ""
                picture.seek(0)  # a GIF counts by its first frame
                picture.load()
                dhash = _difference_hash(picture)
    except ImageRejected:
        raise
    except PIL.Image.DecompressionBombError as error:
        raise ImageRejected(f"image too large to decode safely: {error}") from error
    except (PIL.UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as error:
        raise ImageRejected(f"not a readable JPEG, PNG, WebP or GIF image: {error}") from error
    except (DeprecationWarning, PIL.Image.DecompressionBombWarning) as error:
        raise ImageRejected(f"image too large to decode safely: {error}") from error
    if width <= 0 or height <= 0:
        raise ImageRejected("image has no pixels")
    return image_format, width, height, dhash


def store_image(*, data: bytes, source_name: str = "", is_placeholder: bool = False) -> Image:
    """Validate and store an image; the same bytes always give the same row."""
    digest = hashlib.sha256(data).hexdigest()
    existing = Image.objects.defer("data").filter(sha256=digest).first()
    if existing is not None:
        return existing
    image_format, width, height, dhash = inspect_image(data)
    image = Image(
        sha256=digest,
        data=data,
        format=image_format,
        width=width,
        height=height,
        byte_size=len(data),
        dhash=dhash,
        source_name=source_name[:500],
        is_placeholder=is_placeholder,
    )
    try:
        with transaction.atomic():
            image.save()
    except IntegrityError:
        # Another importer stored the same bytes between our read and our write.
        return Image.objects.defer("data").get(sha256=digest)
    return image


def placeholder_image_bytes(*, text: str) -> bytes:
    """A small grey PNG for rows that have no image (HarmEval text samples)."""
    from PIL import ImageDraw

    picture = PIL.Image.new("RGB", (448, 448), (200, 200, 200))
    draw = ImageDraw.Draw(picture)
    draw.text((16, 16), "no image (placeholder)", fill=(40, 40, 40))
    draw.text((16, 40), text[:60], fill=(40, 40, 40))
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()
