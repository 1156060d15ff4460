"""Why storing a batch failed: a failure a retry can fix, or data the store always refuses.

The writer retries the first kind with backoff for as long as it takes (the store is down,
slow, short of memory or disk, read-only for a while). The second kind it splits off and
quarantines, so that one record cannot hold up the rest. A failure is taken for the data's
fault only when the error says so: an error not known here is retried, since retrying good
data costs time while quarantining it because of an outage would cost an operator's work.
"""

from __future__ import annotations

import re

from clickhouse_connect.driver.exceptions import DatabaseError, DataError, OperationalError
from google.protobuf.message import DecodeError

# ClickHouse error codes that name the data itself: a value it cannot parse, convert, fit or
# represent, or a block it will not take as it is.
DATA_CODES = frozenset(
    {
        6,  # CANNOT_PARSE_TEXT
        25,  # CANNOT_PARSE_ESCAPE_SEQUENCE
        26,  # CANNOT_PARSE_QUOTED_STRING
        27,  # CANNOT_PARSE_INPUT_ASSERTION_FAILED
        38,  # CANNOT_PARSE_DATE
        41,  # CANNOT_PARSE_DATETIME
        53,  # TYPE_MISMATCH
        69,  # ARGUMENT_OUT_OF_BOUND
        70,  # CANNOT_CONVERT_TYPE
        72,  # CANNOT_PARSE_NUMBER
        117,  # INCORRECT_DATA
        128,  # TOO_LARGE_ARRAY_SIZE
        131,  # TOO_LARGE_STRING_SIZE
        190,  # SIZES_OF_ARRAYS_DONT_MATCH
        252,  # TOO_MANY_PARTS: only "too many partitions for single INSERT block" (see below)
        321,  # VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE
        407,  # DECIMAL_OVERFLOW
        444,  # UNKNOWN_PROTOBUF_FORMAT
        1001,  # STD_EXCEPTION (e.g. an out-of-range conversion inside a function)
    }
)
_CODE = re.compile(r"Code:\s*(\d+)")
# The normalizer's own failures on a value it could not read.
_PYTHON_DATA_ERRORS = (ValueError, TypeError, OverflowError, UnicodeError, DecodeError, RecursionError, KeyError)


def error_code(exc: BaseException) -> int | None:
    """The ClickHouse error code in an error's message, if any."""
    match = _CODE.search(str(exc))
    return int(match.group(1)) if match else None


def is_data_error(exc: BaseException) -> bool:
    """Whether the same data would fail the same way however often it is tried."""
    if isinstance(exc, OperationalError | OSError | MemoryError):
        return False  # unreachable, timed out, short of memory: retry
    code = error_code(exc)
    if code is not None:
        if code == 252:  # also "too many parts" while merges catch up, which passes
            return "partitions for single insert block" in str(exc).lower()
        return code in DATA_CODES
    if isinstance(exc, DataError):
        return True  # the driver could not encode a value for its column
    if isinstance(exc, DatabaseError):
        return False
    return isinstance(exc, _PYTHON_DATA_ERRORS)
