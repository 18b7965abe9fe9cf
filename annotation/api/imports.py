"""/api/v1/imports/: push data in over HTTP and follow it. A file comes as a multipart upload,
streamed to ``IMPORT_UPLOAD_DIR`` chunk by chunk and refused past ``IMPORT_UPLOAD_MAX_BYTES``
(never held in memory), or as a path under ``IMPORT_ROOT``; either way the import runs as a
Celery job through ``annotation.services.imports.jobs``. Importers only (admins, or holders of
``annotation.add_importbatch``); a token needs the ``import`` scope to start one."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import IO, Any

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.core.files.uploadhandler import FileUploadHandler, StopUpload
from django.http import HttpRequest, QueryDict
from django.utils.datastructures import MultiValueDict
from django.utils.text import get_valid_filename
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.exceptions import ValidationError
from rest_framework.parsers import JSONParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation.access import access_import, access_imports, visible_imports
from annotation.exceptions import ImportFileError
from annotation.models import ImportBatch, ImportFormat, QuestionType
from annotation.services.imports import parse_column_map
from annotation.services.imports.jobs import queue_import, rejections
from annotation.services.imports.rows import TaxonomyResolver
from annotation.services.imports.taxonomy_map import TAXONOMY_MAP_MAX_BYTES, load_taxonomy_map
from spavl_web.models import Scope

IMPORTS_LISTED = 50
REJECTIONS_MAX = 1000


class UploadedImport(UploadedFile):
    """An upload already on disk where the worker will read it."""

    def __init__(self, *, handle: IO[bytes], path: Path, name: str, size: int) -> None:
        super().__init__(file=handle, name=name, size=size)
        self.path = path


class ImportUploadHandler(FileUploadHandler):
    """Streams the upload into its own folder under IMPORT_UPLOAD_DIR; stops reading (and
    removes what it wrote) once the body passes IMPORT_UPLOAD_MAX_BYTES."""

    def __init__(self, request: HttpRequest) -> None:
        super().__init__(request)
        self.limit: int = settings.IMPORT_UPLOAD_MAX_BYTES
        self.too_large = False
        self._written = 0
        self._handle: IO[bytes] | None = None
        self._path: Path | None = None

    def handle_raw_input(
        self,
        input_data: Any,
        META: Any,
        content_length: int,
        boundary: Any,
        encoding: str | None = None,
    ) -> tuple[QueryDict, MultiValueDict[str, Any]] | None:
        if content_length > self.limit:
            self.too_large = True
            return QueryDict(), MultiValueDict()
        return None

    def new_file(self, *args: Any, **kwargs: Any) -> None:
        super().new_file(*args, **kwargs)
        # The name matters (rlhf-json reads the question type from it), its folders do not.
        name = get_valid_filename(Path(self.file_name or "upload").name)[-200:] or "upload"
        folder = Path(settings.IMPORT_UPLOAD_DIR) / uuid.uuid4().hex
        folder.mkdir(parents=True)
        self._path = folder / name
        self._handle = self._path.open("xb")
        self._written = 0

    def receive_data_chunk(self, raw_data: bytes, start: int) -> None:
        assert self._handle is not None and self._path is not None
        self._written += len(raw_data)
        if self._written > self.limit:
            self.too_large = True
            self._discard()
            raise StopUpload(connection_reset=True)
        self._handle.write(raw_data)
        return None

    def file_complete(self, file_size: int) -> UploadedImport | None:
        if self._handle is None or self._path is None:
            return None
        self._handle.flush()
        self._handle.seek(0)
        return UploadedImport(
            handle=self._handle, path=self._path, name=self._path.name, size=file_size
        )

    def upload_interrupted(self) -> None:
        self._discard()

    def _discard(self) -> None:
        if self._handle is not None and self._path is not None:
            self._handle.close()
            self._path.unlink(missing_ok=True)
            self._path.parent.rmdir()
            self._handle = self._path = None


class ImportSerializer(serializers.ModelSerializer[ImportBatch]):
    started_by = serializers.CharField(source="started_by.username", default=None)
    options = serializers.SerializerMethodField()

    class Meta:
        model = ImportBatch
        fields = [
            "id",
            "file_name",
            "format",
            "split",
            "status",
            "options",
            "rows_total",
            "rows_read",
            "rows_created",
            "rows_existing",
            "rows_rejected",
            "error_message",
            "sha256",
            "started_by",
            "started_at",
            "heartbeat_at",
            "finished_at",
        ]

    def get_options(self, batch: ImportBatch) -> dict[str, Any]:
        # Where the server keeps the file is its business, not the client's.
        return {k: v for k, v in batch.options.items() if k not in ("path", "uploaded")}


@extend_schema_field({"type": "object", "additionalProperties": True})
class TaxonomyMapField(serializers.Field):  # type: ignore[type-arg]
    """A JSON object, given as one (JSON bodies) or as its text (multipart forms)."""

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        if isinstance(data, str):
            if len(data) > TAXONOMY_MAP_MAX_BYTES:
                raise ValidationError(f"the taxonomy map is above {TAXONOMY_MAP_MAX_BYTES} bytes")
            try:
                data = json.loads(data)
            except (ValueError, RecursionError):
                raise ValidationError("the taxonomy map is not valid JSON") from None
        if not isinstance(data, dict):
            raise ValidationError("the taxonomy map is a JSON object of category: class path")
        return data

    def to_representation(self, value: Any) -> Any:
        return value


class StartImportSerializer(serializers.Serializer[Any]):
    format = serializers.ChoiceField(choices=ImportFormat.values)
    file = serializers.FileField(
        required=False, help_text="The file (multipart/form-data); or give `path`."
    )
    path = serializers.CharField(
        required=False,
        max_length=1000,
        help_text="A file or folder of shards under the server's import root (SPAVL_IMPORT_ROOT).",
    )
    image_root = serializers.CharField(
        required=False,
        max_length=1000,
        help_text="Folder under the import root that image paths are relative to.",
    )
    split = serializers.CharField(required=False, max_length=32, help_text="spavl-parquet only.")
    model = serializers.CharField(
        required=False, max_length=200, help_text="eval-json: the responses' model."
    )
    question_type = serializers.ChoiceField(choices=QuestionType.values, required=False)
    map = serializers.CharField(
        required=False,
        max_length=4000,
        help_text="hf-parquet: the column map, as import_data's --map "
        "(e.g. image=img,question=prompt,chosen=chosen,rejected=rejected).",
    )
    taxonomy_map = TaxonomyMapField(
        required=False,
        help_text="hf-parquet: {their category: 'class1/class2/class3' or null}, as a JSON "
        "object (a JSON string in multipart).",
    )
    unknown_taxonomy = serializers.ChoiceField(
        choices=["reject", "unlabelled"],
        required=False,
        help_text="hf-parquet: a category the map does not name rejects its row, or imports "
        "it with no subcategory.",
    )

    def validate_map(self, value: str) -> dict[str, str]:
        try:
            return parse_column_map(value)
        except ImportFileError as error:
            raise ValidationError(str(error)) from None

    def validate_taxonomy_map(self, value: dict[str, Any]) -> dict[str, Any]:
        try:
            load_taxonomy_map(value, taxonomy=TaxonomyResolver())
        except ImportFileError as error:
            raise ValidationError(str(error)) from None
        return value


class ImportListApi(APIView):
    parser_classes = [JSONParser, MultiPartParser]
    required_scopes = {"GET": (Scope.READ.value, Scope.IMPORT.value), "POST": Scope.IMPORT.value}

    def initialize_request(self, request: HttpRequest, *args: Any, **kwargs: Any) -> Request:
        # Before anything reads the body (session auth's CSRF check would): stream to disk.
        request.upload_handlers = [ImportUploadHandler(request)]
        return super().initialize_request(request, *args, **kwargs)

    @extend_schema(operation_id="imports_list", responses={200: ImportSerializer(many=True)})
    def get(self, request: Request) -> Response:
        batches = visible_imports(user=request.user).order_by("-pk")
        return Response(ImportSerializer(batches[:IMPORTS_LISTED], many=True).data)

    @extend_schema(
        operation_id="imports_create",
        request={
            "multipart/form-data": StartImportSerializer,
            "application/json": StartImportSerializer,
        },
        responses={
            202: ImportSerializer,
            400: OpenApiResponse(description="the import cannot be started as asked"),
            413: OpenApiResponse(description="the upload is larger than the server accepts"),
        },
    )
    def post(self, request: Request) -> Response:
        user = access_imports(user=request.user)
        data = request.data
        handler = request._request.upload_handlers[0]
        if isinstance(handler, ImportUploadHandler) and handler.too_large:
            limit = settings.IMPORT_UPLOAD_MAX_BYTES
            too_large = f"the upload is larger than {limit} bytes (SPAVL_IMPORT_UPLOAD_MAX_BYTES)"
            return Response(
                {"detail": too_large},
                status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
            )
        given = StartImportSerializer(data=data)
        upload = request.FILES.get("file")
        try:
            given.is_valid(raise_exception=True)
            fields = given.validated_data
            if (upload is None) == (not fields.get("path")):
                raise ValidationError({"detail": "send either a file or a path, not both"})
            options = {
                name: fields[key]
                for key, name in (
                    ("split", "split"),
                    ("model", "model_name"),
                    ("question_type", "question_type"),
                    ("image_root", "image_root"),
                    ("map", "column_map"),
                    ("taxonomy_map", "taxonomy_map"),
                    ("unknown_taxonomy", "unknown_taxonomy"),
                )
                if fields.get(key)
            }
            batch = queue_import(
                import_format=fields["format"],
                by=user,
                path=fields.get("path", ""),
                upload=upload.path if isinstance(upload, UploadedImport) else None,
                file_name=upload.name if upload is not None else "",
                options=options,
            )
        except ImportFileError as error:
            _discard(upload)
            raise ValidationError({"detail": str(error)}) from None
        except ValidationError:
            _discard(upload)
            raise
        return Response(ImportSerializer(batch).data, status=status.HTTP_202_ACCEPTED)


def _discard(upload: Any) -> None:
    if isinstance(upload, UploadedImport):
        upload.close()
        upload.path.unlink(missing_ok=True)
        upload.path.parent.rmdir()


class ImportDetailApi(APIView):
    required_scopes = {"GET": (Scope.READ.value, Scope.IMPORT.value)}

    @extend_schema(operation_id="imports_retrieve", responses={200: ImportSerializer})
    def get(self, request: Request, batch_id: int) -> Response:
        return Response(ImportSerializer(access_import(user=request.user, batch_id=batch_id)).data)


class RejectionSerializer(serializers.Serializer[Any]):
    row = serializers.IntegerField(help_text="The row's number in the file, from 1.")
    reason = serializers.CharField()


class RejectionsSerializer(serializers.Serializer[Any]):
    count = serializers.IntegerField(help_text="Rows rejected so far.")
    complete = serializers.BooleanField(
        help_text="False when only the first rejections are known here (the report is elsewhere)."
    )
    next_offset = serializers.IntegerField(allow_null=True)
    results = RejectionSerializer(many=True)


class RejectionQuerySerializer(serializers.Serializer[Any]):
    offset = serializers.IntegerField(required=False, default=0, min_value=0, max_value=2**31 - 1)
    limit = serializers.IntegerField(
        required=False, default=100, min_value=1, max_value=REJECTIONS_MAX
    )


class ImportRejectionsApi(APIView):
    required_scopes = {"GET": (Scope.READ.value, Scope.IMPORT.value)}

    @extend_schema(
        operation_id="imports_rejections",
        parameters=[RejectionQuerySerializer],
        responses={200: RejectionsSerializer},
    )
    def get(self, request: Request, batch_id: int) -> Response:
        batch = access_import(user=request.user, batch_id=batch_id)
        query = RejectionQuerySerializer(data=request.query_params.dict())
        query.is_valid(raise_exception=True)
        offset, limit = query.validated_data["offset"], query.validated_data["limit"]
        found, complete = rejections(batch, offset=offset, limit=limit)
        more = offset + len(found) < batch.rows_rejected and len(found) == limit
        return Response(
            RejectionsSerializer(
                {
                    "count": batch.rows_rejected,
                    "complete": complete,
                    "next_offset": offset + limit if more else None,
                    "results": found,
                }
            ).data
        )
