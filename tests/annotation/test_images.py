import io
import struct
import zlib

import pytest
from PIL import Image as PILImage

from annotation.exceptions import ImageRejected
from annotation.models import Image
from annotation.services.images import hamming_distance, inspect_image, store_image
from tests.factories import image_bytes

pytestmark = pytest.mark.django_db


def png_claiming_size(width: int, height: int) -> bytes:
    """A PNG whose header claims a huge size: a decompression bomb's first bytes."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + header
    ihdr = struct.pack(">I", len(header)) + chunk + struct.pack(">I", zlib.crc32(chunk))
    idat_data = zlib.compress(b"\x00" * 10)
    idat = struct.pack(">I", len(idat_data)) + b"IDAT" + idat_data
    idat += struct.pack(">I", zlib.crc32(b"IDAT" + idat_data))
    return b"\x89PNG\r\n\x1a\n" + ihdr + idat


def test_it_stores_an_image_once_by_content_and_keeps_the_original_bytes():
    data = image_bytes(seed=5)
    first = store_image(data=data, source_name="a.jpg")
    second = store_image(data=data, source_name="b.jpg")
    assert first.pk == second.pk and Image.objects.count() == 1
    assert bytes(Image.objects.get().data) == data
    assert (first.format, first.width, first.height) == ("JPEG", 64, 48)


@pytest.mark.parametrize("fmt", ["PNG", "WEBP", "GIF"])
def test_it_accepts_the_allow_listed_formats(fmt):
    assert inspect_image(image_bytes(seed=3, fmt=fmt))[0] == fmt


def test_it_rejects_a_format_outside_the_allow_list():
    buffer = io.BytesIO()
    PILImage.new("RGB", (8, 8)).save(buffer, format="BMP")
    with pytest.raises(ImageRejected, match="not a readable"):
        inspect_image(buffer.getvalue())


def test_it_rejects_a_decompression_bomb_before_decoding_it():
    with pytest.raises(ImageRejected, match="above|too large"):
        inspect_image(png_claiming_size(50_000, 50_000))


def test_it_rejects_a_truncated_jpeg():
    data = image_bytes(seed=9, size=(256, 256))
    with pytest.raises(ImageRejected):
        inspect_image(data[: len(data) // 2])


def test_it_rejects_html_and_svg_pretending_to_be_images():
    for data in [b"<html><script>alert(1)</script></html>", b"<svg xmlns='x'></svg>", b""]:
        with pytest.raises(ImageRejected):
            inspect_image(data)


def test_near_duplicates_have_close_hashes_and_different_images_do_not():
    original = PILImage.new("RGB", (200, 150))
    for x in range(200):
        for y in range(0, 150, 3):
            original.putpixel((x, y), (x, y, (x * y) % 255))

    def encoded(picture: PILImage.Image, quality: int) -> bytes:
        buffer = io.BytesIO()
        picture.save(buffer, format="JPEG", quality=quality)
        return buffer.getvalue()

    a = inspect_image(encoded(original, 95))[3]
    b = inspect_image(encoded(original.resize((160, 120)), 60))[3]
    other = inspect_image(encoded(original.transpose(PILImage.Transpose.FLIP_LEFT_RIGHT), 95))[3]
    assert hamming_distance(a, b) <= 4
    assert hamming_distance(a, other) > 10


def test_the_image_view_serves_bytes_with_a_fixed_type_and_nosniff(client, reviewer):
    image = store_image(data=image_bytes(seed=11, fmt="PNG"))
    assert client.get(f"/images/{image.pk}/").status_code == 302  # login first
    client.force_login(reviewer)
    response = client.get(f"/images/{image.pk}/")
    assert response["Content-Type"] == "image/png"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response.content == bytes(Image.objects.get(pk=image.pk).data)
    assert client.get("/images/999999/").status_code == 404
