"""``python -m ctflow.data.abdomen``: images per second of both views at 64² and 128² (see
:func:`~ctflow.data.abdomen.benchmark_rate` for a one-core figure)."""

from .dataset import benchmark_rate

if __name__ == "__main__":
    for _kind in ("axial", "coronal"):
        for _size in (64, 128):
            print(f"{_kind:8s} {_size:4d}^2: {benchmark_rate(_size, 1000, _kind):8.0f} images/s")
