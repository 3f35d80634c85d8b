"""Who is calling: the gateway, vouching for an account and a role with the shared internal token.

The headers are read from the request rather than declared as parameters so that they stay out of the public
OpenAPI document the gateway merges (its callers never send them; the gateway adds them).
"""

import hmac
from dataclasses import dataclass
from typing import Annotated, Literal

from fastapi import Depends, HTTPException, Request, status
from pymongo.asynchronous.database import AsyncDatabase

from ..repository import RulesRepository, RunsRepository
from ..settings import AutomationSettings


@dataclass(frozen=True)
class Caller:
    account_id: str
    role: Literal["admin", "agent"]
    key_id: str | None


def get_settings(request: Request) -> AutomationSettings:
    return request.app.state.settings


def get_db(request: Request) -> AsyncDatabase:
    return request.app.state.db


def get_caller(request: Request) -> Caller:
    settings: AutomationSettings = request.app.state.settings
    token = request.headers.get("x-internal-token", "")
    expected = settings.internal_token.get_secret_value()
    if not token or not hmac.compare_digest(token.encode(), expected.encode()):
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, detail="missing or invalid internal token")
    account_id = request.headers.get("x-account-id", "").strip()
    if not account_id:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, detail="missing X-Account-Id")
    role = request.headers.get("x-role", "agent").strip().lower()
    if role not in ("admin", "agent"):
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, detail="unknown X-Role")
    return Caller(account_id, role, request.headers.get("x-key-id"))  # type: ignore[arg-type]


def require_admin(caller: Annotated[Caller, Depends(get_caller)]) -> Caller:
    if caller.role != "admin":
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail="managing automation rules needs an admin key")
    return caller


def get_rules(db: Annotated[AsyncDatabase, Depends(get_db)]) -> RulesRepository:
    return RulesRepository(db)


def get_runs(db: Annotated[AsyncDatabase, Depends(get_db)]) -> RunsRepository:
    return RunsRepository(db)


AnyCaller = Annotated[Caller, Depends(get_caller)]
Admin = Annotated[Caller, Depends(require_admin)]
Rules = Annotated[RulesRepository, Depends(get_rules)]
Runs = Annotated[RunsRepository, Depends(get_runs)]
Db = Annotated[AsyncDatabase, Depends(get_db)]
Settings = Annotated[AutomationSettings, Depends(get_settings)]
