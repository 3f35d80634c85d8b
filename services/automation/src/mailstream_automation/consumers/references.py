"""`automation.references`: keep `known_references` (automation's projection of inbox's catalogue) up to date from
`topic.changed`, `stream.changed` and `canned_response.changed`."""

from mailstream_common.broker import Delivery

from ..references import CatalogueEvent
from ..repositories import KnownReferencesRepository


class ReferencesConsumer:
    def __init__(self, known: KnownReferencesRepository) -> None:
        self.known = known

    async def handle(self, event: CatalogueEvent, _: Delivery) -> None:
        """Idempotent, and an older event never overwrites a newer one."""
        await self.known.apply(event)
