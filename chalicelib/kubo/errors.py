"""What can go wrong talking to a Kubo node, sorted by what a worker does next:
retry later (KuboUnavailable, PinInterrupted), fix the configuration
(KuboAuthError), give up on the request (KuboRequestError) or record a
failure that may go away (KuboServerError)."""

from __future__ import annotations


class KuboError(Exception):
    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        # The HTTP status Kubo answered with; None when no answer came, or the
        # client itself judged the answer.
        self.status = status


class KuboUnavailable(KuboError):
    """The node could not be reached or did not answer in time: retryable."""


class KuboAuthError(KuboError):
    """The node refused our Authorization (401/403)."""


class KuboRequestError(KuboError):
    """Kubo rejected the request itself (bad argument, unknown command)."""


class KuboServerError(KuboError):
    """Kubo accepted the request and failed to carry it out."""


class PinInterrupted(KuboError):
    """The client cancelled a pin/add. Kubo drops the pin but keeps the blocks
    it fetched, so a later pin/add of the same CID resumes where this stopped."""

    why = "interrupted"

    def __init__(self, blocks: int, bytes: int) -> None:
        super().__init__(f"pin {self.why} after {blocks} blocks ({bytes} bytes)")
        self.blocks = blocks
        self.bytes = bytes


class PinStalled(PinInterrupted):
    """The Progress count stopped growing: no provider, or one too slow to matter."""

    why = "stalled"


class PinDeadline(PinInterrupted):
    """The caller's deadline came before the pin finished."""

    why = "deadline reached"


class PinCancelled(PinInterrupted):
    """The caller let the pin go (its request was deleted or replaced meanwhile)."""

    why = "cancelled"
