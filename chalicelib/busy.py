"""When the tables are too busy to answer: a reason to retry, not a fault.

Raised by storage (throttling, transaction conflicts that outlasted their
retries) and by the domain when a record kept changing under a bounded retry;
the API answers it with 503 and Retry-After.
"""

from __future__ import annotations


class StorageBusy(Exception):
    """The request may succeed if the client tries again shortly."""
