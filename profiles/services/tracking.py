"""The tracking API (Segment HTTP spec): store each message verbatim, then apply it.

identify/track/page/screen/group/alias messages become Events (deduplicated by messageId per
source) attached to a source record keyed by the user id (``user:<id>``) or, before a user is
known, the anonymous id (``anon:<id>``). Identify traits become canonical attributes by the
Segment reserved-trait names; every trait is also kept verbatim. A newer observation of an
attribute wins over an older one, whatever order messages arrive in.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime

from django.db import IntegrityError, OperationalError, transaction
from django.utils import timezone

from cdp.bulk import bulk_insert_rows_json, bulk_update_rows
from cdp.normalize import (
    IdentifierKey,
    IdentifierTypes,
    InvalidValue,
    clean_text,
    identifier_key,
)
from consent.services.consent import consent_gpc_record
from consent.services.suppression import identity_keys, suppression_check
from profiles.constants import CANONICAL_ATTRIBUTES, AttributeType
from profiles.models import DataSource, Event, Identity, RawRecord, SourceRecord
from profiles.services.loyalty import LOYALTY_EVENT_NAMES, loyalty_events_ingested
from profiles.services.mapping import convert_value, parse_iso_date, stable_hash
from profiles.services.resolution import profiles_resolve

APPLY_ATTEMPTS = 3
EVENT_FIELDS = [
    "source",
    "message_id",
    "type",
    "name",
    "properties",
    "context",
    "timestamp",
    "received_at",
    "user_id",
    "anonymous_id",
    "source_record",
    "profile",
    "raw_record",
]
RAW_FIELDS = [
    "source",
    "payload",
    "content_hash",
    "message_id",
    "status",
    "error",
    "source_record",
    "received_at",
]
MESSAGE_TYPES = {"identify", "track", "page", "screen", "group", "alias"}
# Ids (userId, anonymousId, messageId, previousId, groupId) and event/page names: characters.
MAX_NAME_LENGTH = 200
# Objects and arrays nest at most this deep in a message (the message itself is level 1).
MAX_DEPTH = 64
# Text a database cannot store: an unpaired surrogate (JSON may escape one, UTF-8 cannot encode
# it) and U+0000 (PostgreSQL refuses it in text and jsonb). A valid pair is read as one character.
_UNSTORABLE_RE = re.compile("[\x00\ud800-\udfff]")
_PLAIN_KEY_RE = re.compile(r"[A-Za-z_$][A-Za-z0-9_$-]{0,39}")

# Segment reserved traits (and common snake_case spellings) -> canonical attributes.
TRAIT_ATTRIBUTES = {
    "email": "email",
    "phone": "phone",
    "firstName": "first_name",
    "first_name": "first_name",
    "lastName": "last_name",
    "last_name": "last_name",
    "birthday": "birth_date",
    "gender": "gender",
    "title": "job_title",
    "createdAt": "signed_up_at",
    "customerId": "customer_id",
    "customer_id": "customer_id",
}
ADDRESS_ATTRIBUTES = {
    "street": "street",
    "city": "city",
    "postalCode": "postcode",
    "postal_code": "postcode",
    "state": "state",
    "country": "country",
}
# A snake_case spelling is read only when the Segment spelling is absent, null or blank: with
# both, the Segment spelling wins whatever the key order (the other is kept verbatim as a trait).
SEGMENT_SPELLINGS = {
    "first_name": "firstName",
    "last_name": "lastName",
    "customer_id": "customerId",
    "postal_code": "postalCode",
}


def _shadowed(key: str, values: dict) -> bool:
    """Whether ``key`` is a snake_case spelling whose Segment spelling is set in ``values``."""
    segment = SEGMENT_SPELLINGS.get(key)
    return segment is not None and clean_text(values.get(segment)) != ""


class MessageError(ValueError):
    """A message that cannot be applied: the reason, for the API response and the raw record."""


@dataclass
class _RecordUpdate:
    """What the messages of one request say about one source record."""

    external_key: str
    observed: dict[str, tuple[str, object]] = field(default_factory=dict)  # attr -> (ts, value)
    traits: dict[str, tuple[str, object]] = field(default_factory=dict)
    identities: dict[tuple[str, str], None] = field(default_factory=dict)  # ordered set

    def observe(self, target: dict, name: str, when: str, value: object) -> None:
        if name not in target or target[name][0] <= when:
            target[name] = (when, value)


def _json_path(segments: tuple[object, ...]) -> str:
    """traits.address["a b"][0]: where a value sits in a message, printable and short."""
    text = ""
    for segment in segments:
        if isinstance(segment, int):
            text += f"[{segment}]"
        elif _PLAIN_KEY_RE.fullmatch(segment):
            text += f".{segment}" if text else segment
        else:
            text += f"[{json.dumps(segment[:40])}]"  # ASCII: surrogates stay escaped
    return text or "the message"


def json_value_problem(value: object, *, max_depth: int | None = MAX_DEPTH) -> str | None:
    """Why a parsed JSON value cannot be stored as it is; None when it can.

    Every string (object keys included) must be storable text (see ``_UNSTORABLE_RE``), every
    number finite (Python's json reads NaN, Infinity and 1e999; JSON columns refuse them), and
    objects and arrays nest at most ``max_depth`` levels. Iterative: no input exhausts the stack.
    """
    if _json_value_fine(value, max_depth):
        return None
    stack: list[tuple[object, tuple[object, ...]]] = [(value, ())]
    while stack:
        item, path = stack.pop()
        if isinstance(item, str):
            bad = _UNSTORABLE_RE.search(item)
            if bad is None:
                continue
            if bad.group() == "\x00":
                return f"{_json_path(path)} holds U+0000, which cannot be stored"
            return (
                f"{_json_path(path)} holds an unpaired surrogate "
                f"(\\u{ord(bad.group()):04x}), which cannot be stored"
            )
        if isinstance(item, float) and not math.isfinite(item):
            return f"{_json_path(path)} is not a finite number ({json.dumps(item)})"
        if isinstance(item, dict | list):
            if max_depth is not None and len(path) >= max_depth:
                return f"{_json_path(path[:1])} nests deeper than {max_depth} levels"
            if isinstance(item, list):
                stack.extend((child, (*path, i)) for i, child in enumerate(item))
                continue
            for key, child in item.items():
                stack.append((key, (*path, key)))  # a key is checked as the text it is
                stack.append((child, (*path, key)))
    return None


def _json_value_fine(value: object, max_depth: int | None) -> bool:
    """The common case, at the speed of the C encoder: True when the value surely has no
    problem; False means "look closer" (``json_value_problem`` walks it and says why).

    The encoder refuses non-finite numbers (``allow_nan=False``); encoding its output as UTF-8
    refuses unpaired surrogates; it writes U+0000 as the escape ``\\u0000`` (so a text holding
    that escape literally is also looked at closer); and a value cannot nest deeper than the
    number of brackets it holds.
    """
    try:
        text = json.dumps(value, ensure_ascii=False, allow_nan=False, check_circular=False)
        text.encode("utf-8")
    except (TypeError, ValueError, RecursionError):  # UnicodeEncodeError is a ValueError
        return False
    if "\\u0000" in text:
        return False
    return max_depth is None or text.count("{") + text.count("[") <= max_depth


def json_depth(value: object) -> int:
    """How many levels objects and arrays nest in a parsed JSON value (a scalar: 0). Iterative."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, level)
            children = item.values() if isinstance(item, dict) else item
            stack.extend((c, level + 1) for c in children if isinstance(c, dict | list))
    return deepest


def parse_timestamp(value: object, name: str = "timestamp") -> datetime | None:
    """ISO-8601 with any offset and precision -> aware datetime in UTC; None when absent."""
    if value in (None, ""):
        return None
    if not isinstance(value, str):
        raise MessageError(f"{name} {value!r} is not an ISO-8601 string")
    text = value.strip().replace("Z", "+00:00").replace("z", "+00:00")
    # Python reads at most 6 fractional digits: trim nanoseconds and beyond.
    text = re.sub(r"(\.\d{6})\d+", r"\1", text)
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise MessageError(f"{name} {value!r} is not ISO-8601") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00+14:00 is before the first instant Python holds
        raise MessageError(f"{name} {value!r} is out of range") from None


def event_time(message: dict, received_at: datetime) -> datetime:
    """When the event happened.

    ``timestamp`` when the sender set it; else ``originalTimestamp`` corrected for the
    sender's clock skew (receivedAt - sentAt); else the time the server received it.
    """
    timestamp = parse_timestamp(message.get("timestamp"))
    if timestamp is not None:
        return timestamp
    original = parse_timestamp(message.get("originalTimestamp"))
    sent = parse_timestamp(message.get("sentAt"))
    if original is not None and sent is not None:
        return original + (received_at - sent)
    return original or received_at


def _check_name(message: dict, name: str, *, integer: bool) -> None:
    """An id or a name is a string (an id may be an integer, as Segment accepts) of at most
    MAX_NAME_LENGTH characters; absent (None) is left to the rules of each type."""
    value = message.get(name)
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, str | int if integer else str):
        raise MessageError(f"{name} must be a string" + (" or an integer" if integer else ""))
    length = len(clean_text(value))
    if length > MAX_NAME_LENGTH:
        raise MessageError(f"{name} is {length} characters; the limit is {MAX_NAME_LENGTH}")


def message_prepare(message: object, batch: dict) -> dict:
    """Validate one message and apply batch-level context, integrations and sentAt."""
    if not isinstance(message, dict):
        raise MessageError("a message must be a JSON object")
    message = dict(message)
    for key in ("context", "integrations", "sentAt"):
        if key in batch and key not in message:
            message[key] = batch[key]
        elif key != "sentAt" and isinstance(batch.get(key), dict):
            # Merged with the message's own object (Segment's rule); the message's keys win.
            own = message[key]
            message[key] = {**batch[key], **own} if isinstance(own, dict) else own
    problem = json_value_problem(message)
    if problem:
        raise MessageError(problem)
    kind = message.get("type")
    if not isinstance(kind, str) or kind not in MESSAGE_TYPES:
        raise MessageError(f"type must be one of {', '.join(sorted(MESSAGE_TYPES))}")
    ids = ["messageId", "userId", "anonymousId"]
    ids += {"alias": ["previousId"], "group": ["groupId"]}.get(kind, [])
    for name in ids:
        _check_name(message, name, integer=True)
    if kind in ("track", "page", "screen"):
        _check_name(message, "event" if kind == "track" else "name", integer=False)
    if not clean_text(message.get("userId")) and not clean_text(message.get("anonymousId")):
        raise MessageError("userId or anonymousId is required")
    if kind == "track" and not clean_text(message.get("event")):
        raise MessageError("track needs an event name")
    if kind == "alias" and not clean_text(message.get("previousId")):
        raise MessageError("alias needs a previousId")
    if kind == "group" and not clean_text(message.get("groupId")):
        raise MessageError("group needs a groupId")
    for name in ("traits", "properties", "context"):
        if name in message and not isinstance(message[name], dict):
            raise MessageError(f"{name} must be an object")
    # Times are checked here, so a bad one rejects its message (400 invalid_message, kept as a
    # rejected raw record) instead of failing the apply of the whole request.
    for name in ("timestamp", "originalTimestamp", "sentAt"):
        parse_timestamp(message.get(name), name)
    try:
        event_time(message, timezone.now())
    except OverflowError:
        raise MessageError("originalTimestamp corrected by sentAt is out of range") from None
    if message.get("messageId") in (None, ""):  # 0 is an id like any other integer
        message["messageId"] = "hash-" + stable_hash(message)
    return message


def identify_traits(message: dict) -> dict:
    """An identify's traits: ``traits``, or ``context.traits`` where RudderStack's SDKs put them."""
    traits = message.get("traits")
    if isinstance(traits, dict) and traits:
        return traits
    context = message.get("context")
    nested = context.get("traits") if isinstance(context, dict) else None
    return nested if isinstance(nested, dict) else {}


def record_key(message: dict) -> str:
    user_id = clean_text(message.get("userId"))
    return f"user:{user_id}" if user_id else f"anon:{clean_text(message.get('anonymousId'))}"


class _ConcurrentInsert(Exception):
    """A concurrent request stored one of these messageIds after this one looked: look again."""


def tracking_messages_ingest(
    *,
    source: DataSource,
    messages: list[object],
    batch: dict | None = None,
    gpc: dict | None = None,
) -> dict:
    """Store and apply a list of messages. Returns {"accepted", "duplicates", "rejected": [...]}.

    One transaction per request: each message is stored verbatim (a RawRecord carrying its
    outcome) in the same transaction as what it changes. When applying fails all the same,
    every message is still kept (valid ones as pending raw records, applied again when sent
    again) before the error propagates: land first, never lose. A messageId seen before for
    this source is stored once and counted as a duplicate. ``gpc`` (evidence of a ``Sec-GPC:
    1`` header) records an opt-out of sale/sharing for the persons the messages are about.
    """
    batch = batch or {}
    received_at = timezone.now()
    prepared: list[tuple[int, dict | None, str]] = []
    for index, message in enumerate(messages):
        try:
            prepared.append((index, message_prepare(message, batch), ""))
        except MessageError as exc:
            prepared.append((index, None, str(exc)))

    valid: dict[str, dict] = {}
    for _index, message, _error in prepared:
        if message is not None and str(message["messageId"])[:200] not in valid:
            valid[str(message["messageId"])[:200]] = message
    rejected = [_rejected_row(messages[i], e) for i, m, e in prepared if m is None]
    try:
        for attempt in range(APPLY_ATTEMPTS):
            try:
                with transaction.atomic():
                    counts = _messages_store_apply(source, valid, rejected, received_at, gpc)
                break
            except (_ConcurrentInsert, OperationalError, IntegrityError):
                # A deadlock or a race with a concurrent request on the same records or
                # messageIds: the transaction rolled back as a whole, so trying again is safe.
                if attempt == APPLY_ATTEMPTS - 1:
                    raise
    except Exception:
        _messages_keep(source, valid, rejected, received_at)
        raise
    errors = [{"index": i, "message": e} for i, m, e in prepared if m is None]
    return {**counts, "rejected": errors}


def _messages_store_apply(
    source: DataSource,
    valid: dict[str, dict],
    rejected: list[tuple[dict, str, str]],
    received_at: datetime,
    gpc: dict | None,
) -> dict[str, int]:
    """The request's transaction: store new and rejected messages, apply the new ones."""
    seen = dict(
        RawRecord.objects.filter(source=source, message_id__in=list(valid)).values_list(
            "message_id", "status"
        )
    )
    new = {mid: m for mid, m in valid.items() if mid not in seen}
    # Stored by an earlier request whose apply failed: apply again (idempotent: events are
    # unique per messageId, observations keep the newest).
    unapplied: dict[str, tuple[int, dict]] = {}
    if RawRecord.Status.PENDING in seen.values():
        pending = RawRecord.objects.filter(
            source=source,
            status=RawRecord.Status.PENDING,
            message_id__in=[
                mid for mid, status in seen.items() if status == RawRecord.Status.PENDING
            ],
        )
        unapplied = {
            mid: (pk, p) for mid, pk, p in pending.values_list("message_id", "pk", "payload")
        }
    payloads = {**new, **{mid: payload for mid, (_pk, payload) in unapplied.items()}}
    # Erased persons (suppression list): accepted, dropped, counted; the row keeps no payload.
    suppressed = _suppressed(source, payloads, count=True)
    applied = {mid: m for mid, m in payloads.items() if mid not in suppressed}
    record_ids = _messages_apply(source, new, unapplied, applied, rejected, received_at=received_at)
    if gpc is not None and record_ids:
        consent_gpc_record(
            profile_ids=list(
                SourceRecord.objects.filter(pk__in=record_ids).values_list("profile_id", flat=True)
            ),
            evidence=gpc,
        )
    return {"accepted": len(applied), "duplicates": len(valid) - len(payloads)}


def _suppressed(source: DataSource, payloads: dict[str, dict], *, count: bool) -> set[str]:
    """The messageIds of messages about an erased person (the suppression list).

    The messages of a batch mostly name the same few people: each distinct set of
    identifiers is normalised and checked once. Hits are counted per message, so when there
    are any, the suppressed messages are checked again, one item each (a rare second query).
    """
    if not payloads:
        return set()
    keys_of: dict[str, list[tuple[str, str]]] = {}  # repr of the identifiers -> their keys
    by_message: dict[str, str] = {}
    for mid, payload in payloads.items():
        pairs = _message_identifiers(payload)
        marker = repr(pairs)  # a trait may hold any JSON value: the repr is hashable
        if marker not in keys_of:
            keys_of[marker] = identity_keys(pairs, region=source.default_region)
        by_message[mid] = marker
    hit = suppression_check(identities_by_item=keys_of, count=False)
    suppressed = {mid for mid, marker in by_message.items() if marker in hit}
    if suppressed and count:
        suppression_check(identities_by_item={mid: keys_of[by_message[mid]] for mid in suppressed})
    return suppressed


def _messages_keep(
    source: DataSource,
    valid: dict[str, dict],
    rejected: list[tuple[dict, str, str]],
    received_at: datetime,
) -> None:
    """After applying failed: keep the request's messages, the valid ones as pending."""
    suppressed = _suppressed(source, valid, count=False)
    pending = RawRecord.Status.PENDING
    with transaction.atomic():
        bulk_insert_rows_json(
            RawRecord,
            RAW_FIELDS,
            [
                (
                    source.pk,
                    {} if mid in suppressed else m,
                    stable_hash(m),
                    mid,
                    RawRecord.Status.SUPPRESSED if mid in suppressed else pending,
                    "",
                    None,
                    received_at,
                )
                for mid, m in valid.items()
            ]
            + [
                (
                    source.pk,
                    payload,
                    content_hash,
                    None,
                    RawRecord.Status.REJECTED,
                    error,
                    None,
                    received_at,
                )
                for payload, content_hash, error in rejected
            ],  # fmt: skip
            ignore_conflicts=True,
        )


def _rejected_row(original: object, error: str) -> tuple[dict, str, str]:
    """A rejected message as a raw record keeps it: (payload, content hash, error)."""
    payload = _rejected_payload(original)
    return payload, stable_hash(payload), error


def _rejected_payload(original: object) -> dict:
    """A rejected message as a raw record keeps it: the object as sent, a non-object under
    ``value``, or, when a string or number in it cannot be stored as JSON, its JSON text (ASCII,
    escapes included) under ``json``."""
    payload = original if isinstance(original, dict) else {"value": original}
    if json_value_problem(payload, max_depth=None) is None:
        return payload
    return {"json": json.dumps(original, ensure_ascii=True)}


def _messages_apply(
    source: DataSource,
    new: dict[str, dict],
    unapplied: dict[str, tuple[int, dict]],
    applied: dict[str, dict],
    rejected: list[tuple[dict, str, str]],
    *,
    received_at: datetime,
) -> list[int]:
    """Apply ``applied`` (messages by messageId) to source records and events, store ``new``
    and ``rejected`` raw records and mark ``unapplied`` ones; return the source record ids.

    Raises _ConcurrentInsert when another request stored one of ``new`` meanwhile.
    """
    updates: dict[str, _RecordUpdate] = {}
    events: list[tuple[str, str, str, str, dict, dict, datetime, str, str]] = []
    notes: dict[str, list[str]] = {}

    def update_for(key: str) -> _RecordUpdate:
        return updates.setdefault(key, _RecordUpdate(key))

    for message_id, message in applied.items():
        when = event_time(message, received_at)
        key = record_key(message)
        update = update_for(key)
        user_id = clean_text(message.get("userId"))
        anonymous_id = clean_text(message.get("anonymousId"))
        if user_id:
            update.identities[(IdentifierTypes.USER_ID, user_id)] = None
        if anonymous_id:
            update.identities[(IdentifierTypes.ANONYMOUS_ID, anonymous_id)] = None
        kind = message["type"]
        name, properties = "", message.get("properties") or {}
        if kind == "identify":
            properties = identify_traits(message)
            notes[message_id] = _apply_traits(
                update, properties, when.isoformat(), _trait_region(properties, source)
            )
        elif kind == "track":
            name = clean_text(message.get("event"))
        elif kind in ("page", "screen"):
            name = clean_text(message.get("name"))
        elif kind == "group":
            name = clean_text(message.get("groupId"))
            properties = message.get("traits") or {}
        elif kind == "alias":
            previous = clean_text(message.get("previousId"))
            if previous and previous != user_id:
                # previousId == userId says nothing new: no identity, no link.
                update.identities[(IdentifierTypes.ANONYMOUS_ID, previous)] = None
            properties = {"previousId": message.get("previousId")}
        events.append(
            (
                message_id,
                key,
                kind,
                name[:200],
                properties,
                message.get("context") or {},
                when,
                user_id[:200],
                anonymous_id[:200],
            )
        )

    records, to_resolve = _source_records_apply(source, updates)
    raw_rows = []
    for mid, message in new.items():
        if mid in applied:
            raw_rows.append(
                (source.pk, message, stable_hash(message), mid, RawRecord.Status.ACCEPTED,
                 "; ".join(notes.get(mid) or []), records[record_key(message)][0], received_at)
            )  # fmt: skip
        else:  # suppressed: the row keeps no payload
            raw_rows.append(
                (source.pk, {}, stable_hash(message), mid, RawRecord.Status.SUPPRESSED, "",
                 None, received_at)
            )  # fmt: skip
    raw_rows += [
        (source.pk, payload, content_hash, None, RawRecord.Status.REJECTED, error, None,
         received_at)
        for payload, content_hash, error in rejected
    ]  # fmt: skip
    # Skipping a messageId another request stored since this one looked (ON CONFLICT waits
    # for that request to commit): then this request's view is stale, so it starts over.
    stored = bulk_insert_rows_json(
        RawRecord, RAW_FIELDS, raw_rows, returning=["id", "message_id"], ignore_conflicts=True
    )
    raw_ids = {mid: pk for pk, mid in stored if mid is not None}
    if len(raw_ids) < len(new):
        raise _ConcurrentInsert
    if unapplied:
        _unapplied_mark(unapplied, applied, notes, records)
        raw_ids.update({mid: pk for mid, (pk, _payload) in unapplied.items()})

    # A message applied again after a failure may have its event already: keep the first.
    bulk_insert_rows_json(
        Event,
        EVENT_FIELDS,
        [
            (
                source.pk,
                mid,
                kind,
                name,
                properties,
                context,
                when,
                received_at,
                user_id,
                anonymous_id,
                records[key][0],
                records[key][1],
                raw_ids[mid],
            )
            for mid, key, kind, name, properties, context, when, user_id, anonymous_id in events
        ],  # fmt: skip
        ignore_conflicts=True,
    )
    # Only records whose identities or attributes changed (or that have no profile yet) are
    # resolved again: an event of a known person changes nothing resolution reads. Their
    # events above already carry their profile.
    if to_resolve:
        profiles_resolve(source_record_ids=to_resolve)
    # Loyalty earns on orders after commit; no query at all for batches without orders.
    orders = [
        mid for mid, _k, kind, name, *_ in events if kind == "track" and name in LOYALTY_EVENT_NAMES
    ]
    if orders:
        loyalty_events_ingested(
            event_ids=Event.objects.filter(source=source, message_id__in=orders).values_list(
                "pk", flat=True
            )
        )
    return [pk for pk, _profile in records.values()]


def _unapplied_mark(
    unapplied: dict[str, tuple[int, dict]],
    applied: dict[str, dict],
    notes: dict[str, list[str]],
    records: dict[str, tuple[int, int | None]],
) -> None:
    """Raw records stored pending by an earlier request, now applied (or suppressed)."""
    suppressed = [pk for mid, (pk, _payload) in unapplied.items() if mid not in applied]
    if suppressed:
        RawRecord.objects.filter(pk__in=suppressed).update(
            status=RawRecord.Status.SUPPRESSED, payload={}, error=""
        )
    bulk_update_rows(
        RawRecord,
        [
            RawRecord(
                pk=pk,
                status=RawRecord.Status.ACCEPTED,
                error="; ".join(notes.get(mid) or []),
                source_record_id=records[record_key(payload)][0],
            )
            for mid, (pk, payload) in unapplied.items()
            if mid in applied
        ],
        ["status", "error", "source_record"],
    )


def _message_identifiers(message: dict) -> list[tuple[str, object]]:
    """The identifiers a message names, for the suppression check."""
    pairs: list[tuple[str, object]] = []
    for id_type, value in (
        (IdentifierTypes.USER_ID, message.get("userId")),
        (IdentifierTypes.ANONYMOUS_ID, message.get("anonymousId")),
        (IdentifierTypes.ANONYMOUS_ID, message.get("previousId")),
    ):
        if clean_text(value):
            pairs.append((id_type, value))
    traits = message.get("traits") if message.get("type") == "identify" else None
    for trait, value in (traits or {}).items():
        attr = CANONICAL_ATTRIBUTES.get(TRAIT_ATTRIBUTES.get(trait, ""))
        if attr is not None and attr.identifier and clean_text(value):
            pairs.append((attr.identifier, value))
    return pairs


def _apply_traits(update: _RecordUpdate, traits: dict, when: str, region: str) -> list[str]:
    """Observe canonical attributes and verbatim traits; return notes on unusable values."""
    notes = []
    candidates: list[tuple[str, object]] = []
    for trait, value in traits.items():
        update.observe(update.traits, trait, when, value)
        if trait in TRAIT_ATTRIBUTES:
            if not _shadowed(trait, traits):
                candidates.append((TRAIT_ATTRIBUTES[trait], value))
        elif trait == "name" and isinstance(value, str) and " " in value.strip():
            first, last = value.strip().split(" ", 1)
            # Only for a part no trait of its own gives (a blank or null one gives nothing).
            if not (clean_text(traits.get("firstName")) or clean_text(traits.get("first_name"))):
                candidates.append(("first_name", first))
            if not (clean_text(traits.get("lastName")) or clean_text(traits.get("last_name"))):
                candidates.append(("last_name", last))
        elif trait == "address" and isinstance(value, dict):
            for part, attr in ADDRESS_ATTRIBUTES.items():
                if part in value and not _shadowed(part, value):
                    candidates.append((attr, value[part]))
        elif trait == "company" and isinstance(value, dict) and value.get("name"):
            candidates.append(("company", value["name"]))
        elif trait == "company" and isinstance(value, str):
            candidates.append(("company", value))
    for name, value in candidates:
        attr = CANONICAL_ATTRIBUTES[name]
        # The trait itself is kept verbatim; only a single value of the attribute's kind
        # becomes the attribute (a list or object would be stored as its Python text).
        if isinstance(value, (dict, list)):
            notes.append(f"trait {name}: a list or object, not a single value")
            continue
        if isinstance(value, bool) and attr.type != AttributeType.BOOLEAN:
            notes.append(f"trait {name}: true/false is not a {attr.type} value")
            continue
        text = clean_text(value) if not isinstance(value, bool) else value
        if text == "" or text is None:
            continue
        try:
            if attr.identifier:
                # The identity keeps the raw value; the attribute holds its key when it has one.
                update.identities[(attr.identifier, str(text))] = None
                result = identifier_key(attr.identifier, text, region=region)
                if result.key is None and result.flag.startswith("scientific"):
                    # 2.02555E+09 lost its last digits in a spreadsheet: never a phone number.
                    notes.append(f"trait {name}: {result.flag}")
                    continue
                converted = result.key or text
            elif attr.type == AttributeType.DATE:
                converted = parse_iso_date(str(text))  # the spec's dates are ISO-8601
            else:
                converted = convert_value(attr.type, text)
        except InvalidValue as exc:
            notes.append(f"trait {name}: {exc}")
            continue
        update.observe(update.observed, name, when, converted)
    return notes


def _trait_region(traits: dict, source: DataSource) -> str:
    address = traits.get("address")
    country = clean_text(address.get("country")) if isinstance(address, dict) else ""
    return country.upper() if len(country) == 2 else source.default_region


def _source_records_apply(
    source: DataSource, updates: dict[str, _RecordUpdate]
) -> tuple[dict[str, tuple[int, int | None]], list[int]]:
    """Create or update the source records these messages describe; add their identities.

    Each attribute and trait keeps the time it was observed; an older observation never
    overwrites a newer one. Returns (external key -> (record id, profile id)) and the ids of
    the records resolution must see again: new ones, ones without a profile, ones with a new
    identity or a new observation of an attribute (traits are not read by resolution).
    """
    if not updates:
        return {}, []
    now = timezone.now()
    keys = sorted(updates)
    # Concurrent requests may create the same record: insert every key, in key order (so two
    # requests never wait on each other crosswise), skipping the ones that exist (or that
    # another request created meanwhile); then lock every record this request changes, in
    # key order. The keys inserted are the new records.
    created = bulk_insert_rows_json(
        SourceRecord,
        ["source", "external_key", "attributes", "traits", "observed_at", "content_hash",
         "profile", "created_at", "updated_at"],
        [(source.pk, key, {}, {}, {}, "", None, now, now) for key in keys],
        returning=["external_key"],
        ignore_conflicts=True,
    )  # fmt: skip
    existing = set(keys) - {key for (key,) in created}
    records = {
        sr.external_key: sr
        for sr in SourceRecord.objects.select_for_update()
        .filter(source=source, external_key__in=keys)
        .order_by("external_key")
    }
    to_update = []
    to_resolve = {record.pk for record in records.values() if record.profile_id is None}
    for key, update in updates.items():
        record = records[key]
        changed = key not in existing
        for prefix, target, observed in (
            ("trait:", record.traits, update.traits),
            ("", record.attributes, update.observed),
        ):
            for name, (when, value) in observed.items():
                if record.observed_at.get(prefix + name, "") <= when:
                    target[name] = value
                    record.observed_at[prefix + name] = when
                    changed = True
                    if not prefix:
                        to_resolve.add(record.pk)
        record.updated_at = now
        if changed:
            to_update.append(record)
    bulk_update_rows(SourceRecord, to_update, ["attributes", "traits", "observed_at", "updated_at"])

    have = set(
        Identity.objects.filter(source_record__in=list(records.values())).values_list(
            "source_record_id", "type", "raw_value"
        )
    )
    new_identities = []
    for key, update in updates.items():
        record = records[key]
        region = str(record.attributes.get("country") or source.default_region)
        for id_type, raw in update.identities:
            if (record.pk, id_type, raw[:500]) in have:
                continue
            have.add((record.pk, id_type, raw[:500]))
            to_resolve.add(record.pk)
            try:
                result = identifier_key(id_type, raw, region=region)
            except InvalidValue as exc:
                result = IdentifierKey(None, str(exc))
            new_identities.append(
                (id_type, raw[:500], result.key, result.flag[:200], record.pk, record.profile_id,
                 now)
            )  # fmt: skip
    bulk_insert_rows_json(
        Identity,
        ["type", "raw_value", "key", "flag", "source_record", "profile", "created_at"],
        new_identities,
    )
    ids = {key: (record.pk, record.profile_id) for key, record in records.items()}
    return ids, sorted(to_resolve)
