"""The studies behind the README's results section and the notebooks (what ``ctflow benchmark`` runs).

* :mod:`.evaluation` — evaluation images, noise settings, simulated measurements, running and scoring a method.
* :mod:`.quality` — PSNR/SSIM, time and NFE of every method on an evaluation set (``python -m ctflow.studies.quality``).
* :mod:`.memory` — peak memory of MS-Flow vs D-Flow as the number of ODE steps grows
  (``python -m ctflow.studies.memory``).
* :mod:`.runner` — ``ctflow benchmark``: the configuration, the suites with the README's settings into one results
  folder (CSV + PNG + ``summary.md`` + ``readme_results.md``).
* :mod:`.report` — summary, README block and plots rebuilt from a results folder's CSVs and ``run.json``.
* :mod:`.records` — the machine, versions and prior recorded in ``run.json``.

Splicing the README block into ``README.md`` and the operator speed table are source-checkout tools
(``tools/benchmark_readme.py``, ``tools/bench_operators.py``), not part of the package.
"""
