"""Clinical-style I/O: DICOM images and projections (DICOM-CT-PD), HDF5 sinograms."""
