"""Products and the catalog that finds them."""

from __future__ import annotations

__all__ = ["Catalog", "Product", "find_product"]


class Product:
    """One thing for sale."""

    currency = "EUR"

    def __init__(self, sku: str, price: float) -> None:
        self.sku = sku
        self.price = price

    def discounted(self, percent: float) -> float:
        """Price after a percentage discount."""
        return self.price * (1 - percent / 100)


class Catalog:
    """All products, by stock-keeping unit."""

    def __init__(self) -> None:
        self.products: dict[str, Product] = {}

    def register(self, product: Product) -> None:
        """Add a product to the catalog."""
        self.products[product.sku] = product

    def lookup(self, sku: str) -> Product | None:
        """The product with this stock-keeping unit, if any."""
        return self.products.get(sku)


def find_product(catalog: Catalog, sku: str) -> Product:
    """Look a product up or fail loudly."""
    product = catalog.lookup(sku)
    if product is None:
        raise KeyError(sku)
    return product


def _internal_helper() -> None:
    pass
