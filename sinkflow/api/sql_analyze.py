"""``POST /api/v1beta2/sqlanalyze``: Timeplus's analysis of a SELECT, without running it."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel

from sinkflow.api import timeplus
from sinkflow.api.context import ServerDep

router = APIRouter(prefix="/api/v1beta2")


class AnalyzeIn(BaseModel):
    sql: str


@router.post("/sqlanalyze")
async def analyze(body: AnalyzeIn, srv: ServerDep) -> dict[str, Any]:
    """The query's SQLAnalyzeResult (streaming or not, aggregation, joins, result and source
    columns). Bad SQL answers 400 naming its line and column, as ``POST /queries`` does."""
    plan = await asyncio.to_thread(srv.engine.plan, body.sql)
    return timeplus.analysis(plan)
