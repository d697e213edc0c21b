"""Catalogue, cart state and cart messages of a small shop."""

from dataclasses import dataclass
from enum import Enum


class Category(Enum):
    FOOD = "food"
    BOOKS = "books"
    TOYS = "toys"


@dataclass(frozen=True)
class Product:
    sku: str
    name: str
    price_cents: int
    category: Category


@dataclass(frozen=True)
class Line:
    product: Product
    quantity: int


@dataclass(frozen=True)
class Coupon:
    code: str
    percent_off: int
    category: Category | None = None


@dataclass(frozen=True)
class Cart:
    lines: tuple[Line, ...] = ()
    coupon: Coupon | None = None


@dataclass(frozen=True)
class AddProduct:
    product: Product


@dataclass(frozen=True)
class RemoveSku:
    sku: str


@dataclass(frozen=True)
class SetQuantity:
    sku: str
    quantity: int


@dataclass(frozen=True)
class ApplyCoupon:
    coupon: Coupon


Msg = AddProduct | RemoveSku | SetQuantity | ApplyCoupon
