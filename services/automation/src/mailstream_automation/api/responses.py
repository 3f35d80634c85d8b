"""The error responses the automation routes share, and their OpenAPI descriptions."""

from fastapi import HTTPException

AUTH = {
    401: {"description": "Not called through the gateway (missing or invalid internal token / API key)"},
    403: {"description": "The key's role may not do this (writes need an admin key)"},
}
NOT_FOUND = {404: {"description": "No such rule in this account (another account's rules are 404 too)"}}
INVALID = {422: {"description": "Invalid body or query; `detail[].loc` names the field"}}


def rule_not_found() -> HTTPException:
    return HTTPException(404, detail="rule not found")
