"""Applying operations to accounts."""

from dataclasses import replace

from models import (
    Account,
    ChargeFee,
    Close,
    Deposit,
    Freeze,
    Operation,
    Status,
    Transaction,
    TxKind,
    Withdraw,
)


def signed(tx: Transaction) -> int:
    if tx.kind == TxKind.DEPOSIT:
        return tx.amount_cents
    return -tx.amount_cents  # HOLE


def record(account: Account, tx: Transaction) -> Account:
    return replace(account, balance_cents=account.balance_cents + signed(tx), history=account.history + (tx,))  # HOLE


def can_withdraw(account: Account, amount_cents: int) -> bool:
    return account.status == Status.OPEN and account.balance_cents + account.overdraft_cents >= amount_cents  # HOLE


def total_fees(account: Account) -> int:
    return sum(tx.amount_cents for tx in account.history if tx.kind == TxKind.FEE)  # HOLE


def apply(account: Account, op: Operation) -> Account:
    if account.status == Status.CLOSED:
        return account
    if isinstance(op, Deposit):
        if op.amount_cents <= 0 or account.status != Status.OPEN:
            return account
        return record(account, Transaction(TxKind.DEPOSIT, op.amount_cents))
    if isinstance(op, Withdraw):
        if not can_withdraw(account, op.amount_cents):
            return account
        tx = Transaction(TxKind.WITHDRAWAL, op.amount_cents)  # HOLE
        return record(account, tx)
    if isinstance(op, ChargeFee):
        return record(account, Transaction(TxKind.FEE, op.amount_cents, op.reason))
    if isinstance(op, Freeze):
        return replace(account, status=Status.FROZEN)  # HOLE
    if isinstance(op, Close):
        if account.balance_cents != 0:
            return account
        return replace(account, status=Status.CLOSED)
    return account
