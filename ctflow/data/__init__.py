"""Datasets: MedMNIST (OrganCMNIST & co.) and procedural abdomen phantoms."""

from .abdomen import (
    AbdomenPhantom,
    AbdomenPhantomDataset,
    abdomen_slice,
    coronal_crop,
    hu_to_window,
    write_phantom_npz,
)
from .medmnist import (
    MEDMNIST_FILES,
    MEDMNIST_FLAGS,
    MEDMNIST_LABELS,
    MEDMNIST_SIZES,
    MEDMNIST_SPLITS,
    MedMNISTDataset,
    download_medmnist,
    load_medmnist,
    locate_medmnist,
    medmnist_root,
    verify_medmnist_file,
)

__all__ = [
    "AbdomenPhantom",
    "AbdomenPhantomDataset",
    "abdomen_slice",
    "coronal_crop",
    "hu_to_window",
    "write_phantom_npz",
    "MEDMNIST_FILES",
    "MEDMNIST_FLAGS",
    "MEDMNIST_LABELS",
    "MEDMNIST_SIZES",
    "MEDMNIST_SPLITS",
    "MedMNISTDataset",
    "download_medmnist",
    "load_medmnist",
    "locate_medmnist",
    "medmnist_root",
    "verify_medmnist_file",
]
