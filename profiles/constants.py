"""Canonical attributes, transforms and presets: the vocabulary of ingestion.

Documented for users in docs/attributes.md; this module is the one place they are defined.
"""

from dataclasses import dataclass

from django.db import models

from cdp.normalize import IdentifierTypes


class AttributeType(models.TextChoices):
    STRING = "string", "Text"
    EMAIL = "email", "E-mail"
    PHONE = "phone", "Phone"
    DATE = "date", "Date"
    NUMBER = "number", "Number"
    INTEGER = "integer", "Whole number"
    BOOLEAN = "boolean", "Yes/no"
    COUNTRY = "country", "Country code"


@dataclass(frozen=True)
class Attribute:
    """A canonical profile attribute: its name, type, label and the identity it yields."""

    name: str
    type: str
    label: str
    identifier: str = ""


CANONICAL_ATTRIBUTES: dict[str, Attribute] = {
    a.name: a
    for a in [
        Attribute("first_name", AttributeType.STRING, "First name"),
        Attribute("last_name", AttributeType.STRING, "Last name"),
        Attribute("email", AttributeType.EMAIL, "E-mail", IdentifierTypes.EMAIL),
        Attribute("phone", AttributeType.PHONE, "Phone", IdentifierTypes.PHONE),
        Attribute("birth_date", AttributeType.DATE, "Birth date"),
        Attribute("gender", AttributeType.STRING, "Gender"),
        Attribute("company", AttributeType.STRING, "Company"),
        Attribute("job_title", AttributeType.STRING, "Job title"),
        Attribute("street", AttributeType.STRING, "Street"),
        Attribute("street2", AttributeType.STRING, "Street (line 2)"),
        Attribute("postcode", AttributeType.STRING, "Postcode"),
        Attribute("city", AttributeType.STRING, "City"),
        Attribute("state", AttributeType.STRING, "State / province"),
        Attribute("country", AttributeType.COUNTRY, "Country"),
        Attribute("language", AttributeType.STRING, "Language"),
        Attribute(
            "customer_id", AttributeType.STRING, "Customer number", IdentifierTypes.CUSTOMER_ID
        ),
        Attribute("user_id", AttributeType.STRING, "User id", IdentifierTypes.USER_ID),
        Attribute(
            "anonymous_id", AttributeType.STRING, "Anonymous id", IdentifierTypes.ANONYMOUS_ID
        ),
        Attribute("accepts_email_marketing", AttributeType.BOOLEAN, "Accepts e-mail marketing"),
        Attribute("accepts_sms_marketing", AttributeType.BOOLEAN, "Accepts SMS marketing"),
        Attribute("total_spent", AttributeType.NUMBER, "Total spent"),
        Attribute("total_orders", AttributeType.INTEGER, "Total orders"),
        Attribute("tags", AttributeType.STRING, "Tags"),
        Attribute("note", AttributeType.STRING, "Note"),
        Attribute("signed_up_at", AttributeType.DATE, "Signed up"),
    ]
}

TRAIT_PREFIX = "trait:"


class Transform(models.TextChoices):
    """How a source value is turned into the target value (after trimming)."""

    NONE = "", "As is (trimmed)"
    LOWER = "lower", "Lower case"
    UPPER = "upper", "Upper case"
    TITLE = "title", "Title case"
    STRIP_APOSTROPHE = "strip_apostrophe", "Drop a leading apostrophe (Excel/Shopify text guard)"
    BOOLEAN = "boolean", "Yes/no"
    BOOLEAN_INVERTED = "boolean_inverted", "Yes/no, inverted (opt-out column)"


class IdentifierType(models.TextChoices):
    EMAIL = IdentifierTypes.EMAIL, "E-mail"
    PHONE = IdentifierTypes.PHONE, "Phone"
    USER_ID = IdentifierTypes.USER_ID, "User id"
    ANONYMOUS_ID = IdentifierTypes.ANONYMOUS_ID, "Anonymous id"
    CUSTOMER_ID = IdentifierTypes.CUSTOMER_ID, "Customer number"
    MEMBER_NUMBER = IdentifierTypes.MEMBER_NUMBER, "Loyalty member number"


@dataclass(frozen=True)
class PresetField:
    """One column of a preset: source column -> target, with transform and identifier type."""

    column: str
    target: str
    transform: str = Transform.NONE
    identifier: str = ""
    is_key: bool = False


PRESETS: dict[str, list[PresetField]] = {
    # Shopify admin > Customers > Export (CSV for Excel / plain CSV): the real column names.
    "shopify": [
        PresetField("First Name", "first_name"),
        PresetField("Last Name", "last_name"),
        PresetField("Email", "email", is_key=True),
        PresetField("Accepts Email Marketing", "accepts_email_marketing", Transform.BOOLEAN),
        PresetField("Default Address Company", "company"),
        PresetField("Default Address Address1", "street"),
        PresetField("Default Address Address2", "street2"),
        PresetField("Default Address City", "city"),
        PresetField("Default Address Province Code", "state", Transform.UPPER),
        PresetField("Default Address Country Code", "country"),
        PresetField("Default Address Zip", "postcode", Transform.STRIP_APOSTROPHE),
        PresetField(
            "Default Address Phone",
            "trait:default_address_phone",
            Transform.STRIP_APOSTROPHE,
            IdentifierTypes.PHONE,
        ),
        PresetField("Phone", "phone", Transform.STRIP_APOSTROPHE),
        PresetField("Accepts SMS Marketing", "accepts_sms_marketing", Transform.BOOLEAN),
        PresetField("Total Spent", "total_spent"),
        PresetField("Total Orders", "total_orders"),
        PresetField("Note", "note"),
        PresetField("Tax Exempt", "trait:tax_exempt", Transform.BOOLEAN),
        PresetField("Tags", "tags"),
    ],
}
