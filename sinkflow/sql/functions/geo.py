"""Geo functions: ``point_in_polygon``, ``great_circle_distance``, ``great_circle_angle`` and
``geo_distance``, over points written as tuples ``(x, y)`` / longitude and latitude in degrees."""

from __future__ import annotations

from sqlglot import exp

from sinkflow.sql.functions.kinds import BOOL, FLOAT
from sinkflow.sql.functions.registry import fill, register

# Whether the point {0} is inside the ring {1} (a list of (x, y) tuples, closed or not): the number
# of ring edges a ray from the point towards +x crosses is odd. A point on an edge may count either way.
_INSIDE = ("(LEN(LIST_FILTER(RANGE(1, LEN({1}) + 1), lambda __tp_i: (({1}[__tp_i][2] > {0}[2]) <> "
           "({1}[__tp_i % LEN({1}) + 1][2] > {0}[2])) AND {0}[1] < ({1}[__tp_i % LEN({1}) + 1][1] - {1}[__tp_i][1]) "
           "* ({0}[2] - {1}[__tp_i][2]) / ({1}[__tp_i % LEN({1}) + 1][2] - {1}[__tp_i][2]) + {1}[__tp_i][1])) % 2 = 1)")


def _point_in_polygon(args: list[exp.Expression], kinds: list[str | None], node: exp.Expression) -> exp.Expression:
    # point_in_polygon(point, outer ring[, hole …]): inside the outer ring and in none of the holes.
    point, outer, holes = args[0], args[1], args[2:]
    result = fill(_INSIDE, [point, outer])
    for hole in holes:
        result = fill("({0} AND NOT {1})", [result, fill(_INSIDE, [point, hole])])
    return result


register("point_in_polygon", _point_in_polygon, 2, None, returns=BOOL)

# Distances between (lon1, lat1) = ({0}, {1}) and (lon2, lat2) = ({2}, {3}), in degrees, as Proton
# computes them: on a plane tangent at the middle latitude when the longitudes are less than 13°
# apart ({k_lat}, {k_lon}: the squared length of a degree of latitude/longitude there, at
# latitude __tp_m in radians), else by the haversine formula on a sphere ({far}, over a = the
# haversine term). Proton works in float32 with tabulated sines; the results agree to ~6 digits.
_DISTANCE = ("CAST((SELECT CASE WHEN __tp_dlon < 13 THEN SQRT(({k_lat}) * __tp_dlat * __tp_dlat + ({k_lon}) * __tp_dlon * __tp_dlon) "
             "ELSE {far} END FROM (SELECT LEAST(ABS({{1}} - {{3}}), 360 - ABS({{1}} - {{3}})) AS __tp_dlat, "
             "LEAST(ABS({{0}} - {{2}}), 360 - ABS({{0}} - {{2}})) AS __tp_dlon, RADIANS(({{1}} + {{3}}) / 2) AS __tp_m, "
             "POW(SIN(RADIANS(LEAST(ABS({{1}} - {{3}}), 360 - ABS({{1}} - {{3}}))) / 2), 2) + COS(RADIANS({{1}})) * "
             "COS(RADIANS({{3}})) * POW(SIN(RADIANS(LEAST(ABS({{0}} - {{2}}), 360 - ABS({{0}} - {{2}}))) / 2), 2) AS __tp_a)) "
             "AS FLOAT)")
_DIAMETER = "12742017.6"  # metres: twice the Earth's mean radius
_DEGREE = f"({_DIAMETER} * PI() / 360)"  # a degree of a great circle, in metres
for _name, _k_lat, _k_lon, _far in (
        ("great_circle_angle", "1", "POW(COS(__tp_m), 2)", "(360 / PI()) * ASIN(SQRT(__tp_a))"),
        ("great_circle_distance", f"POW({_DEGREE}, 2)", f"POW({_DEGREE} * COS(__tp_m), 2)",
         f"{_DIAMETER} * ASIN(SQRT(__tp_a))"),
        # WGS-84: the lengths of a degree from Mapbox's cheap-ruler series, as Proton's.
        ("geo_distance", "POW(111132.09 - 566.05 * COS(2 * __tp_m) + 1.20 * COS(4 * __tp_m), 2)",
         "POW(111415.13 * COS(__tp_m) - 94.55 * COS(3 * __tp_m) + 0.12 * COS(5 * __tp_m), 2)",
         f"{_DIAMETER} * ASIN(SQRT(__tp_a))")):
    register(_name, _DISTANCE.format(k_lat=_k_lat, k_lon=_k_lon, far=_far), 4, returns=FLOAT)
