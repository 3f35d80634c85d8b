"""Consumer of `sender.replies`: each reply command goes to the reply use case (`sending.ReplySender`); a deferred
send becomes the broker's retry, with the relay's stated delay or the backoff."""

from mailstream_common.broker import Delivery, Retry, backoff_seconds
from mailstream_common.contracts import ReplyRequested

from ..sending import Deferred, ReplySender


class RepliesConsumer:
    def __init__(self, sender: ReplySender) -> None:
        self.sender = sender

    async def handle(self, request: ReplyRequested, delivery: Delivery) -> None:
        try:
            await self.sender.send(request, delivery)
        except Deferred as deferred:
            base = self.sender.policy.retry_base_seconds
            delay = deferred.retry_after or backoff_seconds(delivery.attempt, base=base)
            raise Retry(deferred.detail, delay) from None
