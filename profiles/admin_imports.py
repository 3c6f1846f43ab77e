"""Admin for imports: upload, mapping with preview, progress (htmx), report, rejected rows CSV."""

from __future__ import annotations

import json

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect, StreamingHttpResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from profiles.constants import CANONICAL_ATTRIBUTES, DateOrder, NumberLocale
from profiles.forms import ColumnMappingForm, ColumnMappingFormSet, ImportUploadForm
from profiles.models import ImportRun, RawRecord
from profiles.selectors import import_run_rejected_csv_lines, import_run_report
from profiles.services.imports import (
    DELIMITER_CHOICES,
    ImportError_,
    import_preview,
    import_run_create,
    import_run_start,
    mapping_save,
    scan_file,
    with_number_locales,
)
from profiles.services.mapping import NUMBER_CONFLICT, FieldSpec, Suggestion, suggest_specs

DATE_ORDER_LABELS = {
    DateOrder.DAY_FIRST: "day first (inferred from the column)",
    DateOrder.MONTH_FIRST: "month first (inferred from the column)",
    DateOrder.AMBIGUOUS: "ambiguous: no value shows the order, choose a date format",
    DateOrder.CONFLICT: "contradictory: both orders occur, choose a date format",
}


def mapping_suggestions(run: ImportRun, headers: list[str]) -> list[Suggestion]:
    """The saved mapping where the source has one (new columns suggested), else a suggestion."""
    source = run.source
    saved = {m.source_field: m for m in source.mappings.all()}
    # A new column is never suggested for an attribute a saved column already maps to.
    taken = frozenset(m.target for m in saved.values() if m.source_field in headers)
    suggested = suggest_specs(headers, source.preset, taken=taken)
    if not saved:
        return suggested
    result = []
    for suggestion in suggested:
        m = saved.get(suggestion.spec.column)
        if m is None:
            result.append(suggestion)
            continue
        spec = FieldSpec(
            m.source_field,
            m.target,
            m.transform,
            m.identifier_type,
            m.is_key,
            number_locale=m.number_locale,
            date_format=m.date_format,
        )
        result.append(Suggestion(spec, 100, "saved mapping of this source"))
    return result


@admin.register(ImportRun)
class ImportRunAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "original_name",
        "source",
        "status",
        "progress",
        "rows_done",
        "created_count",
        "updated_count",
        "unchanged_count",
        "rejected_count",
        "suppressed_count",
        "created_at",
    )
    list_filter = ("status", "source")
    list_select_related = ("source",)
    date_hierarchy = "created_at"
    show_full_result_count = False
    # Everything that changes while a run goes is shown by the polled progress fragment
    # (_progress.html), not in the fieldset, where it would stay as it was when the page loaded.
    exclude = (
        "status", "rows_total", "rows_done", "created_count", "updated_count", "unchanged_count",
        "rejected_count", "suppressed_count", "rejected_reasons", "error", "started_at",
        "finished_at", "encoding", "delimiter", "headers",
    )  # fmt: skip
    readonly_fields = ("source", "original_name", "created_by", "created_at")
    change_form_template = "admin/profiles/importrun/change_form.html"

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path(
                "<int:run_id>/mapping/", wrap(self.mapping_view), name="profiles_importrun_mapping"
            ),
            path(
                "<int:run_id>/progress/",
                wrap(self.progress_view),
                name="profiles_importrun_progress",
            ),
            path(
                "<int:run_id>/rejected.csv",
                wrap(self.rejected_csv_view),
                name="profiles_importrun_rejected_csv",
            ),
            *super().get_urls(),
        ]

    def has_change_permission(self, request, obj=None):
        return obj is None and super().has_change_permission(request, obj)

    # --- step 1: upload ----------------------------------------------------------------------

    def add_view(self, request, form_url="", extra_context=None):
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = ImportUploadForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            upload = form.cleaned_data["file"]
            run = import_run_create(
                source=form.cleaned_data["source"],
                file=upload,
                created_by=request.user,
                original_name=upload.name,
                encoding=form.cleaned_data["encoding"],
                delimiter=form.cleaned_data["delimiter"],
                draft=True,
            )
            self.log_addition(request, run, [{"added": {}}])
            return HttpResponseRedirect(reverse("admin:profiles_importrun_mapping", args=[run.pk]))
        context = {
            **self.admin_site.each_context(request),
            "title": "Import a file",
            "opts": self.opts,
            "form": form,
        }
        return TemplateResponse(request, "admin/profiles/importrun/upload.html", context)

    # --- step 2: mapping with preview -------------------------------------------------------

    def mapping_view(self, request, run_id: int):
        if not self.has_add_permission(request):
            raise PermissionDenied
        run = get_object_or_404(ImportRun.objects.select_related("source"), pk=run_id)
        if run.status != ImportRun.Status.DRAFT:
            return HttpResponseRedirect(reverse("admin:profiles_importrun_change", args=[run.pk]))
        suggested: dict[str, list[Suggestion]] = {}

        def suggested_specs(headers: list[str]) -> list[FieldSpec]:
            suggested["all"] = mapping_suggestions(run, headers)
            return [s.spec for s in suggested["all"]]

        try:
            fmt = scan_file(
                run.file.path,
                encoding=run.encoding,
                delimiter=run.delimiter,
                specs_for=suggested_specs,
            )
        except (ImportError_, UnicodeDecodeError) as exc:
            messages.error(request, f"The file cannot be read: {exc}")
            return HttpResponseRedirect(reverse("admin:profiles_importrun_add"))
        # The number format each number column shows is suggested, also over a saved mapping
        # (a value the saved format cannot read would be rejected anyway); it stays changeable.
        suggestions = [
            Suggestion(spec, s.score, s.reason)
            for s in suggested["all"]
            for spec in with_number_locales([s.spec], fmt.number_locales)
        ]
        constants = [s for s in suggestions if s.spec.constant is not None]
        columns = [s for s in suggestions if s.spec.constant is None]
        if request.method == "POST":
            formset = ColumnMappingFormSet(request.POST, prefix="map")
        else:
            formset = ColumnMappingFormSet(
                initial=[ColumnMappingForm.initial_for(s.spec) for s in columns], prefix="map"
            )
        specs = None
        if formset.is_bound and formset.is_valid():
            specs = [spec for form in formset if (spec := form.spec()) is not None]
        elif not formset.is_bound:
            specs = [s.spec for s in columns]
        if specs is not None:
            specs = specs + [s.spec for s in constants]
        if request.method == "POST" and "start" in request.POST and specs is not None:
            mapping_save(source=run.source, specs=specs, actor=request.user)
            if import_run_start(run=run, actor=request.user):
                self.log_change(request, run, "Confirmed the mapping and started the import.")
                messages.success(request, "The import has started.")
            return HttpResponseRedirect(reverse("admin:profiles_importrun_change", args=[run.pk]))
        preview = None
        if specs is not None:
            preview = import_preview(
                path=run.file.path,
                specs=specs,
                encoding=fmt.encoding,
                delimiter=fmt.delimiter,
                region=run.source.default_region,
            )
        samples = (
            {h: [row.get(h, "") for _n, row, _r, _e in preview.rows] for h in fmt.headers}
            if preview
            else {}
        )
        rows = [
            {
                "form": form,
                "column": form["column"].value(),
                "suggestion": columns[i] if i < len(columns) else None,
                "samples": samples.get(form["column"].value(), []),
            }
            for i, form in enumerate(formset)
        ]
        context = {
            **self.admin_site.each_context(request),
            "title": f"Map the columns of {run.original_name}",
            "opts": self.opts,
            "run": run,
            "fmt": fmt,
            "formset": formset,
            "rows": rows,
            "constants": constants,
            "preview": preview,
            "preview_rows": _preview_rows(preview) if preview else [],
            "date_orders": [
                (column, DATE_ORDER_LABELS.get(order, order))
                for column, order in (preview.fmt.date_orders.items() if preview else [])
            ],
            "number_locales": _number_locale_notes(preview, specs) if preview else [],
            "attributes": CANONICAL_ATTRIBUTES,
        }
        template = (
            "admin/profiles/importrun/_preview.html"
            if request.htmx
            else "admin/profiles/importrun/mapping.html"
        )
        return TemplateResponse(request, template, context)

    # --- step 3: progress and report ---------------------------------------------------------

    def progress_view(self, request, run_id: int):
        if not self.has_view_permission(request):
            raise PermissionDenied
        run = get_object_or_404(ImportRun, pk=run_id)
        return TemplateResponse(
            request, "admin/profiles/importrun/_progress.html", self._progress_context(run)
        )

    def _progress_context(self, run: ImportRun) -> dict:
        """The run's live state for _progress.html; the rejected rows once the run has ended."""
        report = import_run_report(run=run)
        rejected = self.rejected_rows(run) if report["finished"] and run.rejected_count else ""
        delimiter = (
            dict(DELIMITER_CHOICES).get(run.delimiter, run.delimiter) if run.delimiter else ""
        )
        return {"run": run, "report": report, "rejected_rows": rejected, "delimiter": delimiter}

    def rejected_csv_view(self, request, run_id: int):
        if not self.has_view_permission(request):
            raise PermissionDenied
        run = get_object_or_404(ImportRun, pk=run_id)
        response = StreamingHttpResponse(
            import_run_rejected_csv_lines(run=run), content_type="text/csv; charset=utf-8"
        )
        name = (run.original_name or "import").rsplit(".", 1)[0]
        response["Content-Disposition"] = f'attachment; filename="{name}-rejected.csv"'
        return response

    def change_view(self, request, object_id, form_url="", extra_context=None):
        run = self.get_object(request, object_id)
        extra = {**(extra_context or {})}
        if run is not None:
            if run.status == ImportRun.Status.DRAFT:
                return HttpResponseRedirect(
                    reverse("admin:profiles_importrun_mapping", args=[run.pk])
                )
            extra.update(self._progress_context(run))
        return super().change_view(request, object_id, form_url, extra)

    @admin.display(description="Progress")
    def progress(self, obj: ImportRun) -> str:
        return format_html(
            '<div class="cdp-progress" title="{}%"><span style="width:{}%"></span></div>',
            obj.progress_percent,
            obj.progress_percent,
        )

    @admin.display(description="Rejected rows (first 50)")
    def rejected_rows(self, obj: ImportRun) -> str:
        from profiles.admin import _table

        rows = obj.raw_records.filter(status=RawRecord.Status.REJECTED).order_by("row_number")[:50]
        link = (
            reverse("admin:profiles_rawrecord_changelist")
            + f"?import_run__id__exact={obj.pk}&status__exact=rejected"
        )
        table = _table(
            ["Row", "Error", "Row as received"],
            ((r.row_number, r.error, json.dumps(r.payload, ensure_ascii=False)) for r in rows),
        )
        return format_html('{}<a href="{}">All rejected rows of this import</a>', table, link)


NUMBER_LOCALE_LABELS = {
    NumberLocale.DE: "decimal comma (1.234,50), suggested by the column",
    NumberLocale.EN: "decimal point (1,234.50), suggested by the column",
    NUMBER_CONFLICT: "contradictory: both decimal commas and decimal points occur",
}
MAPPED_LOCALE = {NumberLocale.DE: "a decimal comma", NumberLocale.EN: "a decimal point"}


def _number_locale_notes(preview, specs: list[FieldSpec]) -> list[tuple[str, str]]:
    """(column, what its values show, and how the mapping differs) for each number column."""
    mapped = {s.column: s.number_locale or NumberLocale.EN for s in specs}
    notes = []
    for column, locale in preview.fmt.number_locales.items():
        label = NUMBER_LOCALE_LABELS.get(locale, locale)
        if locale in MAPPED_LOCALE and mapped.get(column) != locale:
            label += f"; the mapping reads it with {MAPPED_LOCALE[mapped.get(column)]}"
        notes.append((column, label))
    return notes


def _preview_rows(preview) -> list[dict]:
    result = []
    for number, row, record, error in preview.rows:
        if record is None:
            result.append(
                {"number": number, "row": row, "error": str(error), "reason": error.reason}
            )
            continue
        values = [(name, value) for name, value in record.attributes.items()]
        values += [(f"trait:{name}", value) for name, value in record.traits.items()]
        identities = [
            (i.type, i.key or f"{i.raw_value} (no key: {i.flag})") for i in record.identities
        ]
        result.append(
            {
                "number": number,
                "row": row,
                "key": record.external_key,
                "values": values,
                "identities": identities,
            }
        )
    return result
