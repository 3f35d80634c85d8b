"""Stream documents: forwarding addresses."""

import re

from mailstream_inbox.repositories.streams import new_forwarding_address


def test_forwarding_addresses_are_unguessable_and_on_the_inbound_domain():
    addresses = {new_forwarding_address("In.Mailstream.Test") for _ in range(1000)}
    assert len(addresses) == 1000
    for address in addresses:
        assert re.fullmatch(r"s-[a-z2-7]{26}@in\.mailstream\.test", address)
