"""`GET /kits/{id}/data`: a kit's latest data points, or its history, as JSON or streamed CSV.
Who may see the data is exactly who may see the kit: the kit is looked up with
`kit_get_visible` before DynamoDB is asked anything."""

import csv
from urllib.parse import urlencode

import orjson
from django.http import Http404, StreamingHttpResponse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from astroplant_site.api import BAD_INPUT, NOT_FOUND, CallerThrottle, ErrorSerializer
from kits.selectors import kit_get_visible

from . import selectors
from .exceptions import TelemetryQueryInvalid
from .serializers import RESOLUTIONS, DataQuerySerializer, KitData, cursor_encode
from .timebuckets import Resolution, timestamp_text, to_ms

UNAVAILABLE = OpenApiResponse(ErrorSerializer, description="The telemetry store is unreachable; try again shortly.")
CSV_COLUMNS = ["timestamp", "sensor", "value", "unit"]


class CSVRenderer(BaseRenderer):
    """Chosen by `?format=csv` or `Accept: text/csv`; the view streams the rows itself."""

    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        return data


class DataJSONRenderer(JSONRenderer):
    """JSON through orjson: a year of rollups is thousands of points, and the standard library's
    encoder spends more time on them than DynamoDB does."""

    def render(self, data, accepted_media_type=None, renderer_context=None):
        if data is None:
            return b""
        return orjson.dumps(data, default=str)  # str: lazy translations in error messages


class _Echo:
    """A file-like object whose write() hands the line back, so csv.writer can feed a stream."""

    def write(self, value):
        return value


def _points_json(series: dict[str, list[selectors.Point]]) -> dict:
    texts: dict[int, str] = {}  # the sensors of a kit share their timestamps: format each once

    def text(ms: int) -> str:
        if ms not in texts:
            texts[ms] = timestamp_text(ms)
        return texts[ms]

    data = {}
    for sensor, points in sorted(series.items()):
        data[sensor] = [
            {"timestamp": text(point.timestamp_ms), "value": point.value}
            if point.count is None
            else {
                "timestamp": text(point.timestamp_ms),
                "value": point.value,
                "min": point.minimum,
                "max": point.maximum,
                "mean": point.value,
                "count": point.count,
            }
            for point in points
        ]
    return data


class DataThrottle(CallerThrottle):
    """Every request for a kit's data: stricter than the API's own rate (history is the costly read)."""

    scope = "data"


class DataCsvThrottle(CallerThrottle):
    """Every request for a kit's data as CSV: stricter still (one can hold weeks of raw readings)."""

    scope = "data_csv"

    def get_cache_key(self, request, view):
        if request.accepted_renderer.format != "csv":  # negotiated before throttles are checked
            return None
        return super().get_cache_key(request, view)


class KitDataApi(APIView):
    renderer_classes = [DataJSONRenderer, CSVRenderer]

    def get_throttles(self):
        return [*super().get_throttles(), DataThrottle(), DataCsvThrottle()]

    @extend_schema(
        operation_id="kits_data_retrieve",
        summary="A kit's latest data points, or its history",
        description=(
            "Without `from`: the latest point of each sensor, or the latest `last` points (up to 1000).\n\n"
            "A kit's actuators are served like its sensors, under their own keys: each point's `value` is the "
            "actuator's level, 0 to 100 (%), as the kit reported it with its readings.\n\n"
            "With `from` (and `to`, default now): the history in [from, to) at `resolution`: `raw` readings, "
            "`1h` or `1d` rollups (each point's `value` is the bucket's mean, with `min`, `max`, `mean` and "
            "`count`), or `auto` (the default: the finest that gives at most about 2000 points per series; "
            "the `X-Resolution` header says which). Raw history comes in pages: when there is more, the "
            '`Link` header holds the next page\'s URL (`<...>; rel="next"`).\n\n'
            "`format=csv` (or `Accept: text/csv`) streams the same data as CSV: timestamp, sensor (a sensor's or "
            "an actuator's key), value, unit (`%` for an actuator); a raw range is streamed whole, without pages. "
            "Anyone who may see the kit may see its data."
        ),
        parameters=[
            OpenApiParameter(
                "last",
                {"type": "integer", "minimum": 1, "maximum": selectors.LAST_MAX},
                description="Latest mode: points per sensor, 1 to 1000 (default 1).",
            ),
            OpenApiParameter(
                "from", OpenApiTypes.DATETIME, description="Start of the range, ISO 8601 (inclusive); `Z` for UTC."
            ),
            OpenApiParameter("to", OpenApiTypes.DATETIME, description="End of the range (exclusive); default now."),
            OpenApiParameter(
                "sensor",
                str,
                description="Only these sensors or actuators, comma-separated: `temperature,co2,led`.",
            ),
            OpenApiParameter("resolution", str, enum=RESOLUTIONS, description="Default auto."),
            OpenApiParameter(
                "page_size",
                {"type": "integer", "minimum": 1, "maximum": selectors.RAW_PAGE_SIZE_MAX},
                description="Raw ranges: readings (instants) per page, 1 to 10000.",
            ),
            OpenApiParameter("cursor", str, description="Raw ranges: the page to read; take it from the Link header."),
            OpenApiParameter("format", str, enum=["json", "csv"], description="Default json."),
            OpenApiParameter(
                "Link",
                str,
                location=OpenApiParameter.HEADER,
                response=[200],
                description='Raw ranges with more readings: `<next page URL>; rel="next"`.',
            ),
            OpenApiParameter(
                "X-Resolution",
                str,
                location=OpenApiParameter.HEADER,
                response=[200],
                description="The resolution of the points: latest, raw, 1h or 1d.",
            ),
        ],
        responses={
            (200, "application/json"): OpenApiResponse(
                KitData, description="Sensor or actuator key -> points, oldest first."
            ),
            (200, "text/csv"): OpenApiResponse(OpenApiTypes.BINARY, description="timestamp,sensor,value,unit rows."),
            # Errors are JSON whatever format was asked for (see finalize_response).
            (400, "application/json"): BAD_INPUT,
            (404, "application/json"): NOT_FOUND,
            (503, "application/json"): UNAVAILABLE,
        },
    )
    def get(self, request, id: str):
        kit = kit_get_visible(user=request.user, kit_id=id)  # first: 404 before DynamoDB hears of the kit
        query = DataQuerySerializer(data=request.query_params.dict())
        query.is_valid(raise_exception=True)
        params = query.validated_data
        # Actuator levels are stored and served like readings, under the actuators' keys.
        units = {row.key: row.unit for row in [*kit.sensors.all(), *kit.actuators.all()]}
        sensors = params.get("sensor")
        unknown = [key for key in sensors or [] if key not in units]
        if unknown:
            known = ", ".join(sorted(units)) or "none"
            raise ValidationError(
                {"sensor": [f"This kit has no sensor or actuator {', '.join(unknown)}; it has: {known}."]}
            )
        as_csv = request.accepted_renderer.format == "csv"

        if "from" not in params:
            series = selectors.readings_latest(kit=kit, sensors=sensors, last=params.get("last", 1))
            if as_csv:
                rows = sorted((p.timestamp_ms, sensor, p.value) for sensor, ps in series.items() for p in ps)
                return self._csv(kit, rows, units)
            return Response(_points_json(series), headers={"X-Resolution": "latest"})

        start_ms = to_ms(params["from"])
        end_ms = to_ms(params.get("to") or timezone.now())
        selectors.range_problem(start_ms, end_ms, Resolution.RAW)
        resolution = params.get("resolution", "auto")
        if "cursor" in params and resolution not in ("raw", "auto"):
            raise TelemetryQueryInvalid({"cursor": ["Only raw ranges come in pages."]})
        if resolution != "auto":
            selectors.range_problem(start_ms, end_ms, Resolution(resolution))
        if as_csv:
            if resolution == "raw":
                selectors.csv_range_problem(start_ms, end_ms)
            if resolution == "auto":
                resolution = selectors.resolution_auto(kit=kit, start_ms=start_ms, end_ms=end_ms, sensors=sensors)
            rows = selectors.readings_range_rows(
                kit=kit, start_ms=start_ms, end_ms=end_ms, resolution=Resolution(resolution), sensors=sensors
            )
            return self._csv(kit, rows, units)
        page = selectors.readings_history(
            kit=kit,
            start_ms=start_ms,
            end_ms=end_ms,
            resolution=resolution,
            sensors=sensors,
            page_size=params.get("page_size", selectors.RAW_PAGE_SIZE_DEFAULT),
            after_ms=params.get("cursor"),
        )
        if "cursor" in params and page.resolution != Resolution.RAW:
            raise TelemetryQueryInvalid({"cursor": ["Only raw ranges come in pages."]})
        headers = {"X-Resolution": str(page.resolution)}
        if page.next_after_ms is not None:
            headers["Link"] = f'<{self._next_page_url(request, page.next_after_ms)}>; rel="next"'
        return Response(_points_json(page.series), headers=headers)

    @staticmethod
    def _next_page_url(request, after_ms: int) -> str:
        query = request.query_params.dict()
        query.update({"cursor": cursor_encode(after_ms), "resolution": "raw"})
        return request.build_absolute_uri(f"{request.path}?{urlencode(query)}")

    @staticmethod
    def _csv(kit, rows, units: dict[str, str]) -> StreamingHttpResponse:
        writer = csv.writer(_Echo())

        def lines():
            yield writer.writerow(CSV_COLUMNS)
            for timestamp_ms, sensor, value in rows:
                yield writer.writerow([timestamp_text(timestamp_ms), sensor, repr(float(value)), units.get(sensor, "")])

        response = StreamingHttpResponse(lines(), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="{kit.id}-data.csv"'
        return response

    def perform_content_negotiation(self, request, force=False):
        try:
            return super().perform_content_negotiation(request, force)
        except (Http404, NotFound):  # DRF's answer to an unknown ?format=
            raise ValidationError({"format": ["Use json or csv."]}) from None

    def finalize_response(self, request, response, *args, **kwargs):
        # Errors are JSON even when CSV was asked for: a person reads them.
        if isinstance(response, Response) and response.status_code >= 400:
            request.accepted_renderer, request.accepted_media_type = DataJSONRenderer(), "application/json"
        return super().finalize_response(request, response, *args, **kwargs)
