"""Refused requests are logged as one line; server errors keep their traceback."""

from __future__ import annotations

import logging
import sys

import pytest
from bentoml.exceptions import InvalidArgument, NotFound, ServiceUnavailable
from pydantic import ValidationError

from serving.client_errors import ClientErrorLogFilter, client_error_status
from serving.predictions import PredictRequest


def _validation_error() -> ValidationError:
    try:
        PredictRequest.model_validate({"symbol": "BTCUSDT", "horizon": 0})
    except ValidationError as exc:
        return exc
    raise AssertionError("the body should have been refused")


def _record(error: BaseException) -> logging.LogRecord:
    try:
        raise error
    except BaseException:
        exc_info = sys.exc_info()
    return logging.LogRecord(
        "bentoml._internal.server.http_app",
        logging.ERROR,
        __file__,
        1,
        "Exception on %s [%s]",
        ("/predict", "POST"),
        exc_info,
    )


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (NotFound("symbol: unknown symbol 'DOGEUSDT'"), 404),  # unknown symbol
        (InvalidArgument("horizon: horizon 3 is not served"), 400),  # bad field
        (_validation_error(), 400),  # refused by the request model
        (ServiceUnavailable("the gold feature table does not exist"), None),  # a server problem
        (RuntimeError("boom"), None),  # a bug
    ],
)
def test_client_error_status(error: BaseException, status: int | None) -> None:
    assert client_error_status(error) == status


def test_a_refused_request_becomes_one_info_line() -> None:
    record = _record(NotFound("symbol: unknown symbol 'DOGEUSDT'"))
    assert ClientErrorLogFilter().filter(record)
    assert record.levelno == logging.INFO and record.exc_info is None
    assert record.getMessage() == (
        "Exception on /predict [POST]: 404 symbol: unknown symbol 'DOGEUSDT'"
    )


def test_a_server_error_keeps_its_traceback() -> None:
    record = _record(RuntimeError("boom"))
    assert ClientErrorLogFilter().filter(record)
    assert record.levelno == logging.ERROR and record.exc_info is not None
