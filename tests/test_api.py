"""LANCE retrieval: the API site at the cursor, receiver correlation, ranking, the signature
block, BM25 search; the server's `holefill/searchApi`, index updates and completion order
(fake engine); and the name constraint end to end on the real model (slow)."""

from __future__ import annotations

import asyncio
import math
import re
from pathlib import Path

import pytest
from conftest import SMALL_MODEL
from lsprotocol import types

from holefill.context import api
from holefill.context.index import ApiIndex, Symbol

REPO = Path(__file__).parent / "data" / "api_repo"
APP = (REPO / "app.py").read_text()


@pytest.fixture(scope="module")
def idx() -> ApiIndex:
    return ApiIndex.build(REPO)


def at_end(idx: ApiIndex, text: str, use_jedi: bool = False, path: str | None = None):
    return api.correlate(idx, text, len(text), path, str(REPO), use_jedi=use_jedi)


# --- the site at the cursor ------------------------------------------------------------------


@pytest.mark.parametrize("text, receiver, typed", [
    ("x = cart.", "cart", ""), ("    self.catalog.look", "self.catalog", "look"),
    ("f(a).", None, ""), ("total = items[0].pr", None, "pr"),
])
def test_api_site(text, receiver, typed):
    site = api.api_site(text, len(text))
    assert site is not None and (site.receiver, site.typed) == (receiver, typed)
    assert site.dot_column == len(text) - len(typed) - 1


@pytest.mark.parametrize("text", ["x = 1.", "# see cart.", "s = 'cart.", "cart", "x = 3.1"])
def test_not_an_api_site(text):
    assert api.api_site(text, len(text)) is None


def test_split_name():
    assert api.split_name("HTTPSessionPool") == ["http", "session", "pool"]
    assert api.split_name("my_cart2") == ["my", "cart", "2"]


# --- correlation, each rule on its own (jedi off) ---------------------------------------------


def test_import_alias(idx):
    c = at_end(idx, "import shop.checkout as co\nco.")
    assert (c.owner.qualname, c.source) == ("shop.checkout", "alias")
    assert {"open_cart", "checkout", "restock"} <= set(c.names)


def test_constructor_assignment(idx):
    c = at_end(idx, "from shop import Cart\ncart = Cart(None)\ncart.")
    assert (c.owner.qualname, c.source) == ("shop.cart.Cart", "annotation")


def test_annotated_return_of_an_imported_function(idx):
    c = at_end(idx, "from shop.checkout import open_cart\nbasket = open_cart(None)\nbasket.")
    assert c.owner.qualname == "shop.cart.Cart"


def test_annotated_parameter(idx):
    c = at_end(idx, "from shop import Catalog\n\ndef f(store: 'Catalog', n: int):\n    store.")
    assert (c.owner.qualname, c.source) == ("shop.catalog.Catalog", "annotation")
    assert set(c.names) >= {"lookup", "register", "products"}


def test_self_in_an_indexed_class(idx):
    text = (REPO / "shop" / "cart.py").read_text()
    cut = text.index("self.lines.pop") + len("self.")
    c = api.correlate(idx, text[:cut], cut, str(REPO / "shop" / "cart.py"), str(REPO),
                      use_jedi=False)
    assert (c.owner.qualname, c.source) == ("shop.cart.Cart", "self")
    assert "clear" in c.names  # inherited from BaseContainer


def test_name_similarity_fallback(idx):
    c = at_end(idx, "from shop import Cart, Catalog\nmy_cart = make()\nmy_cart.")
    assert (c.owner.qualname, c.source) == ("shop.cart.Cart", "name")
    assert at_end(idx, "from shop import Cart\nwidget = make()\nwidget.") is None


@pytest.mark.parametrize("text", ["from shop.checkout import open_cart\nopen_cart(None).",
                                  "from shop import Cart\nCart(None).",
                                  "from shop import Cart\nx = [Cart(None)]\nx[0]."])
def test_jedi_infers_call_and_subscript_receivers(idx, text):
    c = at_end(idx, text, use_jedi=True)
    assert (c.owner.qualname, c.source) == ("shop.cart.Cart", "jedi")


def test_jedi_first_and_non_local_types_stop(idx):
    c = at_end(idx, "from shop import Cart\nthing = Cart(None)\nthing.", use_jedi=True)
    assert (c.owner.qualname, c.source) == ("shop.cart.Cart", "jedi")
    # jedi knows `my_cart` is a str: the name heuristic must not claim it is a Cart
    assert at_end(idx, "from shop import Cart\nmy_cart = 'x'\nmy_cart.", use_jedi=True) is None


# --- ranking and the signature block ----------------------------------------------------------


def test_ranking_usage_then_recency_then_privacy(idx):
    c = at_end(idx, "from shop import Cart\ncart = Cart(None)\ncart.")
    names = c.names
    assert names.index("add_item") < names.index("remove_item")  # used 3 times vs never
    assert names.index("remove_item") < names.index("_price") < names.index("__init__")
    fresh = ApiIndex(REPO)
    a = Symbol("m.f", "f", "function", "m", "f()", "", "/a.py", 1)
    b = Symbol("m.g", "g", "function", "m", "g()", "", "/b.py", 1)
    fresh.edited = {"/a.py": 1.0, "/b.py": 2.0}
    assert [s.name for s in api.rank(fresh, [a, b])] == ["g", "f"]  # b.py edited last


ENGINE_PY = """class Engine:
    def __init__(self) -> None: ...
    def start(self) -> None: ...
    def stop(self) -> None: ...
    def reset(self) -> None: ...
    def status(self) -> str:
        self.reset()
        return "ok"
"""


def _prior_workspace(tmp_path: Path) -> ApiIndex:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "engine.py").write_text(ENGINE_PY)
    (tmp_path / "users.py").write_text(
        "from pkg.engine import Engine\ne = Engine()\ne.start()\ne.start()\ne.start()\ne.stop()\n")
    return ApiIndex.build(tmp_path)


def counts(c, name: str) -> dict[str, float]:
    return {k: v for k, v in c.evidence[name].items() if v}


def test_evidence_counts_workspace_calls_buffer_calls_and_same_receiver_uses(tmp_path):
    idx = _prior_workspace(tmp_path)
    buffer = ("from pkg.engine import Engine\nmotor = Engine()\nmotor.reset()\nmotor.reset\n"
              "other.stop()\nmotor.")
    after = "\nmotor.status()\n"  # text after the cursor is evidence too
    text = buffer + after
    c = api.correlate(idx, text, len(buffer), str(tmp_path / "new.py"), str(tmp_path),
                      use_jedi=False)
    assert c.owner.qualname == "pkg.engine.Engine"
    # reset: 1 call in the buffer, 2 uses on `motor`, 1 call on a receiver named `motor`
    # (self.reset() in the class is not counted)
    assert counts(c, "reset") == {"buffer": 1, "recv_uses": 2, "same_receiver": 1}
    assert counts(c, "start") == {"elsewhere": 3}  # 3 calls in users.py
    assert counts(c, "stop") == {"elsewhere": 1, "buffer": 1}  # users.py + `other.`
    # after the cursor: a call, a use of `motor`, a call on `motor`
    assert counts(c, "status") == {"buffer": 1, "recv_uses": 1, "same_receiver": 1}
    # the prior is the weighted evidence, and the ranking follows it
    names = [s.name for s in c.ranked]
    assert c.prior == api.rank_scores(c.evidence, names, text, len(buffer))
    assert [c.prior[n] for n in names] == sorted(c.prior.values(), reverse=True)
    assert c.prior["reset"] > c.prior["stop"] > c.prior["__init__"]


def test_evidence_counts_calls_on_receivers_of_the_same_name(tmp_path):
    idx = _prior_workspace(tmp_path)
    (tmp_path / "garage.py").write_text("motor.stop()\nmotor.stop()\nother.reset()\n"
                                        "super().__init__()\nother.__init__()\n")
    idx.update_file(tmp_path / "garage.py")
    text = "from pkg.engine import Engine\nmotor = Engine()\nmotor."
    c = api.correlate(idx, text, len(text), None, str(tmp_path), use_jedi=False)
    # stop: 3 calls in the workspace, 2 of them on a receiver named `motor`
    assert counts(c, "stop") == {"elsewhere": 3, "same_receiver": 2}
    assert counts(c, "start") == {"elsewhere": 3}  # called on `e`, not on `motor`
    assert counts(c, "reset") == {"elsewhere": 1}
    assert c.names[:3] == ["stop", "start", "reset"]
    assert counts(c, "__init__") == {}  # dunders: only evidence about this receiver counts


def test_evidence_of_the_enclosing_function_and_super(tmp_path):
    idx = _prior_workspace(tmp_path)
    (tmp_path / "sub.py").write_text("class A:\n    def stop(self):\n        super().stop()\n"
                                     "        super().__init__()\n")
    idx.update_file(tmp_path / "sub.py")
    members = list(idx.members(idx.resolve("pkg.engine", "Engine")).values())
    text = ("from pkg.engine import Engine\n\nclass Sub(Engine):\n    def reset(self):\n"
            "        x = 1\n        super().")

    def evidence(doc: str) -> dict[str, dict[str, float]]:
        got = api.prior_features(idx, api._current_module(idx, doc, None),
                                 api.api_site(doc, len(doc)), members, doc, len(doc))
        return {n: {k: v for k, v in f.items() if v} for n, f in got.items()}

    got = evidence(text)
    # inside `reset`, after super(): the overridden implementation
    assert got["reset"] == {"enclosing": 1, "base_call": 1}
    # stop: 2 calls in the workspace (users.py, sub.py), one of them on `super()`
    assert got["stop"] == {"elsewhere": 2, "same_receiver": 1}
    assert got["__init__"] == {"same_receiver": 1}  # `super().__init__(` in sub.py
    for receiver, base in (("Engine", 1), ("motor", 0)):
        # a class as the receiver is a base call too; an instance only shares the name
        doc = text.replace("super().", f"motor = Engine()\n        {receiver}.")
        assert evidence(doc)["reset"] == {"enclosing": 1, **({"base_call": 1} if base else {})}
    # at module level (no enclosing def) there is no such evidence
    assert evidence("from pkg.engine import Engine\nsuper().")["reset"] == {}


@pytest.mark.parametrize("text, expected", [
    ("def f():\n    if x:\n        y.", "f"),
    ("def f():\n    def g():\n        pass\n    # note\n\n    y.", "f"),  # g has ended
    ("class A:\n    async def m(self):\n        call(\n            1,\n        )\n        y.",
     "m"),
    ("def helper():\n    pass\nclass B:\n    attr = y.", None),  # a class body: no def
    ("def f():\n    pass\ny.", None),
])
def test_enclosing_def_by_indentation(text, expected):
    assert api._enclosing_def(text, len(text) - 1) == expected


def test_evidence_does_not_count_the_buffer_twice_and_follows_edits(tmp_path):
    idx = _prior_workspace(tmp_path)
    users = tmp_path / "users.py"
    text = users.read_text() + "e."
    c = api.correlate(idx, text, len(text), str(users), str(tmp_path), use_jedi=False)
    # users.py is indexed (3 start calls) and is the buffer: counted as calls in the buffer,
    # as uses of the receiver `e` and as calls on receivers named `e`, never as "elsewhere"
    assert counts(c, "start") == {"buffer": 3, "recv_uses": 3, "same_receiver": 3}
    idx.update_file(users, "from pkg.engine import Engine\ne = Engine()\n")
    other = "from pkg.engine import Engine\nx = Engine()\nx."
    c = api.correlate(idx, other, len(other), None, str(tmp_path), use_jedi=False)
    assert counts(c, "start") == {} and counts(c, "stop") == {}  # the calls are gone


def test_the_ranking_follows_the_words_around_the_cursor(tmp_path):
    idx = _prior_workspace(tmp_path)
    plain = "from pkg.engine import Engine\nmotor = Engine()\nmotor."
    named = "from pkg.engine import Engine\nmotor = Engine()\nstatus_now = motor."
    first = api.correlate(idx, plain, len(plain), None, str(tmp_path), use_jedi=False)
    second = api.correlate(idx, named, len(named), None, str(tmp_path), use_jedi=False)
    assert first.names[0] == "start"  # the most called elsewhere
    assert second.names[0] == "status"  # `status_now = motor.`


def test_matching_filters_by_the_typed_prefix(idx):
    c = at_end(idx, "from shop import Cart\ncart = Cart(None)\ncart.re")
    assert [s.name for s in c.matching()] == ["remove_item"]
    assert c.site.typed == "re" and len(c.ranked) > 1  # the block keeps the whole list


def test_order_names_puts_ranked_first(idx):
    c = at_end(idx, "from shop import Cart\ncart = Cart(None)\ncart.")
    jedi_alpha = sorted(["total", "add_item", "mro", "clear", "remove_item"])
    ordered = api.order_names(c, jedi_alpha)
    assert ordered[0] == "add_item" and ordered[-1] == "mro"  # unknown names keep jedi's order
    assert sorted(ordered) == jedi_alpha
    assert api.order_names(None, jedi_alpha) == jedi_alpha


def test_signature_block_budget_and_deterministic_truncation(idx):
    c = at_end(idx, "from shop import Cart\ncart = Cart(None)\ncart.")

    def count(text: str) -> int:
        return len(text.split())

    full = api.signature_block(c, 10_000, count)
    assert full.startswith("# Local APIs of shop.cart.Cart")
    assert "# Cart.add_item(sku: str, quantity: int = 1) -> None" in full
    assert "__init__" not in full  # dunders are left out
    for budget in (40, 25, 12):
        block = api.signature_block(c, budget, count)
        assert count(block) <= budget
        assert full.startswith(block)  # a smaller budget keeps a prefix of the same list
    assert api.signature_block(c, 3, count) == ""
    assert api.signature_block(None, 100, count) == ""


# --- search -----------------------------------------------------------------------------------


def test_bm25_search_finds_by_docstring_and_name(idx):
    search = api.ApiSearch(idx)
    hits = search.search("add a product to the catalog", k=3)
    assert hits[0].symbol.qualname == "shop.catalog.Catalog.register"
    assert search.search("discounted price", k=1)[0].symbol.name == "discounted"
    assert all(h.score > 0 for h in hits)
    row = api.hit_json(hits[0])
    assert row["path"].endswith("catalog.py") and row["line"] == 28
    with pytest.raises(ValueError):
        search.search("   ")


def test_search_follows_index_updates(tmp_path):
    (tmp_path / "m.py").write_text("def alpha():\n    '''Frobnicate the widget.'''\n")
    idx = ApiIndex.build(tmp_path)
    search = api.ApiSearch(idx)
    assert search.search("frobnicate widget")[0].symbol.name == "alpha"
    idx.update_file(tmp_path / "m.py", "def beta():\n    '''Frobnicate the widget.'''\n")
    assert [h.symbol.name for h in search.search("frobnicate widget")] == ["beta"]


@pytest.mark.slow
@pytest.mark.skipif(not api.Reranker.available(), reason="holefill[rerank] is not installed")
def test_reranker_reorders_the_bm25_hits(idx):
    search = api.ApiSearch(idx, api.Reranker())
    plain = api.ApiSearch(idx).search("remove everything from the container", k=5)
    reranked = search.search("remove everything from the container", k=5)
    assert {h.symbol.qualname for h in reranked} <= {h.symbol.qualname for h in
                                                     api.ApiSearch(idx).search(
                                                         "remove everything from the container",
                                                         k=30)}
    assert reranked[0].symbol.name == "clear" and plain
    assert all(-1.0 <= h.score <= 1.0 for h in reranked)


# --- the language server (fake engine) --------------------------------------------------------

APP_URI = (REPO / "app.py").as_uri()
CART_URI = (REPO / "shop" / "cart.py").as_uri()


async def search_api(client, params):
    return await asyncio.wait_for(
        client.protocol.send_request_async("holefill/searchApi", params), 30)


async def test_search_api_and_index_progress(lsp):
    client = await lsp.start(root=REPO)
    hits = await search_api(client, {"query": "take a product out of the cart", "limit": 3})
    assert hits[0]["qualname"] == "shop.cart.Cart.remove_item"
    assert hits[0]["uri"] == CART_URI and hits[0]["line"] == 25
    assert hits[0]["signature"] == "Cart.remove_item(sku: str) -> None"
    assert len(hits) <= 3
    ends = [v.message for token, values in client.progress_reports.items()
            if str(token).startswith("holefill/index/") for v in values
            if isinstance(v, types.WorkDoneProgressEnd)]
    assert ends and ends[0].startswith("indexed 5 files")
    with pytest.raises(Exception, match="non-empty query"):
        await search_api(client, {"query": ""})


async def test_did_change_reindexes_the_buffer(lsp):
    client = await lsp.start(root=REPO)
    await search_api(client, {"query": "cart"})  # the index is built
    text = (REPO / "shop" / "cart.py").read_text()
    lsp.open(client, CART_URI, text)
    renamed = text.replace("def remove_item", "def discard_line")
    client.text_document_did_change(types.DidChangeTextDocumentParams(
        text_document=types.VersionedTextDocumentIdentifier(uri=CART_URI, version=2),
        content_changes=[types.TextDocumentContentChangeWholeDocument(text=renamed)]))

    async def top():
        return (await search_api(client, {"query": "take a product out of the cart"}))[0]

    hit = await lsp.wait_until_async(top, 10, lambda h: h["name"] == "discard_line")
    assert hit["qualname"] == "shop.cart.Cart.discard_line"


async def test_completion_items_follow_the_api_ranking(lsp):
    client = await lsp.start(root=REPO)
    await search_api(client, {"query": "cart"})  # the index is built
    lsp.open(client, APP_URI, APP)
    line = APP.split("\n").index('    cart.add_item("pear")')
    params = types.CompletionParams(text_document=types.TextDocumentIdentifier(uri=APP_URI),
                                    position=types.Position(line=line, character=9))
    result = await asyncio.wait_for(client.text_document_completion_async(params), 30)
    items = sorted(result.items, key=lambda i: i.sort_text)
    labels = [i.label for i in items]
    assert labels[0] == "add_item"  # the most used Cart method, not jedi's alphabetical first
    assert labels != sorted(labels)
    assert {"clear", "total", "remove_item", "lines"} <= set(labels)


# --- the real model: the constrained name exists (slow) ---------------------------------------


@pytest.mark.slow
def test_constrained_completion_only_writes_existing_names(idx):
    from holefill.completion.engine import CompletionEngine, CompletionRequest
    from holefill.config import Settings

    engine = CompletionEngine.load(Settings(model=SMALL_MODEL, drafts=1, check_suggestions=False,
                                          max_new_tokens=12,
                                            api_context=True, constrain_api_names=True))
    engine.api_index = idx
    members = set(idx.members(idx.resolve("shop", "Cart")))
    cut = APP.index('cart.add_item("pear")') + len("cart.")
    for typed in ("", "t", "to", "cl", "re"):
        doc = APP[:cut] + typed
        result = engine.complete(CompletionRequest(text=doc, offset=len(doc),
                                                   workspace=str(REPO)))
        assert result.items, typed
        written = re.match(r"\w*", typed + result.items[0].text).group()
        assert written in members and written.startswith(typed), (typed, result.items[0].text)
    # a prefix no member has: no constraint, and no crash
    doc = APP[:cut] + "zz"
    engine.complete(CompletionRequest(text=doc, offset=len(doc), workspace=str(REPO)))


@pytest.mark.slow
def test_a_strong_name_prior_decides_the_written_name(idx):
    from holefill.completion.engine import CompletionEngine, CompletionRequest
    from holefill.config import Settings

    engine = CompletionEngine.load(Settings(model=SMALL_MODEL, drafts=1, check_suggestions=False,
                                          max_new_tokens=8,
                                            constrain_api_names=True, api_name_prior=50.0))
    engine.api_index = idx
    # before the cursor the buffer keeps removing items (what the model copies); after it, it
    # asks for the total more often, which the prior counts: the prior's favourite wins
    doc = ("from shop import Cart\n\n\ndef main(cart: Cart) -> None:\n"
           + "    cart.remove_item('a')\n" * 3 + "    cart.")
    text = doc + "\n" + "    cart.total()\n" * 10
    c = api.correlate(idx, text, len(doc), None, str(REPO))
    favourite = c.names[0]
    result = engine.complete(CompletionRequest(text=text, offset=len(doc), workspace=str(REPO)))
    assert re.match(r"\w*", result.items[0].text).group() == favourite == "total"


def test_name_features_describe_each_candidate_at_the_cursor():
    text = ("def refresh_total_price(cart):\n    items = cart.items()\n"
            "    price = cart.")
    evidence = {"total_price": {"recv_uses": 0.0, "elsewhere": 3.0, "buffer": 1.0,
                                "same_receiver": 0.0, "enclosing": 0.0, "base_call": 0.0}}
    names = ["total_price", "_items", "__len__", "clear"]
    rows = api.name_features(evidence, names, text, len(text))
    got = {n: dict(zip(api.NAME_FEATURES, r, strict=True)) for n, r in zip(names, rows,
                                                                             strict=True)}
    assert got["total_price"]["elsewhere"] == math.log1p(3.0)
    assert got["total_price"]["buffer"] == math.log1p(1.0)
    assert got["total_price"]["line_overlap"] == 0.5  # "price" is on the cursor line
    assert got["total_price"]["function_overlap"] == 1.0  # refresh_total_price
    assert got["_items"]["near_overlap"] == 1.0  # `items` on the line above
    assert got["_items"]["private"] == 1.0 and got["__len__"]["dunder"] == 1.0
    assert not any(got["clear"].values())


# --- the command line ---------------------------------------------------------------------------


def run_cli(*args: str):
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "holefill.cli", "api", *args],
                          capture_output=True, text=True, timeout=120,
                          cwd=Path(__file__).resolve().parents[1])


def test_cli_api_json_and_text():
    import json

    proc = run_cli("take a product out of the cart", "--workspace", str(REPO), "--json",
                   "--top", "2")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["query"] == "take a product out of the cart" and len(data["items"]) == 2
    assert data["items"][0]["qualname"] == "shop.cart.Cart.remove_item"
    assert data["items"][0]["line"] == 25
    text = run_cli("discounted price", "--workspace", str(REPO))
    assert text.returncode == 0
    assert text.stdout.splitlines()[0].startswith("shop.catalog.Product.discounted  ")
    assert "(shop/catalog.py:17)" in text.stdout.splitlines()[0]


def test_cli_api_bad_input():
    empty = run_cli("  ", "--workspace", str(REPO))
    assert empty.returncode != 0 and "query is empty" in empty.stderr
    missing = run_cli("x", "--workspace", str(REPO / "nope"))
    assert missing.returncode != 0 and "not a directory" in missing.stderr
