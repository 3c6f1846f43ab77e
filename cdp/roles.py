"""The product's roles as Django groups, and the permissions each one has.

One place for the rule: a data migration creates the groups, and after every migrate the
permissions are synced again, so models added later by any app reach the right roles.
"""

from __future__ import annotations

ALL = ("add", "change", "delete", "view")
VIEW = ("view",)

# role -> list of (app label, model name or "*", actions)
ROLE_PERMISSIONS: dict[str, list[tuple[str, str, tuple[str, ...]]]] = {
    "Data Engineer": [
        ("profiles", "datasource", ALL),
        ("profiles", "fieldmapping", ALL),
        ("profiles", "importrun", ("add", "change", "view")),
        ("profiles", "rawrecord", VIEW),
        ("profiles", "sourcerecord", VIEW),
        ("profiles", "identity", VIEW),
        ("profiles", "event", VIEW),
        ("profiles", "profile", VIEW),
        ("profiles", "ruleset", ALL),
        ("profiles", "matchrule", ALL),
        ("profiles", "matchcriterion", ALL),
        ("profiles", "resolutionrun", VIEW),
        ("profiles", "donotmerge", VIEW),
        ("activation", "*", ALL),
        ("django_q", "*", VIEW),
    ],
    "Data Steward": [
        ("profiles", "profile", ("view", "change")),
        ("profiles", "sourcerecord", VIEW),
        ("profiles", "identity", VIEW),
        ("profiles", "event", VIEW),
        ("profiles", "mergelog", VIEW),
        ("profiles", "profileredirect", VIEW),
        ("profiles", "mergesuggestion", ("view", "change")),
        ("profiles", "donotmerge", ("view", "delete")),
        ("profiles", "ruleset", VIEW),
        ("profiles", "matchrule", VIEW),
        ("profiles", "matchcriterion", VIEW),
        ("profiles", "resolutionrun", VIEW),
        ("profiles", "loyaltymember", VIEW),
    ],
    "Marketer": [
        ("profiles", "profile", VIEW),
        ("profiles", "event", VIEW),
        ("segments", "*", ALL),
        ("profiles", "loyaltyprogram", ALL),
        ("profiles", "loyaltytier", ALL),
        ("profiles", "loyaltyearningrule", ALL),
        ("profiles", "loyaltymember", ("view", "add", "adjust")),
        ("profiles", "loyaltyledgerentry", VIEW),
        ("profiles", "loyaltytierchange", VIEW),
        ("profiles", "loyaltyjobrun", VIEW),
        ("activation", "activation", ALL),
        ("activation", "*", VIEW),
        ("insights", "*", VIEW),
        ("insights", "custominsight", ALL),
        ("insights", "custominsightfilter", ALL),
        ("insights", "insightrun", ("add", "view")),
    ],
    "Privacy Officer": [
        ("profiles", "profile", VIEW),
        ("profiles", "sourcerecord", VIEW),
        ("profiles", "identity", VIEW),
        ("profiles", "event", VIEW),
        ("profiles", "rawrecord", VIEW),
        ("profiles", "loyaltymember", VIEW),
        ("profiles", "loyaltyledgerentry", VIEW),
        ("consent", "*", (*ALL, "download")),
        ("cdp", "auditevent", VIEW),
    ],
}


def roles_sync(group_model, permission_model) -> None:
    """Create the groups and give each exactly the permissions its role lists (idempotent)."""
    for role, rules in ROLE_PERMISSIONS.items():
        group, _ = group_model.objects.get_or_create(name=role)
        wanted = []
        for app_label, model, actions in rules:
            perms = permission_model.objects.filter(content_type__app_label=app_label)
            if model != "*":
                perms = perms.filter(content_type__model=model)
            for perm in perms:
                if perm.codename.split("_", 1)[0] in actions:
                    wanted.append(perm)
        group.permissions.set(wanted)


def roles_sync_after_migrate(sender, using="default", **kwargs) -> None:
    """After migrate, once every app's permissions exist (the last app's signal), sync roles."""
    from django.apps import apps
    from django.contrib.auth.models import Group, Permission

    with_models = [a.label for a in apps.get_app_configs() if a.models_module is not None]
    if sender.label == with_models[-1]:
        roles_sync(Group, Permission)
