"""Clinical-style I/O: DICOM images and projections (DICOM-CT-PD), HDF5 sinograms, conversions.

* :mod:`.dicom_image`: reading CT images in HU (:class:`CTImage`, one image or a series);
  :mod:`.dicom_image_writer`: writing them (int16 CT files, one image or a series);
* :mod:`.dicom_ctpd`: fan-beam projections as DICOM-CT-PD (:class:`ProjectionData`), with the
  private-tag table and codec in :mod:`.dicom_ctpd_tags`;
* :mod:`.dicom_common`: the reading guard (pydicom errors → DataError naming the file), input
  listing, ``on_error``, number formatting and the CT dataset skeleton;
* :mod:`.hdf5`: sinograms and reconstructions in HDF5, with the guards for untrusted files (global
  heap walk, forked attribute read, declared sizes) in :mod:`.hdf5_untrusted`;
* :mod:`.convert`: format conversion;
* :mod:`.arrays`: guarded ``.npy``/``.npz`` reading (declared sizes checked against
  :mod:`ctflow.limits` before allocating, no pickle), used by every npz loader.

Every reader is a validated boundary: any failure is a :class:`~ctflow.errors.CTFlowError` naming the
file, NaN/Inf data and impossible geometry are refused, and declared sizes are checked before anything
is allocated (see the README's "Reliability" section).

``MU_WATER``, ``hu_to_mu`` and ``mu_to_hu`` live in :mod:`ctflow.units` and are re-exported here.
"""

from ..units import MU_WATER, hu_to_mu, mu_to_hu
from .convert import Loaded, read_any, write_any, write_png_preview
from .dicom_ctpd import ProjectionData, read_dicom_ctpd, write_dicom_ctpd
from .dicom_image import CTImage, read_dicom_image, read_dicom_series
from .dicom_image_writer import write_dicom_image, write_dicom_series
from .hdf5 import ImageFile, SinogramFile, read_image_h5, read_sinogram_h5, write_image_h5, write_sinogram_h5

__all__ = [
    "MU_WATER",
    "CTImage",
    "ImageFile",
    "Loaded",
    "ProjectionData",
    "SinogramFile",
    "hu_to_mu",
    "mu_to_hu",
    "read_any",
    "read_dicom_ctpd",
    "read_dicom_image",
    "read_dicom_series",
    "read_image_h5",
    "read_sinogram_h5",
    "write_any",
    "write_dicom_ctpd",
    "write_dicom_image",
    "write_dicom_series",
    "write_image_h5",
    "write_png_preview",
    "write_sinogram_h5",
]
