r"""Procedural abdomen phantoms: seeded axial CT slices and coronal organ crops, in HU or windowed.

Why: the prior that ctflow ships is trained here, offline, without real patient data. These
generators give an unlimited, licence-free supply of images that *look like* abdominal CT (a body
with a subcutaneous fat ring, a spine at the back, liver on the image's left, kidneys beside the
spine, bowel gas, ...) so that a generative prior learns CT-like statistics: large flat organs, thin
bright bone, black air, smooth low-contrast texture. They are not anatomy-accurate and not a
substitute for real data; results obtained with them should say "synthetic phantoms".

Conventions
-----------
* Image coordinates as in :mod:`ctflow.physics.phantoms`: row 0 at the top, x to the right, y up. For the
  axial slices the image spans ``[-1, 1]`` in x and y (pixel size ``2 / size``; one unit is about
  200 mm, so the field of view is about 400 mm).
* Radiological orientation: the patient's right is on the image's **left**, anterior is at the
  **top**, posterior (spine, table) at the **bottom**. In the coronal views the head is at the top.
* Every image starts from ``numpy.random.default_rng(seed)``; nothing depends on earlier calls (the
  per-size caches hold only coordinate grids, blur kernels and texture bases), so a seed always
  gives the same bits (on one machine and library build).
* HU images are float32 Hounsfield units; the default output is the abdominal window L40/W400
  (``[-160, 240]`` HU) mapped linearly onto ``[0, 1]`` and clipped.

Pipeline (both views): draw the anatomy straight onto the output grid, with a tissue label map
kept alongside. The body wall comes from radial (axial) or per-row (coronal) layer tables; organs
and bones are implicit shapes (ellipses with taper and bend, nested layers) collected in a scene
and resolved in one vectorised pass with a priority buffer, with painter-like rules: a shape only
covers fat (or the tissues it is allowed over) and never what was placed before it, so organs wrap
around each other (the liver around the kidneys and vessels, bowel between the organs). Then two
smooth random texture fields are added with a per-tissue amplitude, a Gaussian blur (sigma 0.5 to
1 pixel) stands in for the partial-volume effect, white noise is optional, and the window applied.
Rendering on the target grid (no supersampling, no resizing) keeps a 64 x 64 slice near a
millisecond; thin layers (skin, cortical bone, ribs) are kept at least about a pixel thick, with
their contrast diluted in proportion.

Modules, from the bottom up (each imports only those above it):

* :mod:`.canvas`: block-wise random draws, the canvas, the scene and its priority-buffer renderer,
  blur and radial-basis helpers.
* :mod:`.tissues`: label table (:data:`TISSUES`, :data:`LABELS`), OrganMNIST classes, the window,
  argument checks, the HU values of one 'patient' and the texture amplitudes per tissue.
* :mod:`.texture`: texture fields, blur and noise (``_finish``), and the phantoms v2 steps.
* :mod:`.axial_body`, :mod:`.axial_organs`, :mod:`.axial`: the axial scene in steps, and
  :func:`abdomen_slice`.
* :mod:`.coronal_body`, :mod:`.coronal_organs`, :mod:`.coronal`: the coronal scene in steps, and
  :func:`coronal_crop`.
* :mod:`.dataset`: :class:`AbdomenPhantom`, :class:`AbdomenPhantomDataset`,
  :func:`write_phantom_npz`, :func:`benchmark_rate` (``python -m ctflow.data.abdomen`` runs it).

Public entry points: :func:`abdomen_slice`, :func:`coronal_crop`, :class:`AbdomenPhantom`,
:class:`AbdomenPhantomDataset`, :func:`write_phantom_npz`, :func:`benchmark_rate`.
"""

from __future__ import annotations

from .axial import abdomen_slice
from .coronal import coronal_crop
from .dataset import AbdomenPhantom, AbdomenPhantomDataset, benchmark_rate, write_phantom_npz
from .tissues import LABELS, ORGANMNIST_CLASSES, TISSUES, hu_to_window, organmnist_label

# public constants outside __all__, kept importable from here (the window now lives in ctflow.units)
from .tissues import MAX_SIZE as MAX_SIZE
from .tissues import MIN_SIZE as MIN_SIZE
from .tissues import WINDOW_LEVEL as WINDOW_LEVEL
from .tissues import WINDOW_WIDTH as WINDOW_WIDTH

__all__ = [
    "LABELS",
    "ORGANMNIST_CLASSES",
    "TISSUES",
    "AbdomenPhantom",
    "AbdomenPhantomDataset",
    "abdomen_slice",
    "benchmark_rate",
    "coronal_crop",
    "hu_to_window",
    "organmnist_label",
    "write_phantom_npz",
]
