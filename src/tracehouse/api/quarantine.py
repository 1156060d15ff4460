"""The quarantine over HTTP: ``/api/v1/quarantine``. A tenant sees, retries and drops its own
quarantined requests; on a server without API keys, every one (or one tenant's, with
``?tenant=``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, Request

from tracehouse.api.agents import keyed_tenant
from tracehouse.ingest.quarantine import NotQuarantined
from tracehouse.ingest.spool import SpoolFull
from tracehouse.responses import QuarantinedRecord

router = APIRouter(prefix="/api/v1/quarantine", tags=["quarantine"])


class _Scope:
    def __init__(self, request: Request, tenant: str | None):
        self.tenant = keyed_tenant(request) or tenant  # None: every tenant's
        self.quarantine = request.app.state.writer.quarantine
        self.spool = request.app.state.receiver.spool

    def get(self, entry_id: str) -> QuarantinedRecord:
        try:
            return self.quarantine.get(entry_id, self.tenant)
        except NotQuarantined:
            raise HTTPException(404, f"no quarantined request {entry_id!r}") from None


def _scope(request: Request, tenant: str | None = Query(None, description="without API keys only")) -> _Scope:
    return _Scope(request, tenant)


Scope = Annotated[_Scope, Depends(_scope)]


@router.get("", response_model=list[QuarantinedRecord], summary="Quarantined requests, oldest first")
def list_quarantined(scope: Scope) -> list[QuarantinedRecord]:
    return scope.quarantine.entries(scope.tenant)


@router.post("/{entry_id}/retry", response_model=QuarantinedRecord, summary="Store a quarantined request again")
def retry_quarantined(entry_id: str, scope: Scope) -> QuarantinedRecord:
    """Back into the spool, and out of the quarantine; if the store refuses it again, it comes
    back with a new id."""
    entry = scope.get(entry_id)
    try:
        scope.quarantine.retry(entry, scope.spool)
    except SpoolFull as exc:
        raise HTTPException(503, str(exc), headers={"Retry-After": "2"}) from None
    return entry


@router.delete("/{entry_id}", response_model=QuarantinedRecord, summary="Drop a quarantined request for good")
def drop_quarantined(entry_id: str, scope: Scope) -> QuarantinedRecord:
    entry = scope.get(entry_id)
    scope.quarantine.remove(entry)
    return entry
