"""The REST API: unified profile lookup with token authentication."""

from __future__ import annotations

import io

import pytest
from django.contrib.auth.models import Group, Permission, User
from django.core.management import call_command
from django.core.management.base import CommandError
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from profiles.models import Profile, ProfileRedirect, SourceRecord
from profiles.services.merging import profiles_merge
from profiles.services.tracking import tracking_messages_ingest
from tests.conftest import shopify_csv, shopify_row


@pytest.fixture
def make_api_client(db):
    """An API client authenticated with a token of a new user in the given groups."""

    def make(*groups: str) -> APIClient:
        user = User.objects.create_user(f"user{User.objects.count() + 1}", password="x" * 12)
        user.groups.set(Group.objects.filter(name__in=groups))
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
        return client

    return make


@pytest.fixture
def marketer(make_api_client) -> APIClient:
    return make_api_client("Marketer")


@pytest.fixture
def steward(make_api_client) -> APIClient:
    return make_api_client("Data Steward")


@pytest.fixture
def lena(make_source, import_csv) -> Profile:
    """A profile from a Shopify row and a tracking user with the same e-mail, three events."""
    shop = make_source(name="shop", preset="shopify", priority=10)
    import_csv(
        shop,
        shopify_csv(
            shopify_row(
                **{
                    "First Name": "Lena",
                    "Last Name": "Vogt",
                    "Email": "Lena.Vogt@Example.DE",
                    "Phone": "(202) 555-0143",
                    "Default Address Country Code": "US",
                }
            )
        ),
    )
    web = make_source(name="web", kind="api")
    tracking_messages_ingest(
        source=web,
        messages=[
            {
                "type": "identify",
                "messageId": "m-1",
                "userId": "u-42",
                "traits": {"email": "lena.vogt@example.de", "firstName": "Helena"},
            },
            {"type": "track", "messageId": "m-2", "userId": "u-42", "event": "Order Completed"},
            {"type": "track", "messageId": "m-3", "userId": "u-42", "event": "Product Viewed"},
        ],
    )
    return Profile.objects.get()


def lookup(client: APIClient, **params: str):
    return client.get("/api/profiles/lookup", params)


def assert_is_lena(data: dict, profile: Profile) -> None:
    shop_record = SourceRecord.objects.get(source__name="shop")
    web_record = SourceRecord.objects.get(source__name="web")
    assert data["id"] == profile.pk
    assert data["attributes"]["email"] == "lena.vogt@example.de"
    assert data["attributes"]["phone"] == "+12025550143"
    # The shop has the better (lower) priority, so its first name survives.
    assert data["attributes"]["first_name"] == "Lena"
    assert data["attribute_sources"]["first_name"] == shop_record.pk
    assert data["event_count"] == 3
    assert [(r["id"], r["source"], r["external_key"]) for r in data["source_records"]] == [
        (shop_record.pk, "shop", "lena.vogt@example.de"),
        (web_record.pk, "web", "user:u-42"),
    ]
    assert sorted((i["type"], i["raw_value"], i["key"]) for i in data["identities"]) == [
        ("email", "Lena.Vogt@Example.DE", "lena.vogt@example.de"),
        ("email", "lena.vogt@example.de", "lena.vogt@example.de"),
        ("phone", "(202) 555-0143", "+12025550143"),
        ("user_id", "u-42", "u-42"),
    ]


# --- lookup --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "params",
    [
        {"type": "email", "value": " LENA.VOGT@example.DE\u00a0"},
        {"type": "email", "value": "lena.vogt@example.de"},
        {"type": "phone", "value": "202-555-0143", "region": "US"},
        {"type": "phone", "value": "+1 (202) 555 0143"},
        {"type": "user_id", "value": "u-42"},
    ],
    ids=["email-other-spelling", "email", "phone-national", "phone-e164", "user-id"],
)
def test_lookup_by_any_identifier_returns_the_unified_profile(steward, lena, params):
    response = lookup(steward, **params)

    assert response.status_code == 200
    assert_is_lena(response.json(), lena)


def test_lookup_of_a_national_phone_no_region_reads_finds_nothing(marketer, lena):
    # Lena's number was read as American from her row's country; no source has a region.
    response = lookup(marketer, type="phone", value="202-555-0143")

    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


def phone_person(source, user_id: str, phone: str) -> int:
    tracking_messages_ingest(
        source=source,
        messages=[
            {
                "type": "identify",
                "messageId": user_id,
                "userId": user_id,
                "traits": {"phone": phone},
            }
        ],
    )
    return SourceRecord.objects.get(source=source, external_key=f"user:{user_id}").profile_id


def test_lookup_of_a_national_phone_reads_it_in_the_sources_regions(marketer, make_source):
    us = phone_person(make_source(kind="api", default_region="US"), "u-1", "(401) 465-2236")

    response = lookup(marketer, type="phone", value="401.465.2236")

    assert response.status_code == 200
    assert response.json()["id"] == us


def test_lookup_of_a_national_phone_that_names_two_people_needs_the_region(marketer, make_source):
    german = phone_person(make_source(kind="api", default_region="DE"), "u-de", "06123 45678")
    french = phone_person(make_source(kind="api", default_region="FR"), "u-fr", "06 12 34 56 78")

    response = lookup(marketer, type="phone", value="0612345678")

    assert response.status_code == 400
    assert response.json() == {
        "code": "ambiguous_identifier",
        "message": "0612345678 is the number of different people in different regions "
        "(+33612345678, +49612345678); give region.",
    }
    assert lookup(marketer, type="phone", value="0612345678", region="fr").json()["id"] == french
    assert lookup(marketer, type="phone", value="0612345678", region="DE").json()["id"] == german


def test_lookup_unknown_identifier_is_404_json(marketer, lena):
    response = lookup(marketer, type="email", value="nobody@example.com")

    assert response.status_code == 404
    assert response.json() == {"code": "not_found", "message": "No profile has this identifier."}


def test_lookup_bad_type_is_400_json(marketer, lena):
    response = lookup(marketer, type="fax", value="123")

    assert response.status_code == 400
    assert response.json() == {
        "code": "invalid_type",
        "message": "type must be one of: email, phone, user_id, anonymous_id, customer_id, "
        "member_number.",
    }


def test_lookup_without_value_is_400_json(marketer, lena):
    response = lookup(marketer, type="email", value="  ")

    assert response.status_code == 400
    assert response.json() == {"code": "missing_value", "message": "value is required."}


def test_lookup_of_a_malformed_email_is_404_not_500(marketer, lena):
    response = lookup(marketer, type="email", value="not an address")

    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


# --- detail and merge redirects ------------------------------------------------------------


def test_detail_returns_the_same_as_lookup(steward, lena, django_assert_max_num_queries):
    with django_assert_max_num_queries(8):
        response = steward.get(f"/api/profiles/{lena.pk}")

    assert response.status_code == 200
    assert response.json() == lookup(steward, type="user_id", value="u-42").json()
    assert_is_lena(response.json(), lena)


def test_detail_of_a_merged_away_id_returns_the_survivor(steward, make_source, import_csv):
    source = make_source()
    import_csv(source, "customer_id,first_name,email\nC-1,Ann,ann@example.com\n")
    import_csv(source, "customer_id,first_name,phone\nC-2,Annie,+1 202-555-0143\n")
    first, second = Profile.objects.order_by("pk")
    profiles_merge(survivor_id=first.pk, other_ids=[second.pk], reason="steward accepted")

    absorbed = steward.get(f"/api/profiles/{second.pk}")
    survivor = steward.get(f"/api/profiles/{first.pk}")

    assert absorbed.status_code == 200
    assert absorbed.json() == survivor.json()
    data = absorbed.json()
    assert data["id"] == first.pk
    assert sorted(r["external_key"] for r in data["source_records"]) == ["C-1", "C-2"]
    assert ProfileRedirect.objects.get(old_id=second.pk).profile_id == first.pk


def test_detail_unknown_id_is_404_json(marketer, db):
    response = marketer.get("/api/profiles/987654")

    assert response.status_code == 404
    assert response.json() == {"code": "not_found", "message": "No profile has this id."}


# --- parts each role may see (the admin's profile 360 rule) -------------------------------


def test_marketer_detail_has_no_identities_or_source_records(marketer, lena):
    response = marketer.get(f"/api/profiles/{lena.pk}")

    assert response.status_code == 200
    data = response.json()
    assert "identities" not in data
    assert "source_records" not in data
    assert "Lena.Vogt@Example.DE" not in response.content.decode()
    assert "user:u-42" not in response.content.decode()
    assert sorted(data) == [
        "attribute_sources",
        "attributes",
        "created_at",
        "event_count",
        "id",
        "updated_at",
    ]
    assert data["attributes"]["first_name"] == "Lena"
    assert data["event_count"] == 3


def test_marketer_lookup_has_no_identities_or_source_records(marketer, lena):
    response = lookup(marketer, type="email", value="lena.vogt@example.de")

    assert response.status_code == 200
    data = response.json()
    assert data["id"] == lena.pk
    assert "identities" not in data
    assert "source_records" not in data
    assert "Lena.Vogt@Example.DE" not in response.content.decode()


def test_steward_detail_has_identities_and_source_records(steward, lena):
    response = steward.get(f"/api/profiles/{lena.pk}")

    assert response.status_code == 200
    assert_is_lena(response.json(), lena)
    shop = next(r for r in response.json()["source_records"] if r["source"] == "shop")
    assert shop["attributes"]["first_name"] == "Lena"


@pytest.mark.parametrize(
    ("group", "keys"),
    [
        ("Marketer", set()),
        ("Data Steward", {"identities", "source_records"}),
        ("Privacy Officer", {"identities", "source_records"}),
        ("Data Engineer", {"identities", "source_records"}),
    ],
)
def test_each_role_gets_the_parts_its_permissions_allow(make_api_client, lena, group, keys):
    data = make_api_client(group).get(f"/api/profiles/{lena.pk}").json()

    assert {"identities", "source_records"} & set(data) == keys


def test_view_profile_alone_gives_neither_identities_nor_source_records(lena):
    user = User.objects.create_user("reader")
    user.user_permissions.add(Permission.objects.get(codename="view_profile"))
    client = APIClient()
    client.force_authenticate(user)

    data = client.get(f"/api/profiles/{lena.pk}").json()

    assert data["id"] == lena.pk
    assert "identities" not in data
    assert "source_records" not in data


def test_view_identity_permission_adds_only_identities(lena):
    user = User.objects.create_user("reader")
    user.user_permissions.add(
        *Permission.objects.filter(codename__in=["view_profile", "view_identity"])
    )
    client = APIClient()
    client.force_authenticate(user)

    data = client.get(f"/api/profiles/{lena.pk}").json()

    assert "source_records" not in data
    assert sorted(i["raw_value"] for i in data["identities"]) == [
        "(202) 555-0143",
        "Lena.Vogt@Example.DE",
        "lena.vogt@example.de",
        "u-42",
    ]


# --- authentication and permission ---------------------------------------------------------


def test_without_token_is_401_json(lena):
    response = lookup(APIClient(), type="email", value="lena.vogt@example.de")

    assert response.status_code == 401
    assert response.json() == {
        "code": "not_authenticated",
        "message": "Authentication credentials were not provided.",
    }
    assert response["WWW-Authenticate"] == "Token"


def test_wrong_token_is_401_json(lena):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token 0000000000000000000000000000000000000000")

    response = client.get(f"/api/profiles/{lena.pk}")

    assert response.status_code == 401
    assert response.json() == {"code": "authentication_failed", "message": "Invalid token."}


def test_user_without_profile_permission_is_403_json(make_api_client, lena):
    response = lookup(make_api_client(), type="email", value="lena.vogt@example.de")

    assert response.status_code == 403
    assert response.json() == {
        "code": "permission_denied",
        "message": "You do not have permission to view profiles.",
    }


@pytest.mark.parametrize("group", ["Marketer", "Data Steward", "Privacy Officer", "Data Engineer"])
def test_every_role_may_read_profiles(make_api_client, lena, group):
    response = make_api_client(group).get(f"/api/profiles/{lena.pk}")

    assert response.status_code == 200
    assert response.json()["id"] == lena.pk


def test_user_with_only_the_view_profile_permission_may_read(lena):
    user = User.objects.create_user("reader")
    user.user_permissions.add(Permission.objects.get(codename="view_profile"))
    client = APIClient()
    client.force_authenticate(user)

    assert client.get(f"/api/profiles/{lena.pk}").json()["id"] == lena.pk


# --- tokens --------------------------------------------------------------------------------


def test_drf_create_token_command_creates_a_working_token(lena):
    user = User.objects.create_user("crm-sync")
    user.groups.add(Group.objects.get(name="Marketer"))
    out = io.StringIO()

    call_command("drf_create_token", "crm-sync", stdout=out)

    token = Token.objects.get(user=user)
    assert out.getvalue().strip() == f"Generated token {token.key} for user crm-sync"
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    assert client.get(f"/api/profiles/{lena.pk}").json()["id"] == lena.pk


def test_drf_create_token_for_an_unknown_user_fails(db):
    with pytest.raises(CommandError, match="user ghost does not exist"):
        call_command("drf_create_token", "ghost")
