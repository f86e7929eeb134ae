"""SynthFaces: procedural cartoon faces with known generative factors and part labels.

SynthFaces stands in for FFHQ in this project. Every sample is drawn from a set of *factors*
(:data:`FACTORS`) and rendered by a small vectorised painter, so that we know, for every image,

* the ground-truth factors (smiling, glasses, yaw, skin tone, ...), used to train the SynthFaces
  feature network (SFN) and to score inversions and edits;
* a per-pixel part segmentation (:data:`PARTS`), used for semantic masks;
* the image of the *same face* with one factor changed (:func:`edit_factors` + :func:`render`), the
  ground truth that GAN edits are compared against.

Sample ``i`` of seed ``s`` is a pure function of ``(s, i)``: factors come from a counter-based hash
of ``(seed, index, factor)`` and the renderer works on each sample independently (elementwise
arithmetic and ``sqrt`` only), so a face is bit-identical whatever batch it is rendered in.

Geometry lives in normalised coordinates: ``x`` runs from -1 (left edge) to 1 (right edge) and
``y`` from -1 (top) to 1 (bottom); one pixel is ``2 / size`` wide. Each part is an (approximate)
signed distance ``d`` (negative inside) turned into a coverage ``clip(0.5 - d / pixel, 0, 1)``:
the exact area coverage of a straight edge by a pixel, i.e. a box-filtered, alias-free edge at any
render size. Parts are painted back to front with "over" compositing; the part label of a pixel is
the top-most part covering at least half of it.

Painting order (back to front): background and shirt, back hair, neck, ears, face, nose, wrinkles,
beard, mouth, eyes, front hair (hair cap and bangs), brows, glasses, then a lighting gradient.

Labels of occluded factors (how to read them):

* ``eye_color`` is sampled and returned for every face, but the iris is only drawn when
  ``eyes_closed == 0``; with closed eyes the label is not observable (see :func:`observable`).
* Glasses have clear lenses (a light tint), so eyes, eye colour and eye size stay visible; only the
  frames, the bridge and the arms are labelled ``glasses``. Lens pixels keep the label underneath.
* Brows are drawn over the hair (cartoon style), so bangs never hide them; the mouth is drawn over
  the beard, so a beard never hides it.
* ``age`` greys head hair and beard (not the brows, which keep a darkened ``hair_color``) and adds
  wrinkle lines under the eyes, beside the mouth and on the forehead. Forehead lines are hidden by
  bangs and the mouth lines by a beard; the lines under the eyes are always visible.
* ``hair_style == "balding"`` keeps hair on the sides of the head, so ``hair_color`` is always
  visible; with ``bangs`` a balding head gets a small fringe but keeps a bare crown.
* Shirt and shoulders are labelled ``background`` (they are not a face part); their colour is a
  darker shade of the background colour, so they add no hidden factor.
"""

from __future__ import annotations

from .dataset import SynthFaces, real_images, synthfaces
from .face import EYE_Y, MOUTH_Y
from .factors import (
    BACKGROUND,
    BEARD,
    BINARY_ATTRIBUTES,
    BROWS,
    CATEGORICAL_FACTORS,
    CONTINUOUS_FACTORS,
    EYES,
    FACTOR_NAMES,
    FACTORS,
    GLASSES,
    HAIR,
    HAIR_STYLES,
    MOUTH,
    PARTS,
    SIZES,
    SKIN,
    Factor,
    edit_factors,
    factors_from_array,
    factors_to_array,
    observable,
    sample_factors,
)
from .figures import save_attribute_sheet, save_figures, save_sample_grid
from .painter import render

__all__ = [
    "BACKGROUND",
    "BEARD",
    "BROWS",
    "EYES",
    "EYE_Y",
    "GLASSES",
    "HAIR",
    "MOUTH",
    "MOUTH_Y",
    "SKIN",
    "BINARY_ATTRIBUTES",
    "CATEGORICAL_FACTORS",
    "CONTINUOUS_FACTORS",
    "FACTORS",
    "FACTOR_NAMES",
    "HAIR_STYLES",
    "PARTS",
    "SIZES",
    "Factor",
    "SynthFaces",
    "edit_factors",
    "factors_from_array",
    "factors_to_array",
    "observable",
    "real_images",
    "render",
    "sample_factors",
    "save_attribute_sheet",
    "save_figures",
    "save_sample_grid",
    "synthfaces",
]
