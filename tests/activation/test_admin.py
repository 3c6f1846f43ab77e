"""Admin: destinations, activations and their overview page, runs with download and retry."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, User
from django.urls import reverse

from activation.models import ActivationRun, DeliveryBatch, Destination
from activation.services.runs import activation_run_execute
from profiles.models import Profile
from segments.models import Segment


@pytest.fixture
def user_with_role(db):
    def make(role: str) -> User:
        user = User.objects.create_user(username=role.lower().replace(" ", "-"), password="pw")
        user.is_staff = True
        user.save()
        user.groups.add(Group.objects.get(name=role))
        return user

    return make


def finished_run(activation, *profiles) -> ActivationRun:
    run = ActivationRun.objects.create(activation=activation, mode=activation.mode)
    member_ids = Profile.objects.filter(pk__in=[p.pk for p in profiles]).values("pk")
    return activation_run_execute(run=run, member_ids=member_ids)


def test_run_changelist_shows_counts_within_a_query_budget(
    admin_client, make_person, make_activation, django_assert_max_num_queries
):
    ann = make_person(email="ann@example.com")
    for _ in range(3):
        finished_run(make_activation(), ann)
    with django_assert_max_num_queries(8):
        response = admin_client.get(reverse("admin:activation_activationrun_changelist"))
    assert response.status_code == 200
    assert response.content.decode().count('class="cdp-progress"') == 3


def test_run_file_downloads_for_a_marketer_but_not_for_a_steward(
    client, user_with_role, make_person, make_activation
):
    ann = make_person(email="ann@example.com", first_name="Ann")
    run = finished_run(make_activation(), ann)
    url = reverse("admin:activation_activationrun_download", args=[run.pk])
    client.force_login(user_with_role("Marketer"))
    response = client.get(url)
    assert response.status_code == 200
    assert b"ann@example.com,Ann," in b"".join(response.streaming_content)
    client.force_login(user_with_role("Data Steward"))
    assert client.get(url).status_code == 403


def test_destination_secret_is_hidden_from_a_marketer(client, user_with_role, make_destination):
    destination = make_destination()
    url = reverse("admin:activation_destination_change", args=[destination.pk])
    client.force_login(user_with_role("Data Engineer"))
    assert destination.secret in client.get(url).content.decode()
    client.force_login(user_with_role("Marketer"))
    response = client.get(url)
    assert response.status_code == 200
    assert destination.secret not in response.content.decode()


def test_destination_form_refuses_plain_http_webhook(admin_client):
    response = admin_client.post(
        reverse("admin:activation_destination_add"),
        {
            "name": "hook",
            "kind": "webhook",
            "is_active": "on",
            "file_format": "csv",
            "folder": "",
            "url": "http://crm.example.com/hook",
            "batch_size": 500,
            "timeout_seconds": 10,
            "max_attempts": 5,
            "backoff_seconds": 1,
            "consent_purpose": "email_marketing",
            "consent_channel": "email",
        },
    )
    assert response.status_code == 200
    assert "must use https://" in response.content.decode()
    assert not Destination.objects.exists()


def test_activation_form_stores_standard_and_custom_attributes(admin_client, make_destination):
    destination = make_destination()
    segment = Segment.objects.create(name="Berliners")
    response = admin_client.post(
        reverse("admin:activation_activation_add"),
        {
            "name": "Newsletter",
            "segment": segment.pk,
            "destination": destination.pk,
            "contact_point": "email",
            "schedule": "daily",
            "mode": "changes",
            "is_active": "on",
            "standard_attributes": ["first_name", "country"],
            "custom_attributes": "postcode, BAD NAME",
        },
    )
    assert response.status_code == 200  # the bad name is refused
    assert "Not attribute names: BAD NAME" in response.content.decode()
    response = admin_client.post(
        reverse("admin:activation_activation_add"),
        {
            "name": "Newsletter",
            "segment": segment.pk,
            "destination": destination.pk,
            "contact_point": "email",
            "schedule": "daily",
            "mode": "changes",
            "is_active": "on",
            "standard_attributes": ["first_name", "country"],
            "custom_attributes": "postcode",
        },
    )
    assert response.status_code == 302
    from activation.models import Activation

    assert Activation.objects.get(name="Newsletter").attributes == [
        "first_name",
        "country",
        "postcode",
    ]


def test_activation_form_refuses_attributes_an_export_cannot_fill(admin_client, make_destination):
    from activation.models import Activation

    segment = Segment.objects.create(name="Berliners")
    response = admin_client.post(
        reverse("admin:activation_activation_add"),
        {
            "name": "Newsletter",
            "segment": segment.pk,
            "destination": make_destination().pk,
            "contact_point": "email",
            "schedule": "manual",
            "mode": "full",
            "standard_attributes": ["first_name"],
            "custom_attributes": "insight:rfm_group, trait:tax_exempt, nonexistent_field, postcod",
        },
    )

    html = response.content.decode()
    assert response.status_code == 200
    assert "Unknown attributes: nonexistent_field, postcod (did you mean postcode?)" in html
    assert "insight:rfm_group, trait:tax_exempt: only profile attributes are sent" in html
    assert not Activation.objects.exists()


def test_activation_model_validation_refuses_unknown_attributes(make_destination):
    from django.core.exceptions import ValidationError

    from activation.models import Activation

    activation = Activation(
        name="x",
        segment=Segment.objects.create(name="s"),
        destination=make_destination(),
        attributes=["first_name", "nonexistent_field"],
    )

    with pytest.raises(ValidationError) as excinfo:
        activation.full_clean()

    assert excinfo.value.message_dict["attributes"] == ["Unknown attributes: nonexistent_field."]


def test_dead_letters_are_listed_and_a_failed_run_can_be_retried(
    admin_client, make_person, make_activation, make_destination, receiver
):
    ann = make_person(email="ann@example.com")
    destination = make_destination(kind=Destination.Kind.WEBHOOK, url=receiver.url, max_attempts=1)
    receiver.script = [(502, {})]
    run = finished_run(make_activation(destination=destination), ann)
    assert run.status == "failed"
    response = admin_client.get(
        reverse("admin:activation_deliverybatch_changelist") + "?status__exact=dead"
    )
    assert "HTTP 502" in response.content.decode()
    response = admin_client.post(
        reverse("admin:activation_activationrun_changelist"),
        {"action": "retry_selected", "_selected_action": [run.pk]},
    )
    assert response.status_code == 302
    run.refresh_from_db()
    assert run.status == "queued"
    assert DeliveryBatch.objects.get(run=run).status == "dead"  # until the worker retries it


def test_editing_an_activation_that_lists_a_trait_shows_the_error_on_the_form(
    admin_client, make_activation
):
    activation = make_activation(attributes=["first_name", "trait:tax_exempt"])
    url = reverse("admin:activation_activation_change", args=[activation.pk])
    form = admin_client.get(url).context["adminform"].form
    data = {
        "name": activation.name,
        "segment": activation.segment_id,
        "destination": activation.destination_id,
        "contact_point": "email",
        "schedule": "manual",
        "mode": "full",
        "standard_attributes": ["first_name"],
        "custom_attributes": form.initial["custom_attributes"],
    }

    response = admin_client.post(url, data)

    assert response.status_code == 200
    assert "trait:tax_exempt: only profile attributes are sent" in response.content.decode()
    data["custom_attributes"] = ""
    assert admin_client.post(url, data).status_code == 302
    activation.refresh_from_db()
    assert activation.attributes == ["first_name"]
