"""REST API for other systems: look up unified profiles (token authentication)."""

from __future__ import annotations

from rest_framework import serializers
from rest_framework.decorators import api_view, permission_classes
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response

from cdp.api import ApiError
from profiles.constants import IdentifierType
from profiles.models import Identity, Profile, SourceRecord
from profiles.selectors import AmbiguousLookup, profile_get, profile_lookup, profile_parts


class CanViewProfiles(BasePermission):
    message = "You do not have permission to view profiles."

    def has_permission(self, request, view) -> bool:
        return bool(request.user and request.user.has_perm("profiles.view_profile"))


class IdentitySerializer(serializers.ModelSerializer):
    class Meta:
        model = Identity
        fields = ["type", "raw_value", "key", "flag", "source_record"]


class SourceRecordSerializer(serializers.ModelSerializer):
    source = serializers.CharField(source="source.name")

    class Meta:
        model = SourceRecord
        fields = ["id", "source", "external_key", "attributes", "traits", "updated_at"]


class ProfileSerializer(serializers.ModelSerializer):
    identities = IdentitySerializer(many=True)
    source_records = SourceRecordSerializer(many=True)
    event_count = serializers.IntegerField()

    class Meta:
        model = Profile
        fields = [
            "id",
            "attributes",
            "attribute_sources",
            "identities",
            "source_records",
            "event_count",
            "created_at",
            "updated_at",
        ]

    # Fields that are parts of the profile 360 (profiles.selectors.PROFILE_PARTS): a viewer
    # without a part's permission gets a response without that key, as the admin hides it.
    GUARDED_PARTS = ("identities", "source_records")

    def __init__(self, *args, parts: frozenset[str], **kwargs):
        super().__init__(*args, **kwargs)
        for part in self.GUARDED_PARTS:
            if part not in parts:
                self.fields.pop(part)


def profile_response(request: Request, profile: Profile) -> Response:
    return Response(ProfileSerializer(profile, parts=profile_parts(request.user)).data)


@api_view(["GET"])
@permission_classes([CanViewProfiles])
def profile_lookup_view(request: Request) -> Response:
    id_type = request.query_params.get("type", "")
    value = request.query_params.get("value", "")
    if id_type not in IdentifierType.values:
        raise ApiError("invalid_type", f"type must be one of: {', '.join(IdentifierType.values)}.")
    if not value.strip():
        raise ApiError("missing_value", "value is required.")
    try:
        profile = profile_lookup(
            id_type=id_type, value=value, region=request.query_params.get("region", "")
        )
    except AmbiguousLookup as exc:
        raise ApiError("ambiguous_identifier", str(exc)) from exc
    if profile is None:
        raise ApiError("not_found", "No profile has this identifier.", 404)
    return profile_response(request, profile)


@api_view(["GET"])
@permission_classes([CanViewProfiles])
def profile_detail_view(request: Request, profile_id: int) -> Response:
    profile = profile_get(profile_id=profile_id)
    if profile is None:
        raise ApiError("not_found", "No profile has this id.", 404)
    return profile_response(request, profile)
