"""The tree-sitter workspace index: symbols, signatures, the import graph, file discovery."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from holefill.context import index as index_mod
from holefill.context.index import ApiIndex, parse_module, python_files

REPO = Path(__file__).parent / "data" / "api_repo"


@pytest.fixture(scope="module")
def idx() -> ApiIndex:
    return ApiIndex.build(REPO)


def test_modules_and_package_names(idx):
    assert set(idx.modules) == {"app", "shop", "shop.cart", "shop.catalog", "shop.checkout"}
    assert idx.modules["shop"].path.endswith("shop/__init__.py")
    assert not idx.stats.truncated


def test_signatures_annotations_and_docstrings(idx):
    cart = idx.modules["shop.cart"].classes["shop.cart.Cart"]
    assert cart["add_item"].signature == "Cart.add_item(sku: str, quantity: int = 1) -> None"
    assert cart["add_item"].doc == "Put a quantity of a product into the cart."
    assert cart["add_item"].kind == "method" and cart["add_item"].line == 21
    assert cart["total"].returns == "float"
    find = idx.modules["shop.catalog"].defs["find_product"]
    assert find.signature == "find_product(catalog: Catalog, sku: str) -> Product"
    assert idx.modules["shop.catalog"].symbol.doc == "Products and the catalog that finds them."
    assert idx.modules["shop.catalog"].all_names == ["Catalog", "Product", "find_product"]


def test_relative_imports_and_aliases(idx):
    imports = {(i.module, i.name, i.alias) for i in idx.modules["shop.checkout"].imports}
    assert ("shop", None, "shop") in imports  # `import shop.cart` binds `shop`
    assert ("shop", "Cart", "ShoppingCart") in imports
    assert ("shop", "catalog", "cat") in imports  # `from . import catalog as cat`
    assert ("shop.cart", "Cart", "Cart") in imports
    assert idx.resolve("shop.checkout", "ShoppingCart").qualname == "shop.cart.Cart"
    assert idx.resolve("shop.checkout", "cat").kind == "module"
    assert idx.resolve_dotted("shop.checkout", "shop.cart.Cart").qualname == "shop.cart.Cart"
    assert idx.resolve_dotted("shop.checkout", "cat.Catalog").qualname == "shop.catalog.Catalog"


def test_relative_import_levels():
    info = parse_module("from ..x import y\nfrom . import z\nfrom .w.v import u as t\n",
                        "a/b/c.py", "a.b.c", False)
    got = [(i.module, i.name, i.alias) for i in info.imports]
    assert got == [("a.x", "y", "y"), ("a.b", "z", "z"), ("a.b.w.v", "u", "t")]
    pkg = parse_module("from . import z\nfrom .. import q\n", "a/b/__init__.py", "a.b", True)
    assert [(i.module, i.name) for i in pkg.imports] == [("a.b", "z"), ("a", "q")]


def test_reexports_and_star_imports(idx):
    assert idx.resolve("shop", "Cart").qualname == "shop.cart.Cart"  # __init__ re-export
    assert idx.resolve("shop", "find_product").qualname == "shop.catalog.find_product"  # star
    assert idx.resolve("shop", "_internal_helper") is None  # not in the star module's __all__
    assert idx.resolve("shop", "json") is None  # not local
    members = idx.members(idx.modules["shop"].symbol)
    assert {"Cart", "Catalog", "Product", "find_product"} <= set(members)
    assert "_internal_helper" not in members


def test_class_members_inherit_and_include_attributes(idx):
    members = idx.members(idx.resolve("shop", "Cart"))
    assert members["clear"].qualname == "shop.cart.BaseContainer.clear"  # inherited
    assert members["lines"].kind == "attribute"  # self.lines = ...
    assert members["catalog"].kind == "attribute"
    product = idx.members(idx.resolve("shop", "Product"))
    assert product["currency"].kind == "attribute"  # class body assignment


def test_module_members_use_the_bound_name(idx):
    members = idx.members(idx.modules["shop.checkout"].symbol)
    assert members["ShoppingCart"].name == "ShoppingCart"
    assert members["ShoppingCart"].qualname == "shop.cart.Cart"
    assert members["cat"].kind == "module"


def test_usage_counts(idx):
    usage = idx.usage()
    assert usage["add_item"] == 3  # app.py twice, checkout.py once
    assert usage["remove_item"] == 0


def test_incremental_update_and_removal(tmp_path):
    (tmp_path / "m.py").write_text("class A:\n    def old(self): ...\n")
    idx = ApiIndex.build(tmp_path)
    cls = idx.resolve("m", "A")
    assert "old" in idx.members(cls)
    version = idx.version
    idx.update_file(tmp_path / "m.py", "class A:\n    def new(self, x: int) -> int: ...\n")
    members = idx.members(idx.resolve("m", "A"))
    assert "old" not in members and members["new"].signature == "A.new(x: int) -> int"
    assert idx.version > version and str((tmp_path / "m.py").resolve()) in idx.edited
    idx.remove_file(tmp_path / "m.py")
    assert idx.resolve("m", "A") is None and not idx.modules


def _tree(root: Path) -> None:
    (root / "ok.py").write_text("def ok(): ...\n")
    (root / "ignored.py").write_text("def ignored(): ...\n")
    (root / "out").mkdir()
    (root / "out" / "gen.py").write_text("def gen(): ...\n")
    (root / "sub").mkdir()
    (root / "sub" / ".gitignore").write_text("local_*.py\n")
    (root / "sub" / "local_x.py").write_text("def x(): ...\n")
    (root / "sub" / "kept.py").write_text("def kept(): ...\n")
    (root / "blob.py").write_bytes(b"def f():\x00\x01\x02 binary\n")
    (root / ".venv").mkdir()
    (root / ".venv" / "lib.py").write_text("def lib(): ...\n")
    (root / ".gitignore").write_text("ignored.py\nout/\n")


def test_gitignored_binary_and_venv_files_are_skipped(tmp_path):
    _tree(tmp_path)
    names = sorted(Path(p).name for p in python_files(tmp_path))
    assert names == ["blob.py", "kept.py", "ok.py"]
    idx = ApiIndex.build(tmp_path)
    assert sorted(idx.modules) == ["kept", "ok"]
    assert idx.stats.skipped_binary == 1


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_git_work_tree_uses_git_ignore_rules(tmp_path):
    _tree(tmp_path)
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    assert index_mod._git_files(str(tmp_path.resolve())) is not None
    names = sorted(Path(p).name for p in python_files(tmp_path))
    assert names == ["blob.py", "kept.py", "ok.py"]


def test_limits(tmp_path, monkeypatch):
    for i in range(5):
        (tmp_path / f"m{i}.py").write_text(f"def f{i}(): ...\n")
    idx = ApiIndex.build(tmp_path, max_files=2)
    assert len(idx.modules) == 2 and idx.stats.truncated
    monkeypatch.setattr(index_mod, "MAX_FILE_BYTES", 10)
    idx = ApiIndex.build(tmp_path)
    assert not idx.modules and idx.stats.skipped_large == 5


def test_broken_code_still_indexes_what_parses():
    info = parse_module("def good(a: int) -> str:\n    ...\ndef bad(:\n    pass\n", "x.py", "x",
                        False)
    assert "good" in info.defs


def test_called_names_count_calls_on_receivers_other_than_self(tmp_path):
    info = parse_module(
        "class A:\n"
        "    def f(self):\n"
        "        self.g()\n"          # the class's own call: not counted
        "        cls.g()\n"
        "        self.db.query(1)\n"  # a call on an attribute of self is a user's call
        "a.g()\na.g(2)\nb.c.g()\nf().h()\nx = a.g\n"  # `a.g` without a call: not counted
        "super(A, self).g()\n"
        "', '.join(x)\n'{}'.format(1)\n[1].g()\n",  # literals are builtin types: not counted
        "m.py", "m", False)
    assert info.calls == {"g": 4, "query": 1, "h": 1}
    # per receiver name (the last part of a dotted receiver; any super(...) is one key)
    assert info.receiver_calls == {("a", "g"): 2, ("c", "g"): 1, ("db", "query"): 1,
                                   ("super()", "g"): 1}
    (tmp_path / "one.py").write_text("a.g()\n")
    (tmp_path / "two.py").write_text("b.g()\nb.h()\n")
    idx = ApiIndex.build(tmp_path)
    assert idx.call_usage() == {"g": 2, "h": 1}
    assert idx.receiver_call_usage() == {("a", "g"): 1, ("b", "g"): 1, ("b", "h"): 1}
    idx.update_file(tmp_path / "two.py", "b.h()\n")  # an edit is seen at once
    assert idx.call_usage() == {"g": 1, "h": 1}
    assert idx.receiver_call_usage() == {("a", "g"): 1, ("b", "h"): 1}


def test_workspace_totals_follow_updates_and_removals(tmp_path):
    import random

    rng = random.Random(0)
    names = ["f", "g", "h"]
    files = [tmp_path / f"m{i}.py" for i in range(4)]
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    files.append(tmp_path / "pkg" / "m0.py")  # another module named like a top-level one
    (tmp_path / "other").mkdir()
    files.append(tmp_path / "other" / "m1.py")  # no package: module `m1` twice, one wins
    for path in files:
        path.write_text("a.f()\n")
    idx = ApiIndex.build(tmp_path)
    for _ in range(40):
        path = rng.choice(files)
        if rng.random() < 0.25:
            idx.remove_file(path)
        else:
            calls = "".join(f"{rng.choice('ab')}.{rng.choice(names)}()\nx.{n}\n"
                            for n in rng.sample(names, rng.randint(0, 3)))
            idx.update_file(path, calls)
        idx.usage(), idx.call_usage(), idx.receiver_call_usage()  # cached, then updated
        fresh = ApiIndex(tmp_path)
        fresh.modules = dict(idx.modules)
        for attr in ("usage", "call_usage", "receiver_call_usage"):
            assert getattr(idx, attr)() == getattr(fresh, attr)(), attr
