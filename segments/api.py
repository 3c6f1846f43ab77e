"""REST API for segments (token authentication): count rules, list/create/read, members."""

from __future__ import annotations

import re

from rest_framework import serializers, status
from rest_framework.decorators import api_view, parser_classes, permission_classes
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response

from cdp.api import ApiError
from segments.compiler import MAX_DEPTH, RuleError
from segments.models import Segment
from segments.selectors import rules_count, segment_list, segment_members
from segments.services import SegmentError, segment_create, segment_refresh_request

MAX_PAGE = 1000


class SegmentPermission(BasePermission):
    """Every endpoint needs segments.view_segment; views check add/change where they write."""

    message = "You do not have permission to use segments."

    def has_permission(self, request, view) -> bool:
        user = request.user
        return bool(user and user.is_authenticated and user.has_perm("segments.view_segment"))


class SegmentSerializer(serializers.ModelSerializer):
    class Meta:
        model = Segment
        fields = ["id", "name", "description", "size", "refreshed_at", "created_at", "updated_at"]


class SegmentDetailSerializer(SegmentSerializer):
    class Meta(SegmentSerializer.Meta):
        fields = [*SegmentSerializer.Meta.fields, "rules", "scheduled"]


class RulesJSONParser(JSONParser):
    """JSON whose nesting Python's parser cannot follow (thousands of groups deep) is a 400 that
    says so; anything shallower is parsed and validated, each problem named by its path."""

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ApiError(
                "invalid_rules",
                f"The rules are nested too deeply: groups can be nested at most {MAX_DEPTH} deep.",
            ) from None


RULES_PARSERS = [RulesJSONParser, FormParser, MultiPartParser]


def _invalid_rules(exc: RuleError) -> Response:
    return Response(
        {
            "code": "invalid_rules",
            "message": f"The rules are not valid: {exc}",
            "errors": exc.problems,
        },
        status=status.HTTP_400_BAD_REQUEST,
    )


def _rules_from(request: Request):
    if not isinstance(request.data, dict) or "rules" not in request.data:
        raise ApiError("missing_rules", 'Send a JSON object with "rules".')
    return request.data["rules"]


@api_view(["POST"])
@parser_classes(RULES_PARSERS)
@permission_classes([SegmentPermission])
def segment_count_view(request: Request) -> Response:
    rules = _rules_from(request)
    try:
        return Response({"count": rules_count(rules)})
    except RuleError as exc:
        return _invalid_rules(exc)


@api_view(["GET", "POST"])
@parser_classes(RULES_PARSERS)
@permission_classes([SegmentPermission])
def segment_list_view(request: Request) -> Response:
    if request.method == "GET":
        offset = _whole_number(request, "offset", 0, minimum=0)
        limit = _whole_number(request, "limit", MAX_PAGE, minimum=1, maximum=MAX_PAGE)
        segments = segment_list()
        total = segments.count()
        page = segments[offset : offset + limit]
        return Response(
            {
                "count": total,
                "results": SegmentSerializer(page, many=True).data,
                "next_offset": offset + limit if offset + limit < total else None,
            }
        )
    if not request.user.has_perm("segments.add_segment"):
        raise ApiError("permission_denied", "You do not have permission to create segments.", 403)
    data = request.data if isinstance(request.data, dict) else {}
    name, description = data.get("name", ""), data.get("description", "")
    if not isinstance(name, str) or not isinstance(description, str):
        raise ApiError("invalid", "name and description must be text.")
    rules = _rules_from(request)
    try:
        segment = segment_create(
            name=name, description=description, rules=rules, created_by=request.user
        )
    except RuleError as exc:
        return _invalid_rules(exc)
    except SegmentError as exc:
        raise ApiError("invalid_segment", str(exc)) from exc
    return Response(SegmentDetailSerializer(segment).data, status=status.HTTP_201_CREATED)


_WHOLE_NUMBER_RE = re.compile(r"-?[0-9]{1,20}")
DATABASE_INT_MAX = 2**63 - 1  # a bigint; offsets and ids beyond it cannot be bound


def _whole_number(
    request: Request, name: str, default: int, *, minimum: int, maximum: int | None = None
) -> int:
    """A query parameter that must be a whole number in range; anything else is a 400.

    Plain ASCII digits only (``int`` also reads "+1", " 1", "1_000" and other scripts' digits),
    and never beyond what a database integer holds (a larger offset or id was a 500).
    """
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if not _WHOLE_NUMBER_RE.fullmatch(raw):
        raise ApiError("invalid", f"{name} must be a whole number.")
    value = int(raw)
    maximum = DATABASE_INT_MAX if maximum is None else maximum
    if value < minimum or value > maximum:
        raise ApiError("invalid", f"{name} must be between {minimum} and {maximum}.")
    return value


def _segment(segment_id: int) -> Segment:
    segment = Segment.objects.filter(pk=segment_id).first()
    if segment is None:
        raise ApiError("not_found", "No segment has this id.", 404)
    return segment


@api_view(["GET"])
@permission_classes([SegmentPermission])
def segment_detail_view(request: Request, segment_id: int) -> Response:
    return Response(SegmentDetailSerializer(_segment(segment_id)).data)


@api_view(["GET"])
@permission_classes([SegmentPermission])
def segment_members_view(request: Request, segment_id: int) -> Response:
    """Materialised members (as of the last refresh), keyset-paginated by profile id."""
    if not request.user.has_perm("profiles.view_profile"):
        raise ApiError("permission_denied", "You do not have permission to view profiles.", 403)
    segment = _segment(segment_id)
    after = _whole_number(request, "after", 0, minimum=0)
    limit = _whole_number(request, "limit", 100, minimum=1, maximum=MAX_PAGE)
    rows = list(
        segment_members(segment=segment, after=after, limit=limit).values(
            "id", "first_name", "last_name", "email", "city", "country"
        )
    )
    return Response(
        {
            "segment": segment.pk,
            "size": segment.size,
            "refreshed_at": segment.refreshed_at,
            "results": rows,
            "next_after": rows[-1]["id"] if len(rows) == limit else None,
        }
    )


@api_view(["POST"])
@permission_classes([SegmentPermission])
def segment_refresh_view(request: Request, segment_id: int) -> Response:
    if not request.user.has_perm("segments.change_segment"):
        raise ApiError("permission_denied", "You do not have permission to refresh segments.", 403)
    refresh = segment_refresh_request(segment=_segment(segment_id), requested_by=request.user)
    return Response(
        {"refresh": refresh.pk, "status": refresh.status}, status=status.HTTP_202_ACCEPTED
    )
