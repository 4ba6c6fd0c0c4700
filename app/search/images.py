"""Where a catalog image is served: ``/v1/images/{product_id}/{n}`` (n: its place in the product).

Results, products and similar-product lists carry these URLs, so a page shows a photo without
knowing where the catalog lives. ``?w=`` picks a thumbnail width (``WIDTHS``).
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import quote

IMAGES_PATH = "/v1/images"
WIDTHS = (160, 320, 640)
DEFAULT_WIDTH = 320


def image_url(product_id: str, index: int) -> str:
    # quote everything: a shop's id may hold '/', '?' or spaces
    return f"{IMAGES_PATH}/{quote(product_id, safe='')}/{index}"


def image_urls(product_id: str, own: Sequence[str], names: Sequence[str]) -> list[str]:
    """URLs of ``names`` (image files of the product whose list of images is ``own``)."""
    return [image_url(product_id, own.index(n)) for n in names if n in own]
