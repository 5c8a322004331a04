"""sqlite_utils' ``Database``, loaded without numpy.

sqlite_utils imports numpy (and pandas) when installed, only to add their scalar
types to the column types it infers. The journal names its columns' types and
never stores numpy values, while numpy (installed for matplotlib's charts) costs
every ``hubsync`` start ~0.1 s of CPU and starts OpenBLAS threads. So numpy is
hidden while sqlite_utils loads. If numpy is loaded already (the charts ran
first), sqlite_utils gets it as usual: either way the journal behaves the same.
The journal is imported when a process starts, before any other thread could
be importing numpy at the same moment.
"""

from __future__ import annotations

import sys

if "numpy" in sys.modules or "sqlite_utils.db" in sys.modules:
    from sqlite_utils import Database
else:
    sys.modules["numpy"] = None  # type: ignore[assignment]  # ``import numpy`` raises ImportError
    try:
        from sqlite_utils import Database
    finally:
        del sys.modules["numpy"]

__all__ = ["Database"]
