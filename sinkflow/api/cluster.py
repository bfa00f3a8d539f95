"""``GET /api/v1beta2/cluster``: the nodes of the cluster, and which sinks each runs."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from sinkflow.api.context import ServerDep

router = APIRouter(prefix="/api/v1beta2")


@router.get("/cluster")
async def cluster(srv: ServerDep) -> dict[str, Any]:
    """In cluster mode: the cluster's name, this node's id, and every node (id, address, alive,
    sinks it runs). In the embedded mode: ``{"mode": "embedded"}`` and no nodes."""
    if srv.cluster is None:
        return {"mode": "embedded", "name": None, "node": None, "nodes": []}
    return srv.cluster.describe()
