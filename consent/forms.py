"""Forms for request intake (admin and public page) and consent entry in the admin."""

from __future__ import annotations

import json

from django import forms

from cdp.normalize import IdentifierTypes
from consent.models import ConsentStatus, LawfulBasis, Regime, RequestType

IDENTIFIER_HELP = "One per line as type: value, e.g. 'email: old@example.com' or 'user_id: 42'."


def parse_identifiers(text: str) -> list[dict]:
    """'type: value' lines -> [{"type", "value"}]; ValidationError naming a bad line."""
    items = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        id_type, sep, value = line.partition(":")
        id_type = id_type.strip().lower()
        if not sep or id_type not in IdentifierTypes.ALL or not value.strip():
            raise forms.ValidationError(
                f"Line {number}: write type: value with a type among "
                f"{', '.join(IdentifierTypes.ALL)}."
            )
        items.append({"type": id_type, "value": value.strip()})
    return items


class PublicRequestForm(forms.Form):
    """What a person fills in on the public privacy request page."""

    type = forms.ChoiceField(choices=RequestType.choices, label="What would you like to do?")
    regime = forms.ChoiceField(
        choices=[
            (Regime.GDPR, "I live in the EU/EEA or UK (GDPR)"),
            (Regime.CCPA, "I live in California (CCPA)"),
        ],
        label="Where do you live?",
    )
    email = forms.EmailField(label="Your e-mail address", max_length=320)
    name = forms.CharField(label="Your name", max_length=200, required=False)
    details = forms.CharField(
        label="Details (for a correction: what is wrong and what is right)",
        widget=forms.Textarea(attrs={"rows": 4}),
        required=False,
        max_length=5000,
    )


class AdminIntakeForm(forms.Form):
    """Intake of a request received by mail, phone or in person."""

    type = forms.ChoiceField(choices=RequestType.choices)
    regime = forms.ChoiceField(choices=Regime.choices)
    requester_email = forms.EmailField(max_length=320)
    requester_name = forms.CharField(max_length=200, required=False)
    identifiers = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}), required=False, help_text=IDENTIFIER_HELP
    )
    details = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False)
    corrections = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 2}),
        required=False,
        help_text='Rectification: JSON of attribute → corrected value, e.g. {"last_name": "Berg"}.',
    )
    purpose_keys = forms.CharField(
        required=False,
        help_text="Objection: purpose keys, comma-separated (default: sale_sharing).",
    )
    received_at = forms.DateTimeField(
        required=False, help_text="When it arrived, if not now (deadlines count from it)."
    )
    verify = forms.ChoiceField(
        choices=[
            ("email", "Send a one-time link and code by e-mail"),
            ("officer", "I verified the person"),
        ],
        initial="email",
        widget=forms.RadioSelect,
    )
    verification_method = forms.CharField(
        max_length=100, required=False, help_text="How you verified them (if you did)."
    )

    def clean_identifiers(self):
        return parse_identifiers(self.cleaned_data["identifiers"])

    def clean_corrections(self):
        text = self.cleaned_data["corrections"].strip()
        if not text:
            return {}
        try:
            value = json.loads(text)
        except ValueError:
            raise forms.ValidationError("Corrections must be a JSON object.") from None
        if not isinstance(value, dict):
            raise forms.ValidationError("Corrections must be a JSON object.")
        return value

    def clean_purpose_keys(self):
        return [k.strip() for k in self.cleaned_data["purpose_keys"].split(",") if k.strip()]

    def clean(self):
        data = super().clean()
        if data.get("verify") == "officer" and not (data.get("verification_method") or "").strip():
            self.add_error("verification_method", "Say how you verified the person.")
        return data


class ConsentEntryForm(forms.Form):
    """A decision recorded by staff (e.g. a signed paper form)."""

    profile_id = forms.IntegerField()
    purpose = forms.CharField()
    channel = forms.CharField()
    status = forms.ChoiceField(choices=ConsentStatus.choices)
    lawful_basis = forms.ChoiceField(choices=LawfulBasis.choices, initial=LawfulBasis.CONSENT)
    captured_at = forms.DateTimeField(required=False)
    evidence_note = forms.CharField(required=False, max_length=500)
