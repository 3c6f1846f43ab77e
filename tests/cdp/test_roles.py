"""The product's roles exist as groups after migrations, with the permissions they need."""

from __future__ import annotations

import pytest
from django.apps import apps
from django.contrib.auth.models import Group, Permission, User

from cdp.roles import roles_sync, roles_sync_after_migrate

ROLES = ["Data Engineer", "Data Steward", "Marketer", "Privacy Officer"]


def perms(group_name: str) -> set[str]:
    group = Group.objects.get(name=group_name)
    return {
        f"{app}.{codename}"
        for app, codename in group.permissions.values_list("content_type__app_label", "codename")
    }


def test_the_four_roles_exist_after_migrations(db):
    assert sorted(Group.objects.filter(name__in=ROLES).values_list("name", flat=True)) == ROLES


@pytest.mark.parametrize(
    ("role", "allowed", "denied"),
    [
        (
            "Data Engineer",
            {
                "profiles.add_importrun",
                "profiles.view_importrun",
                "profiles.add_datasource",
                "profiles.change_fieldmapping",
                "profiles.view_rawrecord",
                "profiles.view_profile",
            },
            {"profiles.delete_importrun", "profiles.change_profile", "cdp.view_auditevent"},
        ),
        (
            "Data Steward",
            {
                "profiles.view_profile",
                "profiles.change_profile",
                "profiles.view_mergelog",
                "profiles.view_profileredirect",
            },
            {"profiles.view_rawrecord", "profiles.add_importrun", "profiles.delete_profile"},
        ),
        (
            "Marketer",
            {"profiles.view_profile", "profiles.view_event"},
            {
                "profiles.view_rawrecord",
                "profiles.view_identity",
                "profiles.view_sourcerecord",
                "profiles.add_importrun",
                "cdp.view_auditevent",
            },
        ),
        (
            "Privacy Officer",
            {
                "cdp.view_auditevent",
                "profiles.view_rawrecord",
                "profiles.view_identity",
                "profiles.view_profile",
            },
            {"cdp.change_auditevent", "profiles.add_importrun", "profiles.change_profile"},
        ),
    ],
)
def test_role_permissions(db, role, allowed, denied):
    granted = perms(role)

    assert allowed <= granted
    assert denied & granted == set()


@pytest.mark.parametrize(
    ("role", "permission", "expected"),
    [
        ("Data Engineer", "profiles.add_importrun", True),
        ("Marketer", "profiles.view_rawrecord", False),
        ("Privacy Officer", "cdp.view_auditevent", True),
        ("Marketer", "profiles.view_profile", True),
    ],
)
def test_a_user_in_a_role_has_its_permissions(db, role, permission, expected):
    user = User.objects.create_user(f"in-{role.lower().replace(' ', '-')}")
    user.groups.add(Group.objects.get(name=role))

    assert User.objects.get(pk=user.pk).has_perm(permission) is expected


def test_roles_sync_is_idempotent_and_restores_removed_permissions(db):
    marketer = Group.objects.get(name="Marketer")
    before = perms("Marketer")
    marketer.permissions.remove(Permission.objects.get(codename="view_profile"))
    marketer.permissions.add(Permission.objects.get(codename="view_rawrecord"))

    roles_sync(Group, Permission)
    roles_sync(Group, Permission)

    assert perms("Marketer") == before
    assert Group.objects.filter(name__in=ROLES).count() == 4


def test_roles_are_synced_again_after_migrate(db):
    Group.objects.get(name="Privacy Officer").permissions.clear()
    last_app = [a for a in apps.get_app_configs() if a.models_module is not None][-1]

    roles_sync_after_migrate(sender=last_app)

    assert "cdp.view_auditevent" in perms("Privacy Officer")
