"""Clinical-style I/O: DICOM images and projections (DICOM-CT-PD), HDF5 sinograms, conversions."""

from .convert import Loaded, read_any, write_any, write_png_preview
from .dicom import (
    MU_WATER,
    CTImage,
    ProjectionData,
    hu_to_mu,
    mu_to_hu,
    read_dicom_ctpd,
    read_dicom_image,
    read_dicom_series,
    write_dicom_ctpd,
    write_dicom_image,
    write_dicom_series,
)
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
