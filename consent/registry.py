"""The registry of personal data: every app that stores data about a person registers a handler
that can collect (access export) and erase it.

    from consent.registry import SubjectDataHandler, register

    register(SubjectDataHandler(
        name="segments",
        models=("segments.SegmentMembership", "segments.MembershipChange"),
        collect=lambda subject: {"segment_memberships": [...rows as dicts...]},
        erase=lambda subject: {"segment_memberships": deleted_count},
    ))

Call ``register`` from your AppConfig.ready(). A model that has a foreign key to a person's
table (Profile, SourceRecord, Identity, RawRecord, Event) and is covered by no handler is still
reached: its referencing rows are exported and deleted by the generic sweep
(consent.services.subject_data). ``restriction`` hooks are called with profile ids when
processing is restricted, so segments and activations can drop them at once; ``erasure_notice``
hooks are called after an erasure (e.g. activation records a deletion notice per destination).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

# Tables that identify a person; a foreign key to one of them makes a row personal data.
PERSON_MODELS = (
    "profiles.Profile",
    "profiles.SourceRecord",
    "profiles.Identity",
    "profiles.RawRecord",
    "profiles.Event",
)


@dataclass(frozen=True)
class SubjectDataHandler:
    """How one app exports and erases what it holds about a person (see module docstring)."""

    name: str
    models: tuple[str, ...]
    collect: Callable[..., dict[str, list[dict]]]
    erase: Callable[..., dict[str, int]]
    order: int = 100  # erase order: lower first (rows that reference others go first)


@dataclass
class _Registry:
    handlers: dict[str, SubjectDataHandler] = field(default_factory=dict)
    restriction_hooks: list[Callable[[list[int]], None]] = field(default_factory=list)
    erasure_notice_hooks: list[Callable[..., None]] = field(default_factory=list)


registry = _Registry()


def register(handler: SubjectDataHandler) -> None:
    registry.handlers[handler.name] = handler


def register_restriction_hook(hook: Callable[[list[int]], None]) -> None:
    if hook not in registry.restriction_hooks:
        registry.restriction_hooks.append(hook)


def register_erasure_notice_hook(hook: Callable[..., None]) -> None:
    if hook not in registry.erasure_notice_hooks:
        registry.erasure_notice_hooks.append(hook)


def handlers_in_order() -> list[SubjectDataHandler]:
    return sorted(registry.handlers.values(), key=lambda h: (h.order, h.name))


def covered_models() -> set[str]:
    return {label.lower() for h in registry.handlers.values() for label in h.models}
