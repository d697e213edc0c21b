from cart import discount, find_line, item_count, line_total, total, update
from models import (
    AddProduct,
    ApplyCoupon,
    Cart,
    Category,
    Coupon,
    Line,
    Product,
    RemoveSku,
    SetQuantity,
)

APPLE = Product("A1", "apple", 50, Category.FOOD)
NOVEL = Product("B7", "novel", 1200, Category.BOOKS)
ROBOT = Product("T3", "robot", 2500, Category.TOYS)


def run(*msgs):
    cart = Cart()
    for msg in msgs:
        cart = update(cart, msg)
    return cart


def test_add_new_product():
    cart = run(AddProduct(APPLE))
    assert cart.lines == (Line(APPLE, 1),)


def test_add_twice_increments():
    cart = run(AddProduct(APPLE), AddProduct(NOVEL), AddProduct(APPLE))
    assert [(line.product.sku, line.quantity) for line in cart.lines] == [("A1", 2), ("B7", 1)]


def test_remove():
    cart = run(AddProduct(APPLE), AddProduct(NOVEL), RemoveSku("A1"))
    assert [line.product.sku for line in cart.lines] == ["B7"]
    assert find_line(cart, "A1") is None


def test_set_quantity_and_zero_removes():
    cart = run(AddProduct(ROBOT), SetQuantity("T3", 4))
    assert item_count(cart) == 4
    assert run(AddProduct(ROBOT), SetQuantity("T3", 0)).lines == ()


def test_line_total():
    assert line_total(Line(NOVEL, 3)) == 3600
    assert line_total(Line(APPLE, 0)) == 0


def test_total_without_coupon():
    cart = run(AddProduct(APPLE), AddProduct(APPLE), AddProduct(NOVEL))
    assert total(cart) == 1300


def test_apply_coupon():
    coupon = Coupon("TEN", 10)
    cart = run(AddProduct(NOVEL), ApplyCoupon(coupon))
    assert cart.coupon == coupon


def test_discount_everything():
    cart = run(AddProduct(NOVEL), AddProduct(ROBOT), ApplyCoupon(Coupon("TEN", 10)))
    assert discount(cart, cart.lines[0]) == 120
    assert total(cart) == 3700 - 370


def test_discount_by_category():
    cart = run(AddProduct(NOVEL), AddProduct(ROBOT), ApplyCoupon(Coupon("TOYS", 20, Category.TOYS)))
    assert discount(cart, cart.lines[0]) == 0
    assert discount(cart, cart.lines[1]) == 500
    assert total(cart) == 1200 + 2000
