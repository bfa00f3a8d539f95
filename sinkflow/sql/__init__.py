"""Timeplus SQL: parsing on sqlglot's ClickHouse dialect (:mod:`.parse`), the logical plan of a
streaming SELECT (:mod:`.plan`), Timeplus functions on DuckDB (:mod:`.functions`), the aggregate
functions' one-shot and incremental forms (:mod:`.aggregates`), SQL positions and errors
(:mod:`.positions`) and the other statements (:mod:`.statements`)."""
