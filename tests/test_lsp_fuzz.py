"""A seeded stream of random edits and requests, valid and not, at the language server (the fake
engine of tests/data/fake_server.py, so no model is loaded), over a raw JSON-RPC client that can
send anything: every request must be answered, the server's document must equal the client's
mirror after every edit (and the engine's cache edits must rebuild the same text), and the server
must serve normally at the end.

What it generates: documents of identifiers, spaces, tabs, the three line ends (\\n, \\r\\n, \\r),
multi-byte and astral-plane characters (UTF-16 surrogate pairs), form feeds and U+2028 (no line
ends in LSP), lone surrogates, conflict markers; incremental edits at valid, past-the-end and
reversed ranges, several per didChange, whole-document replacements and huge insertions; inline
completion, completion, code actions, searchApi and the ChatLSP methods at valid and out-of-range
positions; mutated params (wrong types, negative and huge numbers, missing fields), unknown
methods, odd ids, notifications sent as requests, bodies that are not JSON; `$/cancelRequest`
for pending, finished and unknown requests; malformed notifications.

CI runs a short seeded stream (FUZZ_STEPS, a few seconds); `HOLEFILL_FUZZ_STEPS=5000` (and
`HOLEFILL_FUZZ_SEED=...`) runs a longer one, with bigger insertions.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import re
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data"
FUZZ_STEPS = int(os.environ.get("HOLEFILL_FUZZ_STEPS", "250"))
SEED = int(os.environ.get("HOLEFILL_FUZZ_SEED", "17"))
LONG = FUZZ_STEPS > 1000
HUGE_CHARS = 2_000_000 if LONG else 150_000
ANSWER_S = 30.0  # a request not answered in this time counts as never answered
CHECK_EVERY = 20  # steps between comparisons of the server's documents with the mirror
SECRET = "SECRET_SOURCE_4711"  # in every document: must never reach a log

INVALID_REQUEST, METHOD_NOT_FOUND, INVALID_PARAMS, REQUEST_CANCELLED = -32600, -32601, -32602, -32800
PARSE_ERROR = -32700

WORDS = ["x", "value", "items", "self", "os", "path", "return", "def", "import", "if", "for"]
PIECES = [
    " ", " ", "    ", "\t", "(", ")", ".", ":", "=", "'", "#", ",",
    "\n", "\n", "\r\n", "\r", "é", "中", "😀", "𝔘", "\u2028", "\x0c", "\x85", "\ud800",
]  # fmt: skip
CONFLICT = "<<<<<<< ours\nx = 1\n=======\nx = 2\n>>>>>>> theirs\n"
LINE_END = re.compile(r"\r\n|\r|\n")


# --- the client's mirror: LSP positions <-> offsets, written independently of the server ---------


def code_units(ch: str, encoding: str) -> int:
    if encoding == "utf-32":
        return 1
    if encoding == "utf-8":
        return len(ch.encode("utf-8", "surrogatepass"))
    return 2 if ord(ch) > 0xFFFF else 1


def line_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of each line without its line end."""
    spans, start = [], 0
    for match in LINE_END.finditer(text):
        spans.append((start, match.start()))
        start = match.end()
    spans.append((start, len(text)))
    return spans


def position_of(text: str, offset: int, encoding: str) -> dict[str, int]:
    for line, (start, end) in enumerate(line_spans(text)):
        if start <= offset <= end:
            units = sum(code_units(ch, encoding) for ch in text[start:offset])
            return {"line": line, "character": units}
    raise AssertionError("offset inside a line end")


def offset_of(text: str, position: dict[str, int], encoding: str) -> int:
    """Clamped as LSP asks: past the line's end -> its end; past the last line -> the text's
    end; inside a character -> after it."""
    spans = line_spans(text)
    if position["line"] >= len(spans):
        return len(text)
    start, end = spans[position["line"]]
    seen, offset = 0, start
    while offset < end and seen < position["character"]:
        seen += code_units(text[offset], encoding)
        offset += 1
    return offset


def addressable(text: str, offset: int) -> bool:
    """Not between the \\r and \\n of a line end (no LSP position is there)."""
    return not (0 < offset < len(text) and text[offset - 1] == "\r" and text[offset] == "\n")


def engine_text(text: str) -> str:
    """Lone surrogates reach the engine as U+FFFD, one character for one."""
    return text.replace("\ud800", "\ufffd")


def apply(text: str, start: int, end: int, new: str) -> str:
    return text[:start] + new + text[end:]


# --- a raw JSON-RPC client ---------------------------------------------------------------------


@dataclass
class Pending:
    method: str
    future: asyncio.Future[dict[str, Any]]
    expect_codes: set[int] | None = None  # error codes the answer must have (None: any answer)
    check: Any = None  # called with the result of a successful answer


@dataclass
class RawClient:
    process: asyncio.subprocess.Process
    stderr_path: Path
    pending: dict[Any, Pending] = field(default_factory=dict)
    null_id_answers: list[dict[str, Any]] = field(default_factory=list)
    notifications: list[dict[str, Any]] = field(default_factory=list)
    next_id: int = 0
    reader: asyncio.Task[None] | None = None

    @classmethod
    async def start(cls) -> RawClient:
        stderr_path = Path(tempfile.mkstemp(prefix="holefill-fuzz-", suffix=".log")[1])
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        process = await asyncio.create_subprocess_exec(
            sys.executable, str(DATA / "fake_server.py"), cwd=str(ROOT), env=env,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=stderr_path.open("wb"), limit=2**26,
        )  # fmt: skip
        client = cls(process, stderr_path)
        client.reader = asyncio.ensure_future(client._read())
        return client

    def send_body(self, body: bytes) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)

    def send(self, message: Any, ascii_only: bool = True) -> None:
        self.send_body(json.dumps(message, ensure_ascii=ascii_only).encode("utf-8"))

    def request(
        self, method: Any, params: Any = None, *, msg_id: Any = None, omit_params: bool = False,
        expect_codes: set[int] | None = None, check: Any = None, ascii_only: bool = True,
    ) -> Any:  # fmt: skip
        if msg_id is None:
            self.next_id += 1
            msg_id = self.next_id
        message = {"jsonrpc": "2.0", "id": msg_id, "method": method}
        if not omit_params:
            message["params"] = params
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.pending[msg_id] = Pending(str(method), future, expect_codes, check)
        self.send(message, ascii_only)
        return msg_id

    def notify(self, method: str, params: Any, ascii_only: bool = True) -> None:
        self.send({"jsonrpc": "2.0", "method": method, "params": params}, ascii_only)

    async def call(self, method: str, params: Any = None) -> Any:
        """A request whose success the test needs: its result."""
        msg_id = self.request(method, params)
        answer = await asyncio.wait_for(self.pending[msg_id].future, ANSWER_S)
        assert "result" in answer, f"{method}: {answer.get('error')}"
        return answer["result"]

    async def _read(self) -> None:
        stream = self.process.stdout
        assert stream is not None
        while True:
            length = 0
            while (line := await stream.readline()) not in (b"\r\n", b""):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            if not length:
                return
            message = json.loads(await stream.readexactly(length))
            if "method" in message and "id" in message:  # the server asks: a null answer will do
                result = [None] * len(message["params"]["items"]) if message["method"] == (
                    "workspace/configuration") else None  # fmt: skip
                self.send({"jsonrpc": "2.0", "id": message["id"], "result": result})
            elif "method" in message:
                self.notifications.append(message)
            elif message.get("id") is None:
                self.null_id_answers.append(message)
            elif (waiting := self.pending.get(message["id"])) is not None:
                assert not waiting.future.done(), f"two answers to request {message['id']}"
                waiting.future.set_result(message)

    async def settle(self) -> None:
        """Wait for every request sent so far; check the answers."""
        if not self.pending:
            return
        ids = list(self.pending)
        done, _ = await asyncio.wait(
            [self.pending[i].future for i in ids], timeout=ANSWER_S
        )
        unanswered = [f"{i}: {self.pending[i].method}" for i in ids if not self.pending[i].future.done()]
        assert not unanswered, f"never answered (seed {SEED}): {unanswered[:10]}"
        for msg_id in ids:
            waiting = self.pending.pop(msg_id)
            answer = waiting.future.result()
            code = answer.get("error", {}).get("code")
            if waiting.expect_codes is not None:
                assert code in waiting.expect_codes, f"{waiting.method} #{msg_id}: {answer}"
            assert code is None or isinstance(answer["error"].get("message"), str)
            if code is None and waiting.check is not None:
                waiting.check(answer["result"])

    def log_text(self) -> str:
        return self.stderr_path.read_text("utf-8", "replace")

    async def close(self) -> None:
        if self.process.returncode is None:
            self.process.kill()
            await self.process.wait()
        if self.reader is not None:
            self.reader.cancel()
            with contextlib.suppress(BaseException):
                await self.reader
        with contextlib.suppress(OSError):
            self.stderr_path.unlink()


# --- the fuzzer ------------------------------------------------------------------------------


class Fuzzer:
    def __init__(self, client: RawClient, rng: random.Random, encoding: str) -> None:
        self.client = client
        self.rng = rng
        self.encoding = encoding
        self.docs: dict[str, str] = {}  # uri -> the client's text
        self.versions: dict[str, int] = {}
        self.engine: dict[str, str] = {}  # uri -> the text the engine's cache edits rebuild
        self.events_seen = 0
        self.opened = 0
        self.counts: dict[str, int] = {}

    # text and positions

    def text(self, size: int) -> str:
        parts = []
        while sum(map(len, parts)) < size:
            roll = self.rng.random()
            if roll < 0.45:
                parts.append(self.rng.choice(WORDS))
            elif roll < 0.995:
                parts.append(self.rng.choice(PIECES))
            else:
                parts.append(CONFLICT)
        return "".join(parts)

    def huge(self) -> str:
        line = "value_{0} = compute('😀 é 中', value_{0})\r\n"
        return "".join(line.format(i) for i in range(HUGE_CHARS // len(line.format(0))))

    def offset(self, text: str) -> int:
        while True:
            offset = self.rng.randint(0, len(text))
            if addressable(text, offset):
                return offset

    def position(self, text: str) -> dict[str, int]:
        return position_of(text, self.offset(text), self.encoding)

    def wild_position(self, text: str) -> dict[str, int]:
        """A position a client may send that is not on a character boundary of the text: past
        the end of a line, past the last line, one code unit further (inside a character)."""
        spans = line_spans(text)
        kind = self.rng.randrange(3)
        if kind == 0:
            line = self.rng.randrange(len(spans))
            return {"line": line, "character": self.rng.choice([10**6, 2**31 - 1])}
        if kind == 1:
            line = len(spans) + self.rng.randrange(1000)
            return {"line": line, "character": self.rng.randrange(50)}
        base = self.position(text)
        return {**base, "character": base["character"] + 1}

    def uri(self) -> str:
        return self.rng.choice(sorted(self.docs))

    def count(self, what: str) -> None:
        self.counts[what] = self.counts.get(what, 0) + 1

    # documents

    def open(self, text: str) -> str:
        self.opened += 1
        uri = f"file:///tmp/holefill-fuzz/doc{self.opened}.py"
        text = f"{SECRET} = 1\n{text}"
        self.docs[uri], self.versions[uri] = text, 1
        self.engine[uri] = engine_text(text)
        self.client.notify("textDocument/didOpen", {"textDocument": {
            "uri": uri, "languageId": "python", "version": 1, "text": text}})  # fmt: skip
        return uri

    def close(self, uri: str) -> None:
        self.client.notify("textDocument/didClose", {"textDocument": {"uri": uri}})
        del self.docs[uri], self.versions[uri]

    def change(self, uri: str, changes: list[dict[str, Any]], expected: str) -> None:
        self.versions[uri] += 1
        params = {"textDocument": {"uri": uri, "version": self.versions[uri]},
                  "contentChanges": changes}  # fmt: skip
        ascii_only = self.rng.random() < 0.5 or "\ud800" in json.dumps(changes, ensure_ascii=False)
        self.client.notify("textDocument/didChange", params, ascii_only=ascii_only)
        self.docs[uri] = expected

    def edit_step(self) -> None:
        uri = self.uri()
        text = self.docs[uri]
        changes = []
        for _ in range(self.rng.choice([1, 1, 1, 2, 3])):
            roll = self.rng.random()
            if roll < 0.03:
                new = self.huge()
                self.count("huge insertion")
            elif roll < 0.6:
                new = self.text(self.rng.choice([0, 1, 1, 3, 10, 40]))
            else:
                new = ""
            if roll > 0.97:  # the whole document
                new = self.text(self.rng.choice([0, 200]))
                changes.append({"text": new})
                text = new
                self.count("whole-document change")
                continue
            a, b = sorted((self.offset(text), self.offset(text)))
            if self.rng.random() < 0.3:
                b = min(len(text), a + self.rng.randrange(3))  # short: CRLFs and pairs get split
                while not addressable(text, b):
                    b += 1
            start, end = position_of(text, a, self.encoding), position_of(text, b, self.encoding)
            wild = self.rng.random()
            if wild < 0.08:  # reversed: taken from end to start
                start, end = end, start
                self.count("reversed range")
                a, b = b, a
            elif wild < 0.16:  # past the end of the text or of a line: clamped
                end = self.wild_position(text)
                a, b = sorted((a, offset_of(text, end, self.encoding)))
                self.count("out-of-range edit")
            changes.append({"range": {"start": start, "end": end}, "text": new})
            text = apply(text, a, b, new) if a <= b else apply(text, b, a, new)
        self.change(uri, changes, text)
        self.count("edit")

    def malformed_change_step(self) -> None:
        uri = self.uri()
        good = {"range": {"start": {"line": 0, "character": 0}, "end": {"line": 0, "character": 1}},
                "text": "z"}  # fmt: skip
        bad_changes = self.rng.choice([
            [{**good, "range": "bad"}],
            [{**good, "range": {"start": {"line": -1, "character": 0}, "end": good["range"]["end"]}}],
            [{"range": good["range"]}],  # no text
            [good, {**good, "text": None}],  # the first one valid: all or nothing
            {"text": "z"},
            None,
        ])  # fmt: skip
        version: Any = self.rng.choice([self.versions[uri] + 1, "2", None])
        self.client.notify("textDocument/didChange", {
            "textDocument": {"uri": uri, "version": version}, "contentChanges": bad_changes})
        self.count("malformed didChange")  # the document stays as it was

    # requests

    def inline_params(self, uri: str, position: dict[str, int]) -> dict[str, Any]:
        return {"textDocument": {"uri": uri}, "position": position, "context": {"triggerKind": 1}}

    def inline_check(self, uri: str, position: dict[str, int]) -> Any:
        """A check that the engine got the cursor the mirror puts at `position` (when it
        answered at all: a newer request for the document gets an older one an empty list)."""
        expected = offset_of(self.docs[uri], position, self.encoding)

        def check(result: dict[str, Any]) -> None:
            for item in result["items"]:
                seen = json.loads(item["insertText"])["offset"]
                assert seen == expected, f"inline at {position} in {uri} (seed {SEED})"

        return check

    def inline_step(self, wild: bool = False) -> None:
        uri = self.uri()
        text = self.docs[uri]
        position = self.wild_position(text) if wild else self.position(text)
        self.client.request("textDocument/inlineCompletion", self.inline_params(uri, position),
                            check=self.inline_check(uri, position))  # fmt: skip
        self.count("inline completion (wild)" if wild else "inline completion")

    def other_request_step(self) -> None:
        uri = self.uri()
        text = self.docs[uri]
        position = self.wild_position(text) if self.rng.random() < 0.3 else self.position(text)
        doc = {"textDocument": {"uri": uri}, "position": position}
        kind = self.rng.randrange(5)
        if kind == 0 and len(self.docs[uri]) < 20_000:  # jedi takes its time on big texts
            self.client.request("textDocument/completion", doc, check=lambda r: "items" in r)
        elif kind == 1:
            end = self.position(text)
            self.client.request("textDocument/codeAction", {
                "textDocument": {"uri": uri}, "range": {"start": position, "end": end},
                "context": {"diagnostics": []}}, check=lambda r: isinstance(r, list))  # fmt: skip
        elif kind == 2:
            self.client.request("holefill/searchApi", self.rng.choice(["greet", {"query": "x"}]))
        elif kind == 3 and len(self.docs[uri]) < 20_000:
            self.client.request("chatlsp/expectedType", doc)
        else:
            self.client.request("textDocument/inlineCompletion", {
                **self.inline_params(uri, position),
                "formattingOptions": {"tabSize": 2, "insertSpaces": True}})  # fmt: skip
        self.count("other request")

    def mutate(self, value: Any) -> Any:
        """`value` with one leaf replaced by something of the wrong kind, or a key dropped."""
        if isinstance(value, dict) and value:
            key = self.rng.choice(sorted(value))
            if self.rng.random() < 0.25:
                return {k: v for k, v in value.items() if k != key}
            return {**value, key: self.mutate(value[key])}
        return self.rng.choice(["bad", -1, -(2**40), 2**53, 1.5, None, [], {}, True, "😀"])

    def bad_request_step(self) -> None:
        uri = self.uri()
        valid = self.inline_params(uri, self.position(self.docs[uri]))
        kind = self.rng.randrange(9)
        if kind == 0:  # the issue's own example
            self.client.request("textDocument/inlineCompletion",
                                {"textDocument": {}, "position": "bad"}, expect_codes={INVALID_PARAMS})
        elif kind == 1:  # the other example: a negative line
            position = {"line": -self.rng.randint(1, 10), "character": 0}
            self.client.request("textDocument/codeAction", {
                "textDocument": {"uri": uri}, "range": {"start": position, "end": position},
                "context": {"diagnostics": []}}, expect_codes={INVALID_PARAMS})  # fmt: skip
        elif kind == 2:  # some mutations stay valid: any answer will do
            methods = ["textDocument/inlineCompletion", "textDocument/codeAction"]
            if len(self.docs[uri]) < 20_000:  # jedi takes its time on big texts
                methods += ["textDocument/completion", "chatlsp/relevantTypes"]
            self.client.request(self.rng.choice(methods), self.mutate(valid))
        elif kind == 3:
            self.client.request(self.rng.choice(["textDocument/completion", "textDocument/codeAction"]),
                                self.rng.choice([None, [], "x", 5]), expect_codes={INVALID_PARAMS})
        elif kind == 4:
            self.client.request("textDocument/inlineCompletion", omit_params=True,
                                expect_codes={INVALID_PARAMS})
        elif kind == 5:
            self.client.request(self.rng.choice(["no/such", "textDocument/hover", "$/unknown"]),
                                valid, expect_codes={METHOD_NOT_FOUND})
        elif kind == 6:
            self.client.request(self.rng.choice(["textDocument/didSave", "initialized",
                                                 "$/cancelRequest"]), {"id": 1},
                                expect_codes={INVALID_REQUEST})  # notifications, with an id
        elif kind == 7:  # a string id, and a float one (JSON-RPC numbers; LSP wants integers)
            self.client.request("textDocument/inlineCompletion", valid, msg_id=f"s{self.rng.random()}")
            self.client.request("no/such", valid, msg_id=self.rng.random() + 0.5,
                                expect_codes={INVALID_REQUEST})
        else:  # nested "jsonrpc" keys once made pygls drop the whole request
            self.client.request("textDocument/completion", {
                **valid, "textDocument": {"uri": uri, "jsonrpc": "2.0"}})
        self.count("invalid request")

    def unreadable_step(self) -> None:
        body = self.rng.choice([b"{not json", b"[1, 2]", b"42", b'"x"', b"[" * 100_000,
                                b'{"jsonrpc": "2.0", "id": null, "method": "x"}'])
        self.client.send_body(body)
        self.null_id_expected += 1
        self.count("unreadable message")

    def cancel_step(self) -> None:
        uri = self.uri()
        msg_id = self.client.request(
            "textDocument/inlineCompletion", self.inline_params(uri, self.position(self.docs[uri])),
            expect_codes={None, REQUEST_CANCELLED},  # the answer, or the cancellation's error
        )
        if self.rng.random() < 0.7:
            self.client.notify("$/cancelRequest", {"id": msg_id})
        else:
            self.later_cancels.append(msg_id)  # after its answer: nothing left to cancel
        self.client.notify("$/cancelRequest", self.rng.choice([{"id": "never-sent"}, {}, None]))
        self.count("cancellation")

    def bad_notification_step(self) -> None:
        method, params = self.rng.choice([
            ("textDocument/didOpen", {"textDocument": {"uri": 5}}),
            ("textDocument/didOpen", None),
            ("textDocument/didClose", {"textDocument": {"uri": "file:///tmp/never-open.py"}}),
            ("textDocument/didChange", {"textDocument": {"uri": "file:///tmp/never-open.py", "version": 2},
                                        "contentChanges": [{"text": "x"}]}),
            ("textDocument/didSave", {"textDocument": {}}),
            ("workspace/didChangeConfiguration", {"settings": {"holefill": 5}}),
            ("workspace/didChangeConfiguration", {"settings": {"maxNewTokens": "many"}}),
            ("workspace/didChangeConfiguration", {"settings": {"jsonrpc": "2.0"}}),
            ("workspace/didChangeWatchedFiles", {"changes": [{"uri": 3, "type": 9}]}),
            ("$/setTrace", {"value": "loud"}),
            ("$/unknownNotification", {"x": 1}),
            ("no/such", None),
        ])  # fmt: skip
        self.client.notify(method, params)
        self.count("malformed notification")

    def reopen_step(self) -> None:
        if len(self.docs) > 1 and self.rng.random() < 0.5:
            self.close(self.uri())
        self.open(self.text(self.rng.choice([0, 50, 500])))
        self.count("open/close")

    # checks

    async def compare(self) -> None:
        """The server's text of every open document is the mirror's; the engine's cache edits
        since the last comparison rebuild it too (an inline request first: the engine thread
        runs edits and completions in order, so all edits sent so far have reached it)."""
        await self.client.settle()
        for msg_id in self.later_cancels:
            self.client.notify("$/cancelRequest", {"id": msg_id})
        self.later_cancels.clear()
        for uri, text in self.docs.items():
            held = await self.client.call("fake/document", {"uri": uri})
            assert held is not None, f"{uri} not open on the server"
            assert held["text"] == text, f"{uri}: the server's text differs (seed {SEED})"
            assert held["version"] == self.versions[uri]
        for uri, text in self.docs.items():  # alone, so never superseded: an item to check
            position = self.position(text)
            result = await self.client.call("textDocument/inlineCompletion",
                                            self.inline_params(uri, position))  # fmt: skip
            assert len(result["items"]) == 1
            self.inline_check(uri, position)(result)
        events = await self.client.call("fake/events", {"since": self.events_seen})
        self.events_seen += len(events)
        for event in events:
            if event["event"] == "edit" and event["doc_id"] in self.engine:
                start, end, new = event["edit"]
                self.engine[event["doc_id"]] = apply(self.engine[event["doc_id"]], start, end, new)
        for uri, text in self.docs.items():
            assert self.engine[uri] == engine_text(text), f"engine cache of {uri} (seed {SEED})"
        answers = self.client.null_id_answers
        assert len(answers) == self.null_id_expected, answers
        assert all(a["error"]["code"] in (PARSE_ERROR, INVALID_REQUEST) for a in answers)

    async def run(self, steps: int) -> None:
        self.null_id_expected = 0
        self.later_cancels: list[Any] = []
        self.open(self.text(300))
        self.open(CONFLICT + self.text(100))
        actions = [
            (self.edit_step, 30), (self.malformed_change_step, 4), (self.inline_step, 12),
            (lambda: self.inline_step(wild=True), 4), (self.other_request_step, 8),
            (self.bad_request_step, 12), (self.unreadable_step, 2), (self.cancel_step, 5),
            (self.bad_notification_step, 5), (self.reopen_step, 2),
        ]  # fmt: skip
        functions, weights = zip(*actions, strict=True)
        for step in range(steps):
            self.rng.choices(functions, weights)[0]()
            if step % CHECK_EVERY == CHECK_EVERY - 1:
                await self.compare()
        await self.compare()


async def serves_normally(client: RawClient) -> None:
    """After the stream: a fresh document completes as usual, then a clean shutdown."""
    uri = "file:///tmp/holefill-fuzz/final.py"
    client.notify("textDocument/didOpen", {"textDocument": {
        "uri": uri, "languageId": "python", "version": 1, "text": "import os\nos.pa"}})  # fmt: skip
    position = {"textDocument": {"uri": uri}, "position": {"line": 1, "character": 5}}
    completion = await client.call("textDocument/completion", position)
    assert "path" in [item["label"] for item in completion["items"]]
    inline = await client.call("textDocument/inlineCompletion", {**position, "context": {"triggerKind": 1}})
    assert json.loads(inline["items"][0]["insertText"])["offset"] == len("import os\nos.pa")
    assert await client.call("shutdown") is None
    client.request("textDocument/completion", position, expect_codes={INVALID_REQUEST})
    await client.settle()
    client.send({"jsonrpc": "2.0", "method": "exit"})
    assert await asyncio.wait_for(client.process.wait(), 30) == 0


@pytest.mark.parametrize("encoding", ["utf-16", "utf-8"])
async def test_every_request_is_answered_and_documents_stay_in_sync(encoding: str) -> None:
    rng = random.Random(f"{SEED}-{encoding}")
    client = await RawClient.start()
    try:
        init = await client.call("initialize", {
            "processId": None, "rootUri": DATA.as_uri(),
            "initializationOptions": {"maxNewTokens": 1},  # 20 ms per fake completion
            "capabilities": {"general": {"positionEncodings": [encoding]}, "textDocument": {
                "inlineCompletion": {}, "completion": {}, "codeAction": {}}}})  # fmt: skip
        assert init["capabilities"]["positionEncoding"] == encoding
        client.notify("initialized", {})
        for _ in range(600):  # the fake model is ready at once; edits reach its cache from then
            if any("model ready" in n["params"].get("message", "") for n in client.notifications):
                break
            await asyncio.sleep(0.05)
        fuzzer = Fuzzer(client, rng, encoding)
        await fuzzer.run(FUZZ_STEPS if encoding == "utf-16" else FUZZ_STEPS // 3)
        await serves_normally(client)
        logs = client.log_text()
        crashed = re.compile(r"ERROR holefill\.lsp: \S+ failed: |internal error \(")
        failures = [line for line in logs.splitlines() if crashed.search(line)]
        assert not failures, f"handlers crashed (seed {SEED}): {failures[:5]}"
        assert "dropped textDocument/didChange: invalid params (" in logs  # logged, not fatal
        assert SECRET not in logs
        assert not any(SECRET in json.dumps(n) for n in client.notifications if n["method"] == "window/logMessage")
        print(f"seed {SEED} {encoding}: {fuzzer.counts}")
    finally:
        await client.close()
