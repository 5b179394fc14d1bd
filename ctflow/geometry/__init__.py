"""CT scan geometries: immutable values in physical units (millimetres, radians).

Conventions (shared by every operator, phantom and FBP in ctflow, and identical to ASTRA's):

* **Image.** An image has ``image_shape = (H, W)`` square pixels of side ``pixel_size`` mm, centred
  on the isocentre. Row 0 is at the top: pixel ``(i, j)`` has its centre at
  ``x = (j - (W-1)/2) * pixel_size`` and ``y = ((H-1)/2 - i) * pixel_size``.
* **Views.** For a view angle θ, let ``r(θ) = (sin θ, -cos θ)`` and ``û(θ) = (cos θ, sin θ)``.
  Detector element ``j`` sits at ``u_j = (j - (n-1)/2) * detector_spacing + detector_offset``
  along ``û``.
* **Parallel beam.** Rays travel along ``r(θ)``; element ``j`` measures the line through
  ``u_j · û(θ)``.
* **Fan beam.** The source is at ``a(θ) = D · (sin θ, -cos θ)`` with ``D = source_to_isocenter``.
  A *flat* detector is the line through ``-(S - D) · (sin θ, -cos θ)`` (``S =
  source_to_detector``) along ``û``, with elements at ``u_j``. A *curved* (equiangular,
  cylindrical) detector is the arc of radius ``S`` around the source; element ``j`` is at fan
  angle ``γ_j = u_j / S`` (``detector_spacing`` is the arc length between elements). ASTRA has no
  curved fan geometry, so :meth:`FanBeamGeometry.to_astra` describes it exactly as a
  ``fanflat_vec`` geometry with one single-element "view" per (view, element) pair, each element
  tangent to the arc (only the ``line`` projector supports that).

A sinogram has shape ``(n_angles, n_detectors)`` and holds line integrals of the image in
millimetres times the image's units (μ in 1/mm gives dimensionless line integrals).
"""

from __future__ import annotations

from .base import angle_weights
from .fan import FanBeamGeometry
from .parallel import ParallelBeamGeometry
from .presets import Geometry, geometry_from_dict, list_geometries, load_geometry

__all__ = [
    "FanBeamGeometry",
    "Geometry",
    "ParallelBeamGeometry",
    "angle_weights",
    "geometry_from_dict",
    "list_geometries",
    "load_geometry",
]
