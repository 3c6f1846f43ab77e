"""The segment builder and the "why is this profile in / not in" page (admin pages, htmx).

The rule tree lives in the page: every request carries the tree serialised from the DOM
(``rules``), so dragging, buttons and typing all end in the same server-side validation.
"""

from __future__ import annotations

import json

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.text import slugify

from profiles.models import Profile
from segments import starters
from segments.compiler import RuleError, rules_validate
from segments.models import Segment
from segments.registry import OPERATORS, PERIODS, get_registry
from segments.selectors import (
    event_names,
    event_property_values,
    field_values,
    rules_counts,
    rules_explain,
    rules_preview,
    segment_changes,
    segment_size_history,
)
from segments.services import SegmentError, segment_create, segment_refresh_request, segment_update
from segments.tree import (
    condition_complete,
    group_paths,
    new_condition,
    prune_problems,
    tree_apply,
    tree_normalize,
)

FREQUENCIES = [("at_least", "at least"), ("at_most", "at most"), ("exactly", "exactly")]
WINDOWS = [
    ("", "ever"),
    ("last_days", "in the last … days"),
    ("between", "between dates"),
    ("period", "in a calendar period"),
]
PROPERTY_OPERATORS = [
    ("equals", "="),
    ("not_equals", "≠"),
    ("greater", ">"),
    ("greater_or_equal", "≥"),
    ("less", "<"),
    ("less_or_equal", "≤"),
    ("contains", "contains"),
    ("is_set", "is set"),
    ("is_not_set", "is not set"),
]


def _require(request: HttpRequest, *perms: str) -> None:
    if not all(request.user.has_perm(p) for p in perms):
        raise PermissionDenied


def _rules_from_post(request: HttpRequest) -> dict:
    try:
        return tree_normalize(json.loads(request.POST.get("rules") or "{}"))
    except (ValueError, TypeError):
        return tree_normalize({})


# --- view model ---------------------------------------------------------------------------


def slug(path: str) -> str:
    return slugify(path.replace(".", "-"))


def view_tree(tree: dict, *, explain: dict | None = None, segments=None) -> list[dict]:
    """The include and exclude groups as nested dicts the templates render."""
    registry = get_registry()
    segments = segments if segments is not None else list(Segment.objects.values("id", "name"))
    moves = group_paths(tree)

    def node_view(node: dict, path: str, depth: int) -> dict:
        base = {
            "path": path,
            "slug": slug(path),
            "depth": depth,
            "json": json.dumps(node),
            "truth": None if explain is None else explain.get(path),
            "moves": [(p, d, group_label(p)) for p, d in moves if p != path],
        }
        node_type = node.get("type")
        if node_type == "group":
            children = [
                node_view(c, f"{path}.{i}", depth + 1) for i, c in enumerate(node["children"])
            ]
            return {
                **base,
                "kind": "group",
                "op": node["op"],
                "negate": node["negate"],
                "children": children,
                "top": "." not in path,
            }
        node = condition_complete(node, registry)
        base["json"] = json.dumps(node)
        if node_type == "field":
            field = registry.field(node.get("field"))
            if field is not None:
                op = OPERATORS[node["operator"]]
                value = node.get("value", "")
                return {
                    **base,
                    "kind": "field",
                    "field": field,
                    "operators": [(o, OPERATORS[o].label) for o in field.operators],
                    "operator": node["operator"],
                    "arity": op.arity,
                    "value": ", ".join(map(str, value))
                    if op.arity == "list" and isinstance(value, list)
                    else value,
                    "periods": PERIODS.items(),
                    "input_type": "date"
                    if field.type in ("date", "datetime") and op.arity in ("one", "two")
                    else "text",
                }
        kind = registry.kinds.get(node_type)
        if node_type == "event":
            return {
                **base,
                "kind": "event",
                "node": node,
                "frequencies": FREQUENCIES,
                "windows": WINDOWS,
                "periods": PERIODS.items(),
                "property_operators": PROPERTY_OPERATORS,
                "template": kind.template,
            }
        if node_type == "segment":
            return {
                **base,
                "kind": "segment",
                "node": node,
                "segments": segments,
                "template": kind.template,
            }
        label = kind.label if kind else f"Unknown condition {node_type!r}"
        return {**base, "kind": "generic", "label": label, "raw": json.dumps(node, indent=1)}

    return [node_view(tree[part], part, 0) for part in ("include", "exclude")]


def palette_with_nodes() -> list[dict]:
    """The registry's palette, each entry with the JSON of the condition it creates."""
    registry = get_registry()
    sections = registry.palette()
    for section in sections:
        for item in section["items"]:
            item["node"] = json.dumps(new_condition(item["key"], registry))
    return sections


def group_label(path: str) -> str:
    """ "include.1.0" -> "Include › 2 › 1" (positions count from 1)."""
    parts = path.split(".")
    if parts[0] not in ("include", "exclude"):
        return path
    label = "Include" if parts[0] == "include" else "Exclude"
    return label + "".join(f" › {int(p) + 1}" if p.isdigit() else f" › {p}" for p in parts[1:])


def describe(node: dict) -> str:
    """One line for a condition (why page)."""
    registry = get_registry()
    if node["type"] == "field":
        field = registry.field(node["field"])
        op = OPERATORS[node["operator"]]
        value = node.get("value")
        if op.arity == "none":
            text = ""
        elif op.arity == "two":
            text = f" {value[0]} and {value[1]}"
        elif op.arity == "list":
            text = " " + ", ".join(map(str, value))
        elif op.arity == "period":
            text = " " + PERIODS[value].lower()
        else:
            text = f" {value}"
        return f"{field.label} {op.label}{text}"
    kind = registry.kinds[node["type"]]
    return kind.describe(node, registry)


def explain_tree(rules: dict, nodes: dict[str, bool]) -> list[dict]:
    def walk(node, path, depth):
        item = {"path": path, "depth": depth, "truth": nodes.get(path), "type": node["type"]}
        if node["type"] == "group":
            item["op"], item["negate"] = node["op"], node["negate"]
            item["children"] = [
                walk(c, f"{path}.{i}", depth + 1) for i, c in enumerate(node["children"])
            ]
            if not node["children"]:
                item["truth"] = None
        else:
            item["text"] = describe(node)
        return item

    return [walk(rules[part], part, 0) for part in ("include", "exclude")]


# --- pages ----------------------------------------------------------------------------------


def builder(request: HttpRequest, segment_id: int | None = None) -> TemplateResponse:
    """The builder page: a saved segment, a smart starting point (?start=) or a blank one."""
    segment = get_object_or_404(Segment, pk=segment_id) if segment_id else None
    _require(request, "segments.change_segment" if segment else "segments.add_segment")
    name, description = (segment.name, segment.description) if segment else ("", "")
    if segment:
        tree = tree_normalize(segment.rules)
    elif request.GET.get("start") in starters.STARTERS:
        start = starters.STARTERS[request.GET["start"]]
        tree, name, description = tree_normalize(start.rules), start.name, start.description
    else:
        tree = tree_normalize({})
    context = {
        **admin.site.each_context(request),
        "title": f"Segment builder: {segment.name}" if segment else "New segment",
        "segment": segment,
        "name": name,
        "description": description,
        "tree": view_tree(tree),
        "rules_json": json.dumps(tree),
        "palette": palette_with_nodes(),
        "starters": starters.STARTERS,
        "can_view_profiles": request.user.has_perm("profiles.view_profile"),
    }
    return TemplateResponse(request, "segments/builder.html", context)


def builder_tree(request: HttpRequest) -> TemplateResponse:
    """Apply one action (or just re-render after a drag) and return the tree."""
    _require(request, "segments.view_segment")
    tree = _rules_from_post(request)
    action = request.POST.get("action", "sync")
    if action != "sync":
        tree = tree_apply(
            tree,
            action,
            request.POST.get("path", ""),
            get_registry(),
            key=request.POST.get("key", ""),
            to=request.POST.get("to", ""),
            index=request.POST.get("index", ""),
        )
    response = TemplateResponse(
        request,
        "segments/_tree.html",
        {"tree": view_tree(tree), "rules_json": json.dumps(tree)},
    )
    response["HX-Trigger-After-Settle"] = "seg-changed"
    return response


def builder_counts(request: HttpRequest) -> TemplateResponse:
    """Audience size, each node's count and the preview, as out-of-band swaps."""
    _require(request, "segments.view_segment")
    tree = _rules_from_post(request)
    registry = get_registry()
    segment = Segment.objects.filter(pk=request.POST.get("segment") or 0).first()
    _clean, problems = rules_validate(tree, registry)
    incomplete: set[str] = set()
    if problems:
        tree, incomplete = prune_problems(tree, problems)
        _clean, left = rules_validate(tree, registry)
        if left:
            incomplete = set()
    context = {
        "problems": [{**p, "label": group_label(p["path"])} for p in problems],
        "incomplete": incomplete,
        "counts": None,
        "preview": None,
    }
    try:
        counts = rules_counts(tree, segment=segment)
        nodes = [
            {"slug": slug(p), "count": None if p in incomplete else n}
            for p, n in counts["nodes"].items()
        ]
        # Nodes inside a group left out as a whole are not in the counted tree.
        nodes += [
            {"slug": slug(p), "count": None} for p in sorted(incomplete - counts["nodes"].keys())
        ]
        context.update(counts=counts, nodes=nodes)
        if request.user.has_perm("profiles.view_profile"):
            context["preview"] = rules_preview(tree, segment=segment)
    except RuleError as exc:
        context["problems"] = [{**p, "label": group_label(p["path"])} for p in exc.problems]
    return TemplateResponse(request, "segments/_counts.html", context)


def builder_values(request: HttpRequest) -> HttpResponse:
    """Type-ahead options (real distinct values) for a field, an event name or property."""
    _require(request, "segments.view_segment")
    query = request.GET.get("q", "").strip()
    source = request.GET.get("source", "field")
    if source == "event":
        values = event_names(prefix=query)
    elif source == "property":
        values = event_property_values(
            event=request.GET.get("event", ""), prop=request.GET.get("property", ""), prefix=query
        )
    else:
        if not request.user.has_perm("profiles.view_profile"):
            values = []
        else:
            values = field_values(key=request.GET.get("field", ""), prefix=query)
    return TemplateResponse(request, "segments/_options.html", {"values": values})


def builder_save(request: HttpRequest) -> HttpResponse:
    tree = _rules_from_post(request)
    segment = Segment.objects.filter(pk=request.POST.get("segment") or 0).first()
    _require(request, "segments.change_segment" if segment else "segments.add_segment")
    name = request.POST.get("name", "")
    description = request.POST.get("description", "")
    try:
        if segment:
            segment = segment_update(
                segment=segment,
                name=name,
                description=description,
                rules=tree,
                updated_by=request.user,
            )
        else:
            segment = segment_create(
                name=name, description=description, rules=tree, created_by=request.user
            )
    except RuleError as exc:
        return TemplateResponse(
            request,
            "segments/_save_errors.html",
            {"errors": [f"{group_label(p['path'])}: {p['message']}" for p in exc.problems]},
        )
    except SegmentError as exc:
        return TemplateResponse(request, "segments/_save_errors.html", {"errors": [str(exc)]})
    messages.success(request, f"The segment “{segment.name}” was saved.")
    response = HttpResponse("")
    response["HX-Redirect"] = reverse("admin:segments_segment_change", args=[segment.pk])
    return response


def segment_why(request: HttpRequest, segment_id: int) -> TemplateResponse:
    """Pick a profile (id or e-mail) and see each condition and group marked true or false."""
    _require(request, "segments.view_segment", "profiles.view_profile")
    segment = get_object_or_404(Segment, pk=segment_id)
    query = request.GET.get("profile", "").strip()
    profile = None
    explanation = None
    error = ""
    if query:
        lookup = Q(email__iexact=query)
        if query.isdigit():
            lookup |= Q(pk=int(query))
        profile = Profile.objects.filter(lookup).order_by("pk").first()
        if profile is None:
            error = "No profile has this id or e-mail."
        else:
            try:
                result = rules_explain(segment.rules, profile_id=profile.pk, segment=segment)
                explanation = {
                    "result": result["result"],
                    "tree": explain_tree(result["rules"], result["nodes"]),
                }
            except RuleError as exc:
                error = f"The rules are not valid: {exc}"
    context = {
        **admin.site.each_context(request),
        "title": f"Why is a profile in “{segment.name}” or not?",
        "segment": segment,
        "query": query,
        "profile": profile,
        "explanation": explanation,
        "error": error,
        "opts": Segment._meta,
    }
    return TemplateResponse(request, "segments/why.html", context)


def segment_refresh(request: HttpRequest, segment_id: int) -> HttpResponse:
    _require(request, "segments.change_segment")
    segment = get_object_or_404(Segment, pk=segment_id)
    if request.method == "POST":
        refresh = segment_refresh_request(segment=segment, requested_by=request.user)
        messages.info(request, f"Refresh #{refresh.pk} is {refresh.get_status_display().lower()}.")
    return redirect("admin:segments_segment_change", segment.pk)


def size_chart_data(segment: Segment) -> dict:
    """Plotly figure data for the size over time (labels stay escaped via json_script)."""
    history = segment_size_history(segment=segment)
    return {
        "data": [
            {
                "x": [h["finished_at"].isoformat() for h in history],
                "y": [h["size"] for h in history],
                "type": "scatter",
                "mode": "lines+markers",
                "name": "Members",
                "customdata": [[h["entered_count"], h["left_count"]] for h in history],
                "hovertemplate": (
                    "%{y} members<br>+%{customdata[0]} / −%{customdata[1]}<extra></extra>"
                ),
            }
        ],
        "layout": {
            "margin": {"t": 10, "r": 10, "b": 40, "l": 50},
            "height": 260,
            "yaxis": {"rangemode": "tozero", "title": {"text": "members"}},
        },
    }


def segment_page_context(segment: Segment) -> dict:
    return {
        "chart": size_chart_data(segment),
        "changes": segment_changes(segment=segment),
    }
