"""Rebuild ctflow/assets/sinograms/abdomen-64-sparse30{,_truth}.h5 (package data), the scan the demo reconstructs.

A held-out procedural abdomen slice (seed 987654, far outside the training seeds) is drawn at 256²
and projected with a 256² operator of the same physical extent (0.25 mm pixels) onto the
``parallel-64-sparse30`` detector, so the data are not made by the 64² operator that reconstructs
them (no inverse crime). The truth is the 256² image averaged to 64². 1 % relative Gaussian noise.

    python data/make_bundled_sinogram.py
"""

from pathlib import Path

import torch

from ctflow import ParallelBeamGeometry, RayTransform, load_geometry
from ctflow.data.abdomen import abdomen_slice
from ctflow.io import write_image_h5, write_sinogram_h5
from ctflow.physics.noise import GaussianNoise

SEED = 987654
HERE = Path(__file__).resolve().parents[1] / "ctflow" / "assets" / "sinograms"

g64 = load_geometry("parallel-64-sparse30")
fine = ParallelBeamGeometry(256, g64.angles, n_detectors=g64.n_detectors, pixel_size=0.25, detector_spacing=g64.detector_spacing)
x256 = torch.from_numpy(abdomen_slice(SEED, size=256)).float()
y_clean = RayTransform(fine)(x256)
noise = GaussianNoise(relative_sigma=0.01)
y = noise(y_clean, seed=SEED)
truth = torch.nn.functional.avg_pool2d(x256[None, None], 4)[0, 0]
write_sinogram_h5(HERE / "abdomen-64-sparse30.h5", y.numpy(), g64,
                  noise={"model": "gaussian", "relative_sigma": 0.01, "seed": SEED},
                  attrs={"source": f"procedural abdomen slice seed {SEED}, projected at 256² (0.25 mm) onto the 64² detector"})
write_image_h5(HERE / "abdomen-64-sparse30_truth.h5", truth.numpy(), geometry=g64, method="phantom",
               params={"seed": SEED, "drawn_at": 256, "units": "window L40/W400 -> [0, 1]"})
print("wrote", HERE)
