"""The Register stream dock (Layers > Register > Register stream): hand alignment, ECC, export."""

from ._widget import RegistrationWidget

__all__ = ["RegistrationWidget"]
