"""Image/text embedding: model bundles and ONNX Runtime inference.

Importing this package never imports torch or open_clip; exporting a bundle
(``app.embedding.export``) is the only part that needs them.
"""

from app.embedding.bundle import (
    FORMAT_VERSION,
    BundleError,
    Manifest,
    load_manifest,
    write_bundle_manifest,
)
from app.embedding.preprocess import ImageError, load_image, preprocess_images
from app.embedding.runtime import Encoder, ProviderError, select_providers
from app.embedding.tokenizer import ClipTokenizer

__all__ = [
    "FORMAT_VERSION",
    "BundleError",
    "ClipTokenizer",
    "Encoder",
    "ImageError",
    "Manifest",
    "ProviderError",
    "load_image",
    "load_manifest",
    "preprocess_images",
    "select_providers",
    "write_bundle_manifest",
]
