"""KV sessions across documents under a memory budget, least recently used evicted first."""

from __future__ import annotations

from collections import OrderedDict

from holefill.kvcache.session import KVSession


class SessionStore:
    def __init__(self, budget_bytes: int) -> None:
        self.budget_bytes = budget_bytes
        self._sessions: OrderedDict[str, KVSession] = OrderedDict()

    def get(self, doc_id: str, touch: bool = True) -> KVSession | None:
        session = self._sessions.get(doc_id)
        if session is not None and touch:
            self._sessions.move_to_end(doc_id)
        return session

    def put(self, doc_id: str, session: KVSession) -> None:
        self._sessions[doc_id] = session
        self._sessions.move_to_end(doc_id)
        self.fit()

    def drop(self, doc_id: str) -> None:
        self._sessions.pop(doc_id, None)

    def ids(self) -> list[str]:
        return list(self._sessions)

    def nbytes(self) -> int:
        return sum(s.nbytes() for s in self._sessions.values())

    def fit(self) -> list[str]:
        """Evict least recently used sessions until the budget holds; the most recent one is
        always kept (a single document larger than the budget still gets completions)."""
        evicted = []
        while len(self._sessions) > 1 and self.nbytes() > self.budget_bytes:
            doc_id, _ = self._sessions.popitem(last=False)
            evicted.append(doc_id)
        return evicted

    def __len__(self) -> int:
        return len(self._sessions)
