"""Data for ganinv: the SynthFaces procedural face dataset and validated real-image I/O.

``ganinv.data.synthfaces`` is the SynthFaces module (its ``synthfaces()`` convenience function is not
re-exported here, so that the module name stays importable as ``import ganinv.data.synthfaces``).
"""

from .images import (
    IMAGE_EXTENSIONS,
    ImageError,
    ImageFolderDataset,
    check_images,
    load_image,
    save_image,
    to_uint8,
)
from .synthfaces import (
    BINARY_ATTRIBUTES,
    CATEGORICAL_FACTORS,
    CONTINUOUS_FACTORS,
    FACTOR_NAMES,
    FACTORS,
    HAIR_STYLES,
    PARTS,
    Factor,
    SynthFaces,
    edit_factors,
    factors_from_array,
    factors_to_array,
    observable,
    render,
    sample_factors,
)

__all__ = [
    "BINARY_ATTRIBUTES",
    "CATEGORICAL_FACTORS",
    "CONTINUOUS_FACTORS",
    "FACTORS",
    "FACTOR_NAMES",
    "HAIR_STYLES",
    "IMAGE_EXTENSIONS",
    "PARTS",
    "Factor",
    "ImageError",
    "ImageFolderDataset",
    "SynthFaces",
    "check_images",
    "edit_factors",
    "factors_from_array",
    "factors_to_array",
    "load_image",
    "observable",
    "render",
    "sample_factors",
    "save_image",
    "to_uint8",
]
