"""Small geometries covering every detector/beam variant, for the operator contract tests."""

from ctflow import FanBeamGeometry, ParallelBeamGeometry

CONTRACT_GEOMETRIES = {
    "parallel": ParallelBeamGeometry(32, 20),
    "parallel-rect-offset": ParallelBeamGeometry((24, 40), 17, pixel_size=0.8, n_detectors=70, detector_offset=1.5),
    "fan-flat": FanBeamGeometry(32, 24, source_to_isocenter=128, source_to_detector=230),
    "fan-flat-offset": FanBeamGeometry(32, 24, 128, 230, n_detectors=70, detector_offset=2.0),
    "fan-curved": FanBeamGeometry(32, 24, 128, 230, detector_shape="curved", pixel_size=0.9),
}

PROJECTORS = {
    "parallel": ["line", "linear", "strip"],
    "parallel-rect-offset": ["line", "linear", "strip"],
    "fan-flat": ["line", "strip"],
    "fan-flat-offset": ["line"],
    "fan-curved": ["line"],
}

CASES = [(g, p) for g in CONTRACT_GEOMETRIES for p in PROJECTORS[g]]
