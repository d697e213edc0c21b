"""Checkout: turns a cart into an order."""

import shop.cart
from shop import Cart as ShoppingCart
from . import catalog as cat

from .cart import Cart


def open_cart(catalog: cat.Catalog) -> Cart:
    """A new empty cart on a catalog."""
    return Cart(catalog)


def checkout(basket: ShoppingCart) -> float:
    """Charge the customer for the cart."""
    amount = basket.total()
    basket.clear()
    return amount


def restock(store: "cat.Catalog", sku: str) -> None:
    store.register(cat.Product(sku, 1.0))
    shop.cart.Cart(store).add_item(sku)
