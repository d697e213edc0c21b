from shop import Cart, Catalog, find_product
from shop.checkout import checkout, open_cart


def main() -> None:
    catalog = Catalog()
    cart = open_cart(catalog)
    cart.add_item("apple", 3)
    cart.add_item("pear")
    cart.total()
    product = find_product(catalog, "apple")
    product.discounted(10)
    checkout(cart)
    Cart(catalog).total()
