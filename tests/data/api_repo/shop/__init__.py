"""A tiny shop package: the fixture of the LANCE index tests."""

from .cart import Cart
from .catalog import *  # noqa: F403

__all__ = ["Cart", "Catalog", "find_product"]
