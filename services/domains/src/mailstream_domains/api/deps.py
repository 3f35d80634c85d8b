"""Shared route dependencies: the caller (`mailstream_common.service_auth`) and the domain manager.

Trust: the public paths answer only the gateway's credential, which it sends with `X-Account-Id` (the tenant) and
`X-Role` after authenticating the customer's API key. The tenant comes from that header only, so another account's
domain id answers 404 exactly like a missing one. `/internal/signing-key` answers only the sender's credential.
"""

from typing import Annotated

from fastapi import Depends, Request

from mailstream_common.service_auth import Forwarded, admin_only, forwarded_account, require_caller

from ..manager import DomainManager


def get_manager(request: Request) -> DomainManager:
    return request.app.state.manager


Manager = Annotated[DomainManager, Depends(get_manager)]
Caller = Annotated[Forwarded, Depends(forwarded_account)]
Admin = Annotated[Forwarded, Depends(admin_only("only admin keys may change sending domains"))]
SenderService = Annotated[str, Depends(require_caller("sender"))]
