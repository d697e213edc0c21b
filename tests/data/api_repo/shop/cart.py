"""The shopping cart."""

from __future__ import annotations

from .catalog import Catalog, Product


class BaseContainer:
    def clear(self) -> None:
        """Remove everything."""
        self.lines = {}


class Cart(BaseContainer):
    """Products a customer is about to buy, with quantities."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self.lines: dict[str, int] = {}

    def add_item(self, sku: str, quantity: int = 1) -> None:
        """Put a quantity of a product into the cart."""
        self.lines[sku] = self.lines.get(sku, 0) + quantity

    def remove_item(self, sku: str) -> None:
        """Take a product out of the cart."""
        self.lines.pop(sku, None)

    def total(self) -> float:
        """Sum of the prices of everything in the cart."""
        return sum(self._price(sku) * n for sku, n in self.lines.items())

    def _price(self, sku: str) -> float:
        product: Product | None = self.catalog.lookup(sku)
        return product.price if product else 0.0
