"""Adapters that give third-party networks ctflow's velocity convention."""

from .diffusers import DiffusersVelocity

__all__ = ["DiffusersVelocity"]
