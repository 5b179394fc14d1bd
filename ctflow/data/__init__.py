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
    "MEDMNIST_FILES",
    "MEDMNIST_FLAGS",
    "MEDMNIST_LABELS",
    "MEDMNIST_SIZES",
    "MEDMNIST_SPLITS",
    "AbdomenPhantom",
    "AbdomenPhantomDataset",
    "MedMNISTDataset",
    "abdomen_slice",
    "coronal_crop",
    "download_medmnist",
    "hu_to_window",
    "load_medmnist",
    "locate_medmnist",
    "medmnist_root",
    "verify_medmnist_file",
    "write_phantom_npz",
]
