from django.db import migrations

# The shipped default (kept here as plain data so later edits of the code do not rewrite history).
RULES = [
    ("Same e-mail and similar name", [("email", "exact_normalised"), ("last_name", "fuzzy_low")]),
    (
        "Same phone, name and no other birth date",
        [("phone", "exact_normalised"), ("first_name", "fuzzy_high")],
    ),
    (
        "Name and birth date",
        [("first_name", "fuzzy_medium"), ("last_name", "fuzzy_medium"), ("birth_date", "fuzzy_low")],
    ),
    (
        "Name and address",
        [("first_name", "fuzzy_medium"), ("last_name", "fuzzy_medium"), ("street", "fuzzy_medium")],
    ),
    (
        "Last name, birth date and postcode",
        [("last_name", "fuzzy_medium"), ("birth_date", "exact_normalised"), ("postcode", "exact_normalised")],
    ),
    ("Customer number and name", [("customer_id", "fuzzy_low"), ("last_name", "fuzzy_medium")]),
    ("Customer number and birth date", [("customer_id", "fuzzy_low"), ("birth_date", "fuzzy_low")]),
]


def create_default(apps, schema_editor):
    Ruleset = apps.get_model("profiles", "Ruleset")
    MatchRule = apps.get_model("profiles", "MatchRule")
    MatchCriterion = apps.get_model("profiles", "MatchCriterion")
    ruleset, created = Ruleset.objects.get_or_create(
        name="Default",
        defaults={
            "is_active": True,
            "description": "Shipped default: e-mail, phone, name + birth date, name + address, "
            "customer number; auto-merge at 16 points, review from 7.",
        },
    )
    if not created:
        return
    for position, (name, criteria) in enumerate(RULES):
        rule = MatchRule.objects.create(ruleset=ruleset, name=name, position=position)
        for field, method in criteria:
            MatchCriterion.objects.create(rule=rule, field=field, method=method)


class Migration(migrations.Migration):
    dependencies = [("profiles", "0002_resolution_rulesets_suggestions")]

    operations = [migrations.RunPython(create_default, migrations.RunPython.noop)]
