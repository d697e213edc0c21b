"""Cart arithmetic and the cart's update function."""

from dataclasses import replace

from models import AddProduct, ApplyCoupon, Cart, Line, Msg, RemoveSku, SetQuantity


def find_line(cart: Cart, sku: str) -> Line | None:
    for line in cart.lines:
        if line.product.sku == sku:
            return line
    return None


def line_total(line: Line) -> int:
    return line.product.price_cents * line.quantity  # HOLE


def discount(cart: Cart, line: Line) -> int:
    coupon = cart.coupon
    if coupon is None:
        return 0
    if coupon.category is not None and coupon.category != line.product.category:
        return 0
    return line_total(line) * coupon.percent_off // 100  # HOLE


def total(cart: Cart) -> int:
    return sum(line_total(line) - discount(cart, line) for line in cart.lines)  # HOLE


def item_count(cart: Cart) -> int:
    return sum(line.quantity for line in cart.lines)


def update(cart: Cart, msg: Msg) -> Cart:
    if isinstance(msg, AddProduct):
        existing = find_line(cart, msg.product.sku)
        if existing is None:
            new_line = Line(product=msg.product, quantity=1)  # HOLE
            return replace(cart, lines=cart.lines + (new_line,))
        return update(cart, SetQuantity(msg.product.sku, existing.quantity + 1))
    if isinstance(msg, RemoveSku):
        lines = tuple(line for line in cart.lines if line.product.sku != msg.sku)  # HOLE
        return replace(cart, lines=lines)
    if isinstance(msg, SetQuantity):
        if msg.quantity <= 0:
            return update(cart, RemoveSku(msg.sku))
        lines = tuple(
            replace(line, quantity=msg.quantity) if line.product.sku == msg.sku else line
            for line in cart.lines
        )
        return replace(cart, lines=lines)
    if isinstance(msg, ApplyCoupon):
        return replace(cart, coupon=msg.coupon)  # HOLE
    return cart
