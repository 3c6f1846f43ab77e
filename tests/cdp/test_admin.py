"""The product's admin site: headline counts on the index, the read-only audit log."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import Group, User
from django.urls import reverse

from cdp.audit import audit_record
from cdp.models import AuditEvent
from cdp.sites import CdpAdminSite
from tests.conftest import shopify_csv, shopify_row


def test_admin_index_shows_headline_counts(
    admin_client, make_source, import_csv, django_assert_max_num_queries
):
    shop = make_source(name="shop", preset="shopify")
    make_source(name="web", kind="api")
    import_csv(
        shop,
        shopify_csv(
            shopify_row(**{"Email": "ann@example.com", "Phone": "+1 202-555-0143"}),
            shopify_row(**{"Email": "bob@example.com"}),
            shopify_row(**{"Email": "bad@@example.com"}),
        ),
    )

    with django_assert_max_num_queries(12):
        response = admin_client.get(reverse("admin:index"))

    assert response.status_code == 200
    assert [(label, count) for label, count, _url in response.context["headline"]] == [
        ("Profiles", 2),
        ("Source records", 2),
        ("Identities", 3),
        ("Events", 0),
        ("Sources", 2),
        ("Imports", 1),
        ("Rejected rows", 1),
    ]
    html = re.sub(r">\s+<", "><", response.content.decode())
    assert re.search(r'class="cdp-count">2</span><span class="cdp-label">Profiles<', html)
    assert re.search(r'class="cdp-count">1</span><span class="cdp-label">Rejected rows<', html)
    assert f'href="{reverse("admin:profiles_rawrecord_changelist")}"' in html


TILE_CHANGELISTS = {
    "Profiles": "admin:profiles_profile_changelist",
    "Source records": "admin:profiles_sourcerecord_changelist",
    "Identities": "admin:profiles_identity_changelist",
    "Events": "admin:profiles_event_changelist",
    "Sources": "admin:profiles_datasource_changelist",
    "Imports": "admin:profiles_importrun_changelist",
    "Rejected rows": "admin:profiles_rawrecord_changelist",
}


@pytest.mark.parametrize(
    ("role", "linked"),
    [
        (
            "Data Engineer",
            {
                "Profiles",
                "Source records",
                "Identities",
                "Events",
                "Sources",
                "Imports",
                "Rejected rows",
            },
        ),  # fmt: skip
        ("Data Steward", {"Profiles", "Source records", "Identities", "Events"}),
        ("Marketer", {"Profiles", "Events"}),
        (
            "Privacy Officer",
            {"Profiles", "Source records", "Identities", "Events", "Rejected rows"},
        ),
    ],
)
def test_admin_index_links_a_tile_only_for_roles_that_may_open_its_list(client, db, role, linked):
    user = User.objects.create_user(username="someone", password="pw", is_staff=True)
    user.groups.add(Group.objects.get(name=role))
    client.force_login(user)

    html = client.get(reverse("admin:index")).content.decode()

    tiles = re.findall(
        r'<(a|div) class="cdp-tile"(?: href="([^"]*)")?>.*?class="cdp-label">([^<]+)<', html
    )
    assert {label for _tag, _href, label in tiles} >= set(TILE_CHANGELISTS)
    hrefs = {label: href for _tag, href, label in tiles if label in TILE_CHANGELISTS}
    assert {label for label, href in hrefs.items() if href} == linked
    for label in linked:
        assert hrefs[label] == reverse(TILE_CHANGELISTS[label])
        assert client.get(hrefs[label]).status_code == 200


def test_admin_index_requires_staff(client, db):
    response = client.get(reverse("admin:index"))

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))


def test_audit_log_is_listed_and_read_only(admin_client, admin_user):
    event = audit_record(actor=admin_user, action="import.create", target="profiles.importrun:7")

    listing = admin_client.get(reverse("admin:cdp_auditevent_changelist"))
    add = admin_client.get(reverse("admin:cdp_auditevent_add"))
    delete = admin_client.post(
        reverse("admin:cdp_auditevent_delete", args=[event.pk]), {"post": "yes"}
    )

    assert [e.pk for e in listing.context["cl"].result_list] == [event.pk]
    assert add.status_code == 403
    assert delete.status_code == 403
    assert AuditEvent.objects.filter(pk=event.pk).exists()


def test_audit_record_names_a_model_target_and_drops_anonymous_actors(make_source):
    source = make_source()

    event = audit_record(actor=None, action="source.create", target=source, details={"n": 1})

    assert (event.actor_id, event.target, event.details) == (
        None,
        f"profiles.datasource:{source.pk}",
        {"n": 1},
    )


def test_the_default_admin_site_is_the_products_site():
    from django.contrib import admin

    assert isinstance(admin.site._wrapped, CdpAdminSite)
    assert "profiles.Profile" in {m._meta.label for m in admin.site._registry}
