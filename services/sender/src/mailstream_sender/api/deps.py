"""Shared dependencies of the routes: the caller (the gateway, vouching for an account and a role, see
mailstream_common.service_auth) and the suppression repository.

The repository is the one object the process shares with the bounce consumer and the guard's cache, so that its
writes drop the cache at once: it is taken from the app's state, never built per request.
"""

from typing import Annotated

from fastapi import Depends, Request

from mailstream_common.service_auth import Forwarded, admin_only, forwarded_account

from ..repositories.suppressions import Suppressions


def get_suppressions(request: Request) -> Suppressions:
    return request.app.state.suppressions


require_admin = admin_only("admin role required")

AnyCaller = Annotated[Forwarded, Depends(forwarded_account)]
Admin = Annotated[Forwarded, Depends(require_admin)]
SuppressionsDep = Annotated[Suppressions, Depends(get_suppressions)]
