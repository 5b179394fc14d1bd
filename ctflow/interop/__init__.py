"""Bridges to other CT libraries. :mod:`ctflow.interop.odl`: ctflow operators as ODL operators and back."""

__all__ = ["odl"]
