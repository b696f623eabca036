"""An outage is logged once when it starts (with its cause), as a count now and then, and once
when it ends; a library's own traceback about it is dropped, an unexpected one kept."""

from __future__ import annotations

import logging

from sqlalchemy import exc

from mlops.kernel.outages import Outage, QuietOutages, cause


def refused() -> exc.OperationalError:
    driver = ConnectionRefusedError('connection to server at "127.0.0.1", port 5432 failed\nIs the server running?')
    return exc.OperationalError("SELECT 1", {}, driver)


def test_an_outage_is_three_kinds_of_lines_not_one_per_failure(caplog, monkeypatch):
    clock = [100.0]
    monkeypatch.setattr("mlops.kernel.outages.time.monotonic", lambda: clock[0])
    outage = Outage("dataset database", every=10)
    with caplog.at_level(logging.WARNING, logger="mlops.outages"):
        outage.recovered()  # nothing to say while it is up
        for _ in range(800):
            outage.failed(refused())
            clock[0] += 1 / 32  # 32 failures a second for 25 s
        outage.recovered()
        outage.recovered()
    lines = [record.getMessage() for record in caplog.records]
    assert len(lines) == 4, lines
    assert lines[0].startswith("dataset database unavailable: ConnectionRefusedError: connection to server at")
    assert "Is the server running" not in lines[0] and "SELECT 1" not in lines[0]
    assert lines[1] == "dataset database still unavailable after 10 s: 320 more failed requests or checks"
    assert lines[2] == "dataset database still unavailable after 20 s: 320 more failed requests or checks"
    assert lines[3] == "dataset database available again after 25.0 s (800 failed requests or checks meanwhile)"
    assert not outage.down


def test_library_tracebacks_about_an_outage_are_dropped_and_others_kept():
    quiet = QuietOutages()

    def record(error: BaseException) -> logging.LogRecord:
        try:
            raise error
        except BaseException as raised:
            wrapped = raised
        return logging.LogRecord(
            "mlflow.store.db.utils", logging.ERROR, __file__, 1, "db error", None, (type(wrapped), wrapped, None)
        )

    try:
        try:
            raise refused()
        except exc.OperationalError as error:
            raise RuntimeError("MLflow wrapped it") from error
    except RuntimeError as chained:
        assert not quiet.filter(record(chained))
    assert not quiet.filter(record(refused()))
    assert quiet.filter(record(ValueError("a bug")))
    assert quiet.filter(logging.LogRecord("x", logging.ERROR, __file__, 1, "no traceback", None, None))
    assert cause(ValueError("")) == "ValueError: (no message)"
