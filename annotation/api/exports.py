"""Export API: start a job, read its status, download its finished files. One view per
operation, nested input/output serializers (HackSoft style); the work happens in services."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from django.http import FileResponse, HttpResponse, HttpResponseBase, StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation import access
from annotation.exceptions import DomainError
from annotation.models import ExportDefinition, ExportFormat, ExportJob
from annotation.services.export import start_export_job
from spavl_web.models import Scope

RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
CHUNK_BYTES = 1024 * 1024


class FileSerializer(serializers.Serializer[Any]):
    name = serializers.CharField()
    size = serializers.IntegerField()
    sha256 = serializers.CharField()


class JobOutputSerializer(serializers.ModelSerializer[ExportJob]):
    definition = serializers.CharField(source="definition.name", default=None)
    files = FileSerializer(many=True)

    class Meta:
        model = ExportJob
        fields = [
            "id",
            "definition",
            "format",
            "status",
            "done",
            "total",
            "files",
            "error",
            "created_at",
            "started_at",
            "finished_at",
        ]


class ExportCreateApi(APIView):
    required_scopes = {"POST": Scope.EXPORT.value}

    class InputSerializer(serializers.Serializer[Any]):
        definition = serializers.CharField(
            min_length=1, max_length=100, help_text="The name of a saved export definition."
        )
        format = serializers.ChoiceField(choices=ExportFormat.choices, required=False)

    class OutputSerializer(serializers.Serializer[Any]):
        id = serializers.IntegerField()
        status = serializers.CharField()

    @extend_schema(
        operation_id="exports_create",
        request=InputSerializer,
        responses={201: OutputSerializer},
    )
    def post(self, request: Request) -> Response:
        user = access.access_exports(user=request.user)
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        definition = ExportDefinition.objects.filter(
            name=serializer.validated_data["definition"]
        ).first()
        if definition is None:
            raise NotFound("No export definition has that name.")
        export_format = serializer.validated_data.get("format") or next(
            iter(definition.formats), None
        )
        if export_format is None:
            raise ValidationError(
                {"format": [f"definition {definition.name!r} names no format: give one"]}
            )
        try:
            job = start_export_job(
                definition=definition,
                export_format=export_format,
                created_by=user,
            )
        except DomainError as error:
            return Response({"detail": str(error)}, status=status.HTTP_400_BAD_REQUEST)
        return Response(self.OutputSerializer(job).data, status=status.HTTP_201_CREATED)


class ExportDetailApi(APIView):
    required_scopes = {"GET": Scope.EXPORT.value}

    @extend_schema(operation_id="exports_retrieve", responses={200: JobOutputSerializer})
    def get(self, request: Request, job_id: int) -> Response:
        job = access.access_export_job(user=request.user, job_id=job_id)
        return Response(JobOutputSerializer(job).data)


class ExportFileApi(APIView):
    """Streams a finished file. A single ``Range: bytes=a-b`` gets a 206 (resumable downloads
    of multi-GB shards); anything else gets the whole file."""

    required_scopes = {"GET": Scope.EXPORT.value}

    @extend_schema(
        operation_id="exports_file_retrieve",
        responses={
            (200, "application/octet-stream"): OpenApiResponse(OpenApiTypes.BINARY),
            (206, "application/octet-stream"): OpenApiResponse(OpenApiTypes.BINARY),
        },
    )
    def get(self, request: Request, job_id: int, name: str) -> HttpResponseBase:
        job = access.access_export_job(user=request.user, job_id=job_id)
        path = access.access_export_file(job=job, name=name)
        response = _file_response(path, range_header=request.headers.get("Range", ""))
        response["Content-Type"] = "application/octet-stream"
        response["Accept-Ranges"] = "bytes"
        response["X-Content-Type-Options"] = "nosniff"
        return response


def _file_response(path: Path, *, range_header: str) -> HttpResponseBase:
    """The whole file, the one range asked for (206), or 416 for a range past its end."""
    size = path.stat().st_size
    try:
        wanted = _byte_range(range_header, size)
    except UnsatisfiableRange:
        refused = HttpResponse(status=416)
        refused["Content-Range"] = f"bytes */{size}"
        return refused
    if wanted is None:
        return FileResponse(path.open("rb"), as_attachment=True, filename=path.name)
    return _partial(path, *wanted)


class UnsatisfiableRange(Exception):
    """The range starts at or past the end of the file: answered 416."""


def _byte_range(header: str, size: int) -> tuple[int, int] | None:
    """(first, last) byte of a single range, or None for the whole file (no range, or one we
    ignore as RFC 9110 allows: malformed, several ranges, last before first)."""
    match = RANGE.match(header.strip())
    if match is None or match.groups() == ("", ""):
        return None
    first_text, last_text = match.groups()
    if not first_text:  # "bytes=-N": the last N bytes
        if int(last_text) == 0 or size == 0:
            raise UnsatisfiableRange
        return max(0, size - int(last_text)), size - 1
    first = int(first_text)
    if last_text and int(last_text) < first:
        return None
    if first >= size:
        raise UnsatisfiableRange
    last = min(int(last_text), size - 1) if last_text else size - 1
    return first, last


def _partial(path: Path, first: int, last: int) -> StreamingHttpResponse:
    def chunks() -> Iterator[bytes]:
        with path.open("rb") as handle:
            handle.seek(first)
            left = last - first + 1
            while left > 0:
                data = handle.read(min(CHUNK_BYTES, left))
                if not data:
                    return
                left -= len(data)
                yield data

    size = path.stat().st_size
    response = StreamingHttpResponse(chunks(), status=206)
    response["Content-Range"] = f"bytes {first}-{last}/{size}"
    response["Content-Length"] = str(last - first + 1)
    response["Content-Disposition"] = f'attachment; filename="{path.name}"'
    return response
