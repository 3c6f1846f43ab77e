from django.db import migrations

# Added to the shipped "Default" ruleset (issue 4 follow-up), as plain data like 0003.
RULES = [
    ("Customer number and address", [("customer_id", "exact_normalised"), ("street", "fuzzy_medium")]),
    (
        "First name, birth date and address (a changed last name)",
        [("first_name", "fuzzy_medium"), ("birth_date", "exact_normalised"), ("street", "fuzzy_medium")],
    ),
]


def add_rules(apps, schema_editor):
    Ruleset = apps.get_model("profiles", "Ruleset")
    MatchRule = apps.get_model("profiles", "MatchRule")
    MatchCriterion = apps.get_model("profiles", "MatchCriterion")
    ruleset = Ruleset.objects.filter(name="Default").first()
    if ruleset is None:
        return
    position = ruleset.rules.count()
    for name, criteria in RULES:
        if ruleset.rules.filter(name=name).exists():
            continue  # a steward already added it
        rule = MatchRule.objects.create(ruleset=ruleset, name=name, position=position)
        position += 1
        for field, method in criteria:
            MatchCriterion.objects.create(rule=rule, field=field, method=method)


def remove_rules(apps, schema_editor):
    MatchRule = apps.get_model("profiles", "MatchRule")
    MatchRule.objects.filter(ruleset__name="Default", name__in=[n for n, _ in RULES]).delete()


class Migration(migrations.Migration):
    dependencies = [("profiles", "0006_loyalty")]

    operations = [migrations.RunPython(add_rules, remove_rules)]
