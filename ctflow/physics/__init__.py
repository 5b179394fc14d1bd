"""The measurement model's physics: noise models for sinograms (:mod:`.noise`) and analytic phantoms with
exact line integrals (:mod:`.phantoms`)."""

from . import noise, phantoms

__all__ = ["noise", "phantoms"]
