"""SQLite with a fair queue for the write lock: writers wait their turn instead of polling.

SQLite's busy handler retries a locked BEGIN IMMEDIATE after sleeps that grow to 100 ms, so
under steady writes a waiter keeps losing to newcomers: with 50 API writers and a polled farm
some writes waited 5-20 s while the lock sat idle between retries (issue 7). Here a thread
first queues for its process's turn (handed on in arrival order), then for
the database file's turn across processes (a `flock` on `<database>.writelock`, retried
every half millisecond by that one thread), and only then runs BEGIN IMMEDIATE, which rarely
waits (only for writers that don't queue: the sqlite3 shell, another program). The queue is
bounded by the connection's `timeout` too; past it the write fails with "database is locked",
which the web answers with 503 (printfarm.ops.busy).
"""

from __future__ import annotations

import collections
import fcntl
import os
import threading
import time

from django.db.backends.sqlite3 import base
from django.db.utils import OperationalError

FLOCK_RETRY = 0.0005  # seconds between two tries for the database file's turn
HANDOVER_PAUSE = 0.001  # a turn handed on inside a process lets other processes try first


class _Turns:
    """A lock handed to its waiters in arrival order.

    threading.Lock lets the thread that releases it take it straight back, so one busy
    thread could keep the others waiting; here release hands the lock to the oldest waiter.
    """

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._waiting: collections.deque[threading.Event] = collections.deque()
        self._held = False

    def acquire(self, timeout: float) -> bool | None:
        """True: free, taken; None: handed over by the last holder; False: timed out."""
        with self._mutex:
            if not self._held:
                self._held = True
                return True
            me = threading.Event()
            self._waiting.append(me)
        if me.wait(max(timeout, 0.0)):
            return None
        with self._mutex:
            if me.is_set():  # handed over just as the wait ran out
                return None
            self._waiting.remove(me)
            return False

    def release(self) -> None:
        with self._mutex:
            if self._waiting:
                self._waiting.popleft().set()  # still held: now by that waiter
            else:
                self._held = False


class _Gate:
    """One per process and database file."""

    def __init__(self, path: str) -> None:
        self.turns = _Turns()
        self.fd = os.open(f"{path}.writelock", os.O_RDWR | os.O_CREAT, 0o600)

    def acquire(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        got = self.turns.acquire(timeout)
        if got is False:
            return False
        if got is None:
            # The last holder was in this process and others may be polling for the file:
            # give them the first chance, or one process's queue would keep the lock.
            time.sleep(HANDOVER_PAUSE)
        while True:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    self.turns.release()
                    return False
                time.sleep(FLOCK_RETRY)

    def release(self) -> None:
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        self.turns.release()


_gates: dict[tuple[int, str], _Gate] = {}
_gates_lock = threading.Lock()


def _gate_for(path: str) -> _Gate:
    key = (os.getpid(), path)  # a forked child must not share its parent's lock file handle
    with _gates_lock:
        if key not in _gates:
            _gates[key] = _Gate(path)
        return _gates[key]


class DatabaseWrapper(base.DatabaseWrapper):
    _holding: _Gate | None = None

    def _gate(self) -> _Gate | None:
        name = str(self.settings_dict["NAME"])
        if self.transaction_mode != "IMMEDIATE" or self.is_in_memory_db() or not name:
            return None
        return _gate_for(os.path.abspath(name))

    def _start_transaction_under_autocommit(self) -> None:
        gate = self._gate()
        if gate is not None and self._holding is None:
            timeout = float(self.settings_dict["OPTIONS"].get("timeout", 5.0))
            if not gate.acquire(timeout):
                raise OperationalError(f"database is locked (no turn to write within {timeout:g} s)")
            self._holding = gate
        try:
            super()._start_transaction_under_autocommit()
        except BaseException:
            self._let_go()
            raise

    def _let_go(self) -> None:
        gate, self._holding = self._holding, None
        if gate is not None:
            gate.release()

    def _commit(self) -> None:
        try:
            super()._commit()
        finally:
            if self.connection is None or not self.connection.in_transaction:
                self._let_go()  # a COMMIT that failed leaves the transaction open, for the rollback

    def _rollback(self) -> None:
        try:
            super()._rollback()
        finally:
            self._let_go()

    def _close(self) -> None:
        try:
            super()._close()
        finally:
            self._let_go()
