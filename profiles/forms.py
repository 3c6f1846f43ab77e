"""Forms of the import workflow (upload, the column mapping the data engineer confirms) and of
the data source admin."""

from __future__ import annotations

from django import forms

from profiles.constants import (
    CANONICAL_ATTRIBUTES,
    CONSTANT_PREFIX,
    DATE_FORMAT_CHOICES,
    PRESETS,
    TRAIT_PREFIX,
    IdentifierType,
    NumberLocale,
    Transform,
)
from profiles.models import DataSource
from profiles.services.imports import DELIMITER_CHOICES, ENCODING_CHOICES
from profiles.services.mapping import FieldSpec, mapping_conflicts, trait_name

TRAIT = "__trait__"
SKIP = "__skip__"
TARGET_CHOICES = [
    ("", [(TRAIT, "Custom trait (name below)"), (SKIP, "Do not import")]),
    (
        "Canonical attributes",
        [(a.name, f"{a.label} ({a.name})") for a in CANONICAL_ATTRIBUTES.values()],
    ),
]


class DataSourceForm(forms.ModelForm):
    """A data source in the admin; the preset is one of the known presets, never free text.

    A misspelt preset ("HubSpot", "hubspt") was saved as typed: the admin's mapping step then
    ignored it without a word and every CLI import of the source failed.
    """

    preset = forms.ChoiceField(
        choices=[("", "None (canonical column names or a saved mapping)")]
        + [(name, name) for name in sorted(PRESETS)],
        required=False,
        help_text="Column mapping preset for this kind of export.",
    )

    class Meta:
        model = DataSource
        fields = ("name", "kind", "preset", "priority", "default_region")


class ImportUploadForm(forms.Form):
    """Step 1: a file source and a CSV file; encoding and delimiter detected unless chosen."""

    source = forms.ModelChoiceField(queryset=DataSource.objects.filter(kind=DataSource.Kind.FILE))
    file = forms.FileField(
        help_text="A CSV export: Shopify, Mailchimp, HubSpot, Salesforce, or any other layout."
    )
    encoding = forms.ChoiceField(choices=ENCODING_CHOICES, required=False)
    delimiter = forms.ChoiceField(choices=DELIMITER_CHOICES, required=False)


class ColumnMappingForm(forms.Form):
    """Step 2: one column's mapping (target, transform, identity, key, number and date format)."""

    column = forms.CharField(widget=forms.HiddenInput)
    target = forms.ChoiceField(choices=TARGET_CHOICES)
    trait = forms.CharField(required=False, max_length=150, label="Trait name")
    transform = forms.ChoiceField(choices=Transform.choices, required=False)
    identifier_type = forms.ChoiceField(
        choices=[("", "—"), *IdentifierType.choices], required=False, label="Identity"
    )
    is_key = forms.BooleanField(required=False, label="Key")
    number_locale = forms.ChoiceField(choices=NumberLocale.choices, required=False)
    date_format = forms.ChoiceField(choices=DATE_FORMAT_CHOICES, required=False)

    @staticmethod
    def initial_for(spec: FieldSpec) -> dict:
        if spec.target.startswith(TRAIT_PREFIX):
            target, trait = TRAIT, spec.target[len(TRAIT_PREFIX) :]
        else:
            target, trait = spec.target, ""
        return {
            "column": spec.column,
            "target": target,
            "trait": trait,
            "transform": spec.transform,
            "identifier_type": spec.identifier,
            "is_key": spec.is_key,
            "number_locale": spec.number_locale,
            "date_format": spec.date_format,
        }

    def clean(self):
        data = super().clean()
        if data.get("target") == TRAIT and not trait_name(data.get("trait") or ""):
            data["trait"] = trait_name(data.get("column") or "")
        if data.get("column", "").startswith(CONSTANT_PREFIX) and data.get("is_key"):
            self.add_error("is_key", "A fixed value cannot be the key.")
        return data

    def spec(self) -> FieldSpec | None:
        data = self.cleaned_data
        if data["target"] == SKIP:
            return None
        target = (
            TRAIT_PREFIX + trait_name(data["trait"]) if data["target"] == TRAIT else data["target"]
        )
        return FieldSpec(
            data["column"],
            target,
            data.get("transform") or Transform.NONE,
            data.get("identifier_type") or "",
            bool(data.get("is_key")),
            number_locale=data.get("number_locale") or NumberLocale.EN,
            date_format=data.get("date_format") or "",
        )


class BaseColumnMappingFormSet(forms.BaseFormSet):
    """All columns together: each attribute or custom trait takes at most one column."""

    def clean(self):
        if any(self.errors):
            return
        specs = [spec for form in self.forms if (spec := form.spec()) is not None]
        problems = mapping_conflicts(specs)
        if problems:
            raise forms.ValidationError(problems)


ColumnMappingFormSet = forms.formset_factory(
    ColumnMappingForm, formset=BaseColumnMappingFormSet, extra=0
)
