"""Editing rule trees by path: the builder's buttons (pure functions over plain JSON).

A path names a node from the top: ``include``, ``include.0``, ``include.0.2``, ``exclude.1``.
Every function returns a new tree; a path that no longer exists leaves the tree unchanged.
"""

from __future__ import annotations

import contextlib
import copy
from typing import Any

from segments.registry import OPERATORS, Registry

GROUP_PARTS = ("include", "exclude")
NOBODY = {"type": "field", "field": "created_at", "operator": "is_not_set"}


def empty_group(op: str = "and") -> dict:
    return {"type": "group", "op": op, "negate": False, "children": []}


def tree_normalize(rules: Any) -> dict:
    """A tree the builder can render, whatever it was sent (keeps unknown nodes for errors)."""
    if isinstance(rules, dict) and rules.get("type") == "group":
        rules = {"include": rules}
    if not isinstance(rules, dict):
        rules = {}
    tree = {}
    for part, op in (("include", "and"), ("exclude", "or")):
        node = rules.get(part)
        tree[part] = _group_normalize(node) if isinstance(node, dict) else empty_group(op)
    return tree


def _group_normalize(node: dict) -> dict:
    group = {
        "type": "group",
        "op": node.get("op") if node.get("op") in ("and", "or") else "and",
        "negate": node.get("negate") is True,
        "children": [],
    }
    for child in node.get("children") or []:
        if isinstance(child, dict) and child.get("type") == "group":
            group["children"].append(_group_normalize(child))
        elif isinstance(child, dict):
            group["children"].append(child)
    return group


def _split(path: str) -> tuple[str, list[int]] | None:
    parts = path.split(".") if isinstance(path, str) else []
    if not parts or parts[0] not in GROUP_PARTS:
        return None
    try:
        return parts[0], [int(p) for p in parts[1:]]
    except ValueError:
        return None


def node_at(tree: dict, path: str) -> dict | None:
    split = _split(path)
    if split is None:
        return None
    node = tree.get(split[0])
    for index in split[1]:
        children = node.get("children") if isinstance(node, dict) else None
        if not isinstance(children, list) or not 0 <= index < len(children):
            return None
        node = children[index]
    return node


def _parent(path: str) -> tuple[str, int] | None:
    if "." not in path:
        return None
    parent, index = path.rsplit(".", 1)
    return parent, int(index)


def new_condition(key: str, registry: Registry) -> dict | None:
    """A fresh condition for a palette entry: a field key or a condition kind's type."""
    kind = registry.kinds.get(key)
    if kind is not None:
        return kind.default()
    field = registry.field(key)
    if field is None:
        return None
    return {"type": "field", "field": field.key, "operator": field.operators[0], "value": ""}


def condition_complete(node: dict, registry: Registry) -> dict:
    """Fill what a node freshly dropped from the palette lacks (operator, kind defaults)."""
    if node.get("type") == "field":
        field = registry.field(node.get("field"))
        if field is not None and node.get("operator") not in field.operators:
            node = {**node, "operator": field.operators[0]}
        if field is not None and OPERATORS[node["operator"]].arity == "two":
            value = node.get("value")
            if not isinstance(value, list) or len(value) != 2:
                node = {**node, "value": ["", ""]}
        return node
    kind = registry.kinds.get(node.get("type"))
    if kind is not None:
        return {**kind.default(), **node}
    return node


def tree_apply(tree: dict, action: str, path: str, registry: Registry, **extra) -> dict:
    """Apply one builder action; unknown actions and stale paths change nothing."""
    tree = copy.deepcopy(tree_normalize(tree))
    node = node_at(tree, path)
    if node is None:
        return tree
    parent = _parent(path)
    siblings = node_at(tree, parent[0])["children"] if parent else None
    if action == "add" and node.get("type") == "group":
        condition = new_condition(extra.get("key", ""), registry)
        if condition is not None:
            node["children"].append(condition)
    elif action == "add_group" and node.get("type") == "group":
        node["children"].append(empty_group("or" if node["op"] == "and" else "and"))
    elif action == "remove" and parent:
        siblings.pop(parent[1])
    elif action in ("up", "down") and parent:
        index = parent[1]
        other = index - 1 if action == "up" else index + 1
        if 0 <= other < len(siblings):
            siblings[index], siblings[other] = siblings[other], siblings[index]
    elif action == "wrap" and parent:
        siblings[parent[1]] = {**empty_group("or"), "children": [node]}
    elif action == "unwrap" and parent and node.get("type") == "group":
        siblings[parent[1] : parent[1] + 1] = node["children"]
    elif action == "move" and parent:
        target_path = extra.get("to", "")
        if target_path == path or target_path.startswith(path + "."):
            return tree  # not into itself
        target = node_at(tree, target_path)
        if target is None or target.get("type") != "group":
            return tree
        siblings.pop(parent[1])
        target["children"].append(node)
    elif action == "add_where" and node.get("type") == "event":
        node.setdefault("where", []).append({"property": "", "operator": "equals", "value": ""})
    elif action == "remove_where" and node.get("type") == "event":
        with contextlib.suppress(ValueError, IndexError):
            node.get("where", []).pop(int(extra.get("index", -1)))
    return tree


def group_paths(tree: dict) -> list[tuple[str, int]]:
    """(path, depth) of every group, for the "move to" choices."""
    out = []

    def walk(node, path, depth):
        out.append((path, depth))
        for index, child in enumerate(node.get("children", [])):
            if isinstance(child, dict) and child.get("type") == "group":
                walk(child, f"{path}.{index}", depth + 1)

    for part in GROUP_PARTS:
        walk(tree[part], part, 0)
    return out


def prune_problems(tree: dict, problems: list[dict]) -> tuple[dict, set[str]]:
    """The tree without the nodes that have problems (so the rest can still be counted), and
    the paths left out.

    A node left out is neutral in its group: everyone inside AND, no one inside OR (negation
    aside). A group whose conditions are all left out is left out of its own group in turn, so
    a half-built OR group does not make the audience no one; Include or Exclude left with
    nothing is empty, which is ignored (everyone / excludes no one).
    """
    tree = copy.deepcopy(tree)
    bad = {p["path"].split(".where")[0] for p in problems}
    removed: set[str] = set()

    def left_out(node: dict, path: str) -> bool:
        if path in bad and _parent(path):
            removed.update(_paths(node, path))
            return True
        children = node.get("children") if node.get("type") == "group" else None
        if not isinstance(children, list) or not children:
            return False
        out = [
            isinstance(child, dict) and left_out(child, f"{path}.{index}")
            for index, child in enumerate(children)
        ]
        if all(out):
            if _parent(path):
                removed.add(path)
                return True
            node["children"] = []  # Include / Exclude: empty, ignored
            return False
        neutral = empty_group() if node.get("op") == "and" else NOBODY
        for index, is_out in enumerate(out):
            if is_out:
                children[index] = copy.deepcopy(neutral)
        return False

    for part in GROUP_PARTS:
        if isinstance(tree.get(part), dict):
            left_out(tree[part], part)
    return tree, removed


def _paths(node: Any, path: str):
    """The path of a node and of every node inside it."""
    yield path
    if isinstance(node, dict) and node.get("type") == "group":
        for index, child in enumerate(node.get("children") or []):
            yield from _paths(child, f"{path}.{index}")
