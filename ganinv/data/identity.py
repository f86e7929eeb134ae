"""Identity pairs of SynthFaces: a face and its *positive*, the same identity re-rendered with every nuisance
factor (expression, pose, lighting, background, accessory) redrawn. SFN's identity loss trains on them
(``ganinv.training.sfn``) and its identity retrieval is scored on held-out ones (``ganinv.eval.sfn``)."""

from __future__ import annotations

from . import synthfaces as sf

# What changes between the two views of one identity: expression, pose, lighting, background, accessory.
NUISANCE_FACTORS: tuple[str, ...] = (
    "smiling",
    "mouth_open",
    "eyes_closed",
    "glasses",
    "yaw",
    "lighting",
    "background",
)
# What makes an identity: face shape, skin, hair (style, fringe, colour), eyes, brows, age and beard.
IDENTITY_FACTORS: tuple[str, ...] = tuple(n for n in sf.FACTOR_NAMES if n not in NUISANCE_FACTORS)

NUISANCE_SEED_OFFSET = 7_777_777  # the nuisance factors of positives come from seed data_seed + this


def identity_pairs(seed: int, indices, nuisance_seed: int) -> tuple[dict, dict]:
    """Factors of faces ``indices`` of ``seed`` and of their positives: the same faces with every factor
    in :data:`NUISANCE_FACTORS` replaced by its value in sample ``indices`` of ``nuisance_seed``."""
    anchor = sf.sample_factors(seed, indices)
    other = sf.sample_factors(nuisance_seed, indices)
    return anchor, sf.edit_factors(anchor, **{n: other[n] for n in NUISANCE_FACTORS})
