"""Who is calling: the gateway, vouching for an account and a role (mailstream_common.service_auth).

The headers are read from the request rather than declared as parameters so that they stay out of the public
OpenAPI document the gateway merges (its callers never send them; the gateway adds them).
"""

from typing import Annotated

from fastapi import Depends, Request
from pymongo.asynchronous.database import AsyncDatabase

from mailstream_common.service_auth import Forwarded, admin_only, forwarded_account

from ..repositories import KnownReferencesRepository, RulesRepository, RunsRepository
from ..settings import AutomationSettings

Caller = Forwarded


def get_settings(request: Request) -> AutomationSettings:
    return request.app.state.settings


def get_db(request: Request) -> AsyncDatabase:
    return request.app.state.db


require_admin = admin_only("managing automation rules needs an admin key")


def get_rules(db: Annotated[AsyncDatabase, Depends(get_db)]) -> RulesRepository:
    return RulesRepository(db)


def get_runs(db: Annotated[AsyncDatabase, Depends(get_db)]) -> RunsRepository:
    return RunsRepository(db)


def get_known_references(db: Annotated[AsyncDatabase, Depends(get_db)]) -> KnownReferencesRepository:
    return KnownReferencesRepository(db)


AnyCaller = Annotated[Caller, Depends(forwarded_account)]
Admin = Annotated[Caller, Depends(require_admin)]
Rules = Annotated[RulesRepository, Depends(get_rules)]
Runs = Annotated[RunsRepository, Depends(get_runs)]
KnownReferences = Annotated[KnownReferencesRepository, Depends(get_known_references)]
Settings = Annotated[AutomationSettings, Depends(get_settings)]
