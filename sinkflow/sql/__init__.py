"""Timeplus SQL: parsing on sqlglot's ClickHouse dialect (:mod:`.parse`), the logical plan of a
streaming SELECT (:mod:`.plan`), incremental aggregates (:mod:`.aggregates`), Timeplus functions on
DuckDB (:mod:`.functions`, via :mod:`.translate`) and the other statements (:mod:`.statements`)."""
