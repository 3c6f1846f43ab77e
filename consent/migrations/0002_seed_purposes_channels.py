from django.db import migrations

PURPOSES = [
    ("email_marketing", "E-mail marketing", "Newsletters and offers by e-mail.", False),
    ("sms_marketing", "SMS marketing", "Offers by text message.", False),
    ("personalised_advertising", "Personalised advertising", "Ads targeted on this person's data.", False),
    ("analytics", "Analytics", "Measuring use of websites and apps.", False),
    ("personalisation", "Personalisation", "Tailoring content and recommendations.", False),
    ("sale_sharing", "Sale or sharing of personal data", "CCPA/CPRA sale or sharing; the purpose Global Privacy Control opts out of.", True),
]
CHANNELS = [
    ("all", "All channels"),
    ("email", "E-mail"),
    ("sms", "SMS"),
    ("phone", "Phone"),
    ("post", "Post"),
    ("web", "Web"),
    ("app", "App"),
    ("ads", "Advertising networks"),
]


def seed(apps, schema_editor):
    Purpose = apps.get_model("consent", "Purpose")
    Channel = apps.get_model("consent", "Channel")
    for key, name, description, sale in PURPOSES:
        Purpose.objects.get_or_create(
            key=key, defaults={"name": name, "description": description, "is_sale_or_sharing": sale}
        )
    for key, name in CHANNELS:
        Channel.objects.get_or_create(key=key, defaults={"name": name})


class Migration(migrations.Migration):
    dependencies = [("consent", "0001_consent_requests_suppression")]

    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
