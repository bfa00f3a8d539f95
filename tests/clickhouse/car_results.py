"""Result batches shaped like the seed's car query, shared by the ClickHouse and Pulsar sink tests
and benchmarks.

``select window_end as time, cid, avg(speed_kmh) as speed_kmh, max(total_km) as total_km,
avg(gas_percent) as gas_percent, min(locked) as locked, min(in_use) as in_use
from tumble(car_live_data, 2s) group by cid, window_end`` plus a decimal (``fee``) and a
nullable text column (``note``). Every field is nullable, as a query engine reports them.
"""

from __future__ import annotations

import datetime as dt
import decimal

import pyarrow as pa

SCHEMA = pa.schema(
    [
        ("time", pa.timestamp("ms", tz="UTC")),
        ("cid", pa.string()),
        ("speed_kmh", pa.float64()),
        ("total_km", pa.float64()),
        ("gas_percent", pa.float64()),
        ("locked", pa.bool_()),
        ("in_use", pa.bool_()),
        ("fee", pa.decimal128(10, 2)),
        ("note", pa.string()),
    ]
)
COLUMNS = SCHEMA.names
START = dt.datetime(2022, 1, 23, 10, 0, 0, tzinfo=dt.timezone.utc)


def car_batch(window: int, cars: int = 3) -> pa.RecordBatch:
    """The results of the 2 s window number ``window``: one row per car, ``time`` = window end."""
    end = START + dt.timedelta(seconds=2 * (window + 1))
    rows = [
        {
            "time": end,
            "cid": f"c{car:04d}",
            "speed_kmh": 40.5 + car + window / 4,
            "total_km": 1000.25 * (car + 1) + window,
            "gas_percent": 80.0 - window * 0.125,
            "locked": car % 2 == 0,
            "in_use": window % 2 == 1,
            "fee": decimal.Decimal(f"{window}.{car:02d}"),
            "note": None if car % 2 else f"window {window}",
        }
        for car in range(cars)
    ]
    return pa.RecordBatch.from_pylist(rows, schema=SCHEMA)


def rows_of(*batches: pa.RecordBatch) -> list[tuple[object, ...]]:
    """The batches' rows as tuples in column order, sorted by (cid, time)."""
    rows = [tuple(row[name] for name in COLUMNS) for batch in batches for row in batch.to_pylist()]
    return sorted(rows, key=lambda row: (row[1], row[0]))
