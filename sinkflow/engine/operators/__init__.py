"""The streaming operators a query is planned into, one module per operator.

Every operator processes Arrow batches incrementally and keeps its state in the query's snapshot
(:mod:`sinkflow.engine.execution` drives the graph and snapshots every operator by its id):

* :mod:`.scan` reads a stream's log (or one constant row for a SELECT without FROM);
* :mod:`.select` runs one fused SELECT step: dedup, lookup joins, filter, projection, window
  assignment, aggregation with its emit policy, ORDER BY and LIMIT, compiled into one DuckDB
  statement per step where the chain is stateless;
* :mod:`.union` merges its inputs (``UNION ALL``).

See :mod:`.base` for the interface they share.
"""
