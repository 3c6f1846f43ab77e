"""Fixtures for activation: people with identities, destinations, a real HTTP receiver."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from activation.models import Activation, Destination
from profiles.models import DataSource, Identity, Profile, SourceRecord
from segments.models import Segment


@pytest.fixture(autouse=True)
def _export_storage(settings, tmp_path):
    settings.CDP_ACTIVATION_STORAGE = tmp_path / "exports"


@pytest.fixture
def make_person(db):
    """A profile with one source record per (source, email/phone) given."""
    counter = {"n": 0}

    def make(
        *, email: str = "", phone: str = "", source: DataSource | None = None, **fields
    ) -> Profile:
        counter["n"] += 1
        source = (
            source or DataSource.objects.get_or_create(name="crm", defaults={"priority": 10})[0]
        )
        profile = Profile.objects.create(email=email, phone=phone, **fields)
        add_contact(profile, source=source, email=email, phone=phone)
        return profile

    return make


def add_contact(profile: Profile, *, source: DataSource, email: str = "", phone: str = ""):
    record = SourceRecord.objects.create(
        source=source, external_key=f"{source.pk}-{profile.pk}-{email}{phone}", profile=profile
    )
    if email:
        Identity.objects.create(
            type="email", raw_value=email, key=email.lower(), source_record=record, profile=profile
        )
    if phone:
        Identity.objects.create(
            type="phone", raw_value=phone, key=phone, source_record=record, profile=profile
        )
    return record


@pytest.fixture
def make_destination(db):
    def make(**overrides) -> Destination:
        values = {
            "name": f"dest-{Destination.objects.count() + 1}",
            "kind": Destination.Kind.FILE,
            "folder": "crm",
            "backoff_seconds": 0.01,
            "timeout_seconds": 5,
        }
        values.update(overrides)
        return Destination.objects.create(**values)

    return make


@pytest.fixture
def make_activation(db, make_destination):
    def make(**overrides) -> Activation:
        if "destination" not in overrides:
            overrides["destination"] = make_destination()
        if "segment" not in overrides:
            overrides["segment"] = Segment.objects.create(name=f"seg-{Segment.objects.count()}")
        values = {
            "name": f"act-{Activation.objects.count() + 1}",
            "attributes": ["first_name", "country"],
            "contact_point": Activation.ContactPoint.EMAIL,
        }
        values.update(overrides)
        return Activation.objects.create(**values)

    return make


class Receiver:
    """A webhook endpoint on loopback answering with scripted statuses (then 200)."""

    def __init__(self):
        self.script: list[tuple[int, dict]] = []
        self.requests: list[dict] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver.lock:
                    status, headers = receiver.script.pop(0) if receiver.script else (200, {})
                    receiver.requests.append(
                        {
                            "headers": {k.lower(): v for k, v in self.headers.items()},
                            "body": body,
                            "status": status,
                        }
                    )
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def accepted(self) -> list[dict]:
        """Bodies (parsed) of the requests answered with a 2xx."""
        return [json.loads(r["body"]) for r in self.requests if 200 <= r["status"] < 300]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()
