"""Accounts, transactions and account operations of a small bank ledger."""

from dataclasses import dataclass
from enum import Enum


class TxKind(Enum):
    DEPOSIT = "deposit"
    WITHDRAWAL = "withdrawal"
    FEE = "fee"


class Status(Enum):
    OPEN = "open"
    FROZEN = "frozen"
    CLOSED = "closed"


@dataclass(frozen=True)
class Transaction:
    kind: TxKind
    amount_cents: int
    memo: str = ""


@dataclass(frozen=True)
class Account:
    owner: str
    balance_cents: int = 0
    history: tuple[Transaction, ...] = ()
    status: Status = Status.OPEN
    overdraft_cents: int = 0


@dataclass(frozen=True)
class Deposit:
    amount_cents: int


@dataclass(frozen=True)
class Withdraw:
    amount_cents: int


@dataclass(frozen=True)
class ChargeFee:
    amount_cents: int
    reason: str


@dataclass(frozen=True)
class Freeze:
    pass


@dataclass(frozen=True)
class Close:
    pass


Operation = Deposit | Withdraw | ChargeFee | Freeze | Close
