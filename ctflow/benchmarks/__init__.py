"""Benchmarks behind the README's results section.

* :mod:`.quality` — PSNR/SSIM, time and NFE of every method on an evaluation set.
* :mod:`.memory` — peak memory of MS-Flow vs D-Flow as the number of ODE steps grows.
* :mod:`.run_all` — ``ctflow benchmark``: both studies with the README's settings, into one results
  folder (CSV + PNG + ``summary.md``), optionally rewriting the README's results block.
"""
