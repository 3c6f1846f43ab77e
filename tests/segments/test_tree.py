"""The builder's button actions on rule trees (pure functions)."""

from __future__ import annotations

from segments.registry import get_registry
from segments.tree import empty_group, prune_problems, tree_apply


def F(field, value):
    return {"type": "field", "field": field, "operator": "equals", "value": value}


def tree(*children):
    return {
        "include": {"type": "group", "op": "and", "negate": False, "children": list(children)},
        "exclude": {"type": "group", "op": "or", "negate": False, "children": []},
    }


def values(group):
    return [c.get("value", c.get("op")) for c in group["children"]]


def apply(t, action, path, **extra):
    return tree_apply(t, action, path, get_registry(), **extra)


def test_wrap_puts_the_node_in_a_new_or_group():
    result = apply(tree(F("city", "A"), F("city", "B")), "wrap", "include.1")
    wrapped = result["include"]["children"][1]
    assert (wrapped["type"], wrapped["op"], values(wrapped)) == ("group", "or", ["B"])


def test_up_down_and_stale_paths():
    t = tree(F("city", "A"), F("city", "B"), F("city", "C"))
    assert values(apply(t, "up", "include.2")["include"]) == ["A", "C", "B"]
    assert values(apply(t, "down", "include.0")["include"]) == ["B", "A", "C"]
    assert values(apply(t, "up", "include.0")["include"]) == ["A", "B", "C"]
    assert apply(t, "remove", "include.7") == t


def test_move_between_groups_but_never_into_itself():
    group = {"type": "group", "op": "or", "negate": False, "children": [F("city", "X")]}
    t = tree(F("city", "A"), group)

    moved = apply(t, "move", "include.0", to="include.0")
    assert moved == t
    into_child = apply(t, "move", "include.1", to="include.1")
    assert into_child == t
    to_exclude = apply(t, "move", "include.1.0", to="exclude")
    assert values(to_exclude["exclude"]) == ["X"]
    assert to_exclude["include"]["children"][1]["children"] == []


def test_add_field_kind_and_group_and_unwrap():
    t = apply(tree(), "add", "include", key="trait:tier")
    t = apply(t, "add", "include", key="event")
    t = apply(t, "add_group", "include")
    t = apply(t, "add", "include", key="no_such_field")
    children = t["include"]["children"]
    assert [c["type"] for c in children] == ["field", "event", "group"]
    assert children[0]["field"] == "trait:tier" and children[2]["op"] == "or"
    t = apply(
        tree({"type": "group", "op": "or", "children": [F("city", "A"), F("city", "B")]}),
        "unwrap",
        "include.0",
    )
    assert values(t["include"]) == ["A", "B"]


def test_pruning_keeps_paths_and_is_neutral_in_its_group():
    t = tree(
        F("city", "A"),
        {"type": "group", "op": "or", "negate": False, "children": [F("city", ""), F("city", "B")]},
    )
    pruned, removed = prune_problems(t, [{"path": "include.1.0", "message": "x"}])
    assert removed == {"include.1.0"}
    assert pruned["include"]["children"][1]["children"][0]["operator"] == "is_not_set"  # no one
    assert pruned["include"]["children"][1]["children"][1] == F("city", "B")


def test_pruning_leaves_out_a_group_whose_conditions_are_all_left_out():
    inner = {"type": "group", "op": "and", "negate": True, "children": [F("city", "")]}
    t = tree(
        F("city", "A"),
        {"type": "group", "op": "or", "negate": False, "children": [F("city", ""), inner]},
    )
    problems = [{"path": "include.1.0", "message": "x"}, {"path": "include.1.1.0", "message": "x"}]

    pruned, removed = prune_problems(t, problems)

    assert removed == {"include.1", "include.1.0", "include.1.1", "include.1.1.0"}
    assert pruned["include"]["children"] == [F("city", "A"), empty_group()]  # neutral in AND


def test_pruning_empties_include_when_everything_in_it_is_left_out():
    t = tree(F("city", ""))
    t["include"]["op"] = "or"

    pruned, removed = prune_problems(t, [{"path": "include.0", "message": "x"}])

    assert removed == {"include.0"}
    assert pruned["include"]["children"] == []
