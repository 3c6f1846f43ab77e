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
        # Consent inputs (docs/privacy.md): read by consent.services.consent per import batch.
        Attribute("email_opt_out", AttributeType.BOOLEAN, "E-mail opt-out (yes = opted out)"),
        Attribute("email_opt_in_at", AttributeType.STRING, "E-mail opt-in time"),
        Attribute("email_opt_out_at", AttributeType.STRING, "E-mail opt-out time"),
        Attribute("email_cleaned_at", AttributeType.STRING, "E-mail cleaned (undeliverable) time"),
        Attribute("total_spent", AttributeType.NUMBER, "Total spent"),
        Attribute("total_orders", AttributeType.INTEGER, "Total orders"),
        Attribute("tags", AttributeType.STRING, "Tags"),
        Attribute("note", AttributeType.STRING, "Note"),
        Attribute("signed_up_at", AttributeType.DATE, "Signed up"),
        # Kept as the source said it, for the consent work to turn into consent records.
        Attribute(
            "email_subscription_status",
            AttributeType.STRING,
            "E-mail subscription status (subscribed, unsubscribed, cleaned, pending)",
        ),
    ]
}

TRAIT_PREFIX = "trait:"
# A mapping whose source field starts with "=" sets that fixed value on every row.
CONSTANT_PREFIX = "="


class NumberLocale(models.TextChoices):
    """How numbers in a column are written."""

    EN = "en", "1234.50 (decimal point)"
    DE = "de", "1.234,50 (decimal comma)"


class DateOrder:
    """Day/month order of a column of d/m/y dates, as inferred from all of its values."""

    DAY_FIRST = "dmy"
    MONTH_FIRST = "mdy"
    AMBIGUOUS = "ambiguous"  # no value has a part over 12
    CONFLICT = "conflict"  # some values are day-first, others month-first


DATE_FORMAT_CHOICES = [
    ("", "Automatic (ISO, or day/month order from the whole column)"),
    ("%d/%m/%Y", "31/12/2024"),
    ("%m/%d/%Y", "12/31/2024"),
    ("%d.%m.%Y", "31.12.2024"),
    ("%d-%m-%Y", "31-12-2024"),
    ("%m-%d-%Y", "12-31-2024"),
    ("%d/%m/%y", "31/12/24"),
    ("%m/%d/%y", "12/31/24"),
    ("%Y/%m/%d", "2024/12/31"),
]


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
    date_format: str = ""


# Columns every Mailchimp audience export has (Audience > Export audience; one CSV per status).
_MAILCHIMP_COMMON = [
    PresetField("Email Address", "email", is_key=True),
    PresetField("First Name", "first_name"),
    PresetField("Last Name", "last_name"),
    PresetField("Address", "trait:address"),
    PresetField("Phone Number", "phone"),
    PresetField("Birthday", "trait:birthday"),
    PresetField("MEMBER_RATING", "trait:member_rating"),
    PresetField("OPTIN_TIME", "email_opt_in_at"),
    PresetField("OPTIN_IP", "trait:optin_ip"),
    PresetField("CONFIRM_TIME", "trait:confirm_time"),
    PresetField("CONFIRM_IP", "trait:confirm_ip"),
    PresetField("LATITUDE", "trait:latitude"),
    PresetField("LONGITUDE", "trait:longitude"),
    PresetField("GMTOFF", "trait:gmtoff"),
    PresetField("DSTOFF", "trait:dstoff"),
    PresetField("TIMEZONE", "trait:timezone"),
    PresetField("CC", "country"),
    PresetField("REGION", "state"),
    PresetField("LAST_CHANGED", "trait:last_changed"),
    PresetField("LEID", "trait:mailchimp_leid"),
    PresetField("EUID", "trait:mailchimp_euid"),
    PresetField("NOTES", "note"),
    PresetField("TAGS", "tags"),
    # unsubscribed_members_export_*.csv
    PresetField("UNSUB_TIME", "email_opt_out_at"),
    PresetField("UNSUB_CAMPAIGN_TITLE", "trait:unsub_campaign_title"),
    PresetField("UNSUB_CAMPAIGN_ID", "trait:unsub_campaign_id"),
    PresetField("UNSUB_REASON", "trait:unsub_reason"),
    PresetField("UNSUB_REASON_OTHER", "trait:unsub_reason_other"),
    # cleaned_members_export_*.csv
    PresetField("CLEAN_TIME", "email_cleaned_at"),
    PresetField("CLEAN_CAMPAIGN_TITLE", "trait:clean_campaign_title"),
    PresetField("CLEAN_CAMPAIGN_ID", "trait:clean_campaign_id"),
]


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
    # HubSpot: Contacts > Export (all properties or the view's columns); real column names.
    "hubspot": [
        PresetField("Record ID", "trait:hubspot_record_id", is_key=True),
        PresetField("First Name", "first_name"),
        PresetField("Last Name", "last_name"),
        PresetField("Email", "email"),
        PresetField("Phone Number", "phone"),
        PresetField("Mobile Phone Number", "trait:mobile_phone", identifier=IdentifierTypes.PHONE),
        PresetField("Street Address", "street"),
        PresetField("City", "city"),
        PresetField("State/Region", "state"),
        PresetField("Postal Code", "postcode"),
        PresetField("Country/Region", "country"),
        PresetField("Company Name", "company"),
        PresetField("Job Title", "job_title"),
        PresetField("Lifecycle Stage", "trait:lifecycle_stage"),
        PresetField("Create Date", "signed_up_at"),
        PresetField("Marketing contact status", "trait:marketing_contact_status"),
        PresetField("Contact owner", "trait:contact_owner"),
        PresetField("Last Activity Date", "trait:last_activity_date"),
        PresetField("Lead Status", "trait:lead_status"),
    ],
    # Salesforce: Contacts report / Data Loader export with field labels as headers.
    "salesforce": [
        PresetField("Contact ID", "trait:salesforce_contact_id", is_key=True),
        PresetField("First Name", "first_name"),
        PresetField("Last Name", "last_name"),
        PresetField("Email", "email"),
        PresetField("Phone", "phone"),
        PresetField("Mobile Phone", "trait:mobile_phone", identifier=IdentifierTypes.PHONE),
        PresetField("Mailing Street", "street"),
        PresetField("Mailing City", "city"),
        PresetField("Mailing State/Province", "state"),
        PresetField("Mailing Zip/Postal Code", "postcode"),
        PresetField("Mailing Country", "country"),
        PresetField("Birthdate", "birth_date"),
        PresetField("Email Opt Out", "email_opt_out", Transform.BOOLEAN),
        PresetField("Do Not Call", "trait:do_not_call", Transform.BOOLEAN),
        PresetField("Account Name", "company"),
        PresetField("Title", "job_title"),
        PresetField("Lead Source", "trait:lead_source"),
        PresetField("Created Date", "signed_up_at"),
    ],
    # Mailchimp: the subscribed, unsubscribed and cleaned exports share one preset; which
    # file it is follows from its columns (see preset_extra_specs).
    "mailchimp": _MAILCHIMP_COMMON,
}


def preset_extra_specs(preset: str, headers: list[str]) -> list[tuple[str, str, str]]:
    """Constant (value, target, transform) mappings a preset derives from a file's columns.

    A Mailchimp export says its members' status only by which file it is: cleaned files have
    CLEAN_TIME, unsubscribed files UNSUB_TIME, the subscribed file neither.
    """
    if preset != "mailchimp":
        return []
    present = set(headers)
    if "CLEAN_TIME" in present:
        status = "cleaned"
    elif "UNSUB_TIME" in present:
        status = "unsubscribed"
    else:
        status = "subscribed"
    return [(status, "email_subscription_status", Transform.NONE)]


# Other names of canonical attributes, for the fuzzy header -> attribute suggestion.
ATTRIBUTE_SYNONYMS: dict[str, list[str]] = {
    "first_name": ["first name", "firstname", "given name", "forename", "vorname", "fname"],
    "last_name": ["last name", "lastname", "surname", "family name", "nachname", "lname"],
    "email": ["email", "e-mail", "email address", "e-mail address", "mail", "e-mail-adresse"],
    "phone": ["phone", "phone number", "telephone", "tel", "telefon", "telefonnummer"],
    "birth_date": ["birth date", "birthdate", "date of birth", "dob", "birthday", "geburtsdatum"],
    "gender": ["gender", "sex", "geschlecht", "anrede"],
    "company": ["company", "company name", "organization", "organisation", "firma", "account"],
    "job_title": ["job title", "title", "position", "role"],
    "street": ["street", "address", "street address", "address line 1", "address1", "strasse"],
    "street2": ["street 2", "address line 2", "address2", "adresszusatz"],
    "postcode": ["postcode", "postal code", "zip", "zip code", "postleitzahl", "plz"],
    "city": ["city", "town", "ort", "stadt"],
    "state": ["state", "region", "province", "state/region", "county", "bundesland"],
    "country": ["country", "country code", "country/region", "land"],
    "language": ["language", "locale", "sprache"],
    "customer_id": ["customer id", "customer number", "customer no", "kundennummer", "client id"],
    "user_id": ["user id", "userid", "login"],
    "anonymous_id": ["anonymous id", "anonymousid", "cookie id"],
    "accepts_email_marketing": ["accepts email marketing", "newsletter", "email opt in"],
    "accepts_sms_marketing": ["accepts sms marketing", "sms opt in"],
    "total_spent": [
        "total spent",
        "revenue",
        "lifetime value",
        "umsatz",
        "gesamtumsatz",
        "umsatz gesamt",
    ],
    "total_orders": [
        "total orders",
        "orders count",
        "number of orders",
        "bestellungen",
        "anzahl bestellungen",
    ],
    "tags": ["tags", "labels"],
    "note": ["note", "notes", "comment", "comments", "notiz"],
    "signed_up_at": ["signed up at", "signup date", "created at", "create date", "registered"],
    "email_subscription_status": ["subscription status", "email status", "status"],
    "email_opt_out": ["email opt out", "unsubscribed", "opted out"],
}

# English country names (as HubSpot and Salesforce export them) -> ISO 3166 alpha-2.
COUNTRY_NAMES: dict[str, str] = {
    "united states": "US",
    "united states of america": "US",
    "usa": "US",
    "us": "US",
    "united kingdom": "GB",
    "great britain": "GB",
    "uk": "GB",
    "england": "GB",
    "germany": "DE",
    "deutschland": "DE",
    "austria": "AT",
    "österreich": "AT",
    "switzerland": "CH",
    "schweiz": "CH",
    "france": "FR",
    "italy": "IT",
    "spain": "ES",
    "portugal": "PT",
    "netherlands": "NL",
    "the netherlands": "NL",
    "belgium": "BE",
    "luxembourg": "LU",
    "denmark": "DK",
    "sweden": "SE",
    "norway": "NO",
    "finland": "FI",
    "iceland": "IS",
    "ireland": "IE",
    "poland": "PL",
    "czech republic": "CZ",
    "czechia": "CZ",
    "slovakia": "SK",
    "hungary": "HU",
    "romania": "RO",
    "bulgaria": "BG",
    "greece": "GR",
    "croatia": "HR",
    "slovenia": "SI",
    "estonia": "EE",
    "latvia": "LV",
    "lithuania": "LT",
    "turkey": "TR",
    "türkiye": "TR",
    "ukraine": "UA",
    "canada": "CA",
    "mexico": "MX",
    "brazil": "BR",
    "argentina": "AR",
    "chile": "CL",
    "colombia": "CO",
    "australia": "AU",
    "new zealand": "NZ",
    "japan": "JP",
    "china": "CN",
    "india": "IN",
    "singapore": "SG",
    "south korea": "KR",
    "korea, republic of": "KR",
    "israel": "IL",
    "south africa": "ZA",
    "united arab emirates": "AE",
    "saudi arabia": "SA",
    "egypt": "EG",
    "nigeria": "NG",
}
