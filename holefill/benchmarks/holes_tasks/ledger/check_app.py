from ledger import apply, can_withdraw, record, signed, total_fees
from models import Account, ChargeFee, Close, Deposit, Freeze, Status, Transaction, TxKind, Withdraw


def run(account, *ops):
    for op in ops:
        account = apply(account, op)
    return account


def test_signed():
    assert signed(Transaction(TxKind.DEPOSIT, 500)) == 500
    assert signed(Transaction(TxKind.WITHDRAWAL, 200)) == -200
    assert signed(Transaction(TxKind.FEE, 3)) == -3


def test_record_updates_balance_and_history():
    account = record(Account("ann", 100), Transaction(TxKind.FEE, 30, "card"))
    assert account.balance_cents == 70
    assert account.history == (Transaction(TxKind.FEE, 30, "card"),)


def test_deposit():
    account = run(Account("ann"), Deposit(1000), Deposit(-5))
    assert account.balance_cents == 1000 and len(account.history) == 1


def test_withdraw_within_balance():
    account = run(Account("ann"), Deposit(1000), Withdraw(400))
    assert account.balance_cents == 600
    assert account.history[-1] == Transaction(TxKind.WITHDRAWAL, 400)


def test_withdraw_refused_beyond_overdraft():
    account = run(Account("ann", overdraft_cents=100), Deposit(50), Withdraw(200))
    assert account.balance_cents == 50
    assert run(Account("bo", overdraft_cents=100), Deposit(50), Withdraw(150)).balance_cents == -100


def test_can_withdraw():
    assert can_withdraw(Account("a", 500), 500)
    assert not can_withdraw(Account("a", 500), 501)
    assert not can_withdraw(Account("a", 500, status=Status.FROZEN), 10)


def test_fees():
    account = run(Account("ann"), Deposit(900), ChargeFee(25, "atm"), ChargeFee(10, "sms"))
    assert account.balance_cents == 865 and total_fees(account) == 35
    assert total_fees(Account("x")) == 0


def test_freeze_blocks_money_moves():
    account = run(Account("ann"), Deposit(300), Freeze(), Deposit(100), Withdraw(50))
    assert account.status is Status.FROZEN and account.balance_cents == 300


def test_close_only_when_empty():
    assert run(Account("ann"), Deposit(10), Close()).status is Status.OPEN
    closed = run(Account("bo"), Close(), Deposit(10))
    assert closed.status is Status.CLOSED and closed.balance_cents == 0
