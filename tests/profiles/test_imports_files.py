"""Real-world files: encodings, delimiters, number locales, date orders, identifiers, reports."""

from __future__ import annotations

import csv
import io

import pytest

from profiles.models import FieldMapping, Identity, ImportRun, Profile, RawRecord, SourceRecord
from profiles.selectors import import_run_rejected_csv_lines
from profiles.services.imports import (
    import_preview,
    import_run_create,
    mapping_save,
    scan_file,
    sniff_delimiter,
    text_file,
)
from profiles.services.mapping import FieldSpec
from tests.conftest import shopify_csv, shopify_row

# --- encodings -----------------------------------------------------------------------------


def test_bom_file_first_header_is_recognised_as_the_email_column(make_source, import_csv):
    content = "\ufeffemail;first_name\r\nann@example.com;Ann\r\n".encode()

    run = import_csv(make_source(), content)

    assert (run.status, run.encoding, run.headers) == (
        "succeeded",
        "utf-8-sig",
        ["email", "first_name"],
    )
    record = SourceRecord.objects.get()
    assert record.attributes == {"email": "ann@example.com", "first_name": "Ann"}
    assert record.traits == {}


def test_cp1252_umlauts_are_read_without_mojibake(make_source, import_csv):
    content = "email,first_name,last_name,city\njuergen@example.de,Jürgen,Größe,Köln\n"

    run = import_csv(make_source(), content.encode("cp1252"))

    assert (run.status, run.encoding) == ("succeeded", "cp1252")
    profile = Profile.objects.get()
    assert (profile.first_name, profile.last_name, profile.city) == ("Jürgen", "Größe", "Köln")
    assert "Ã" not in str(RawRecord.objects.get().payload)


@pytest.mark.parametrize("undefined", [b"\x81", b"\x8d", b"\x8f", b"\x90", b"\x9d"])
def test_a_byte_undefined_in_cp1252_leaves_the_rest_of_the_file_cp1252(
    make_source, import_csv, undefined
):
    # One stray byte used to switch the whole file to Latin-1: the euro sign, dashes and
    # curly quotes of every other row silently became invisible control characters.
    content = (
        "email,first_name,note\na@x.de,Zoë,Preis 5 € – „gut“\nb@x.de,Bob,x".encode("cp1252")
        + undefined
        + b"y\n"
    )

    run = import_csv(make_source(), content)

    assert (run.status, run.encoding, run.created_count) == ("succeeded", "cp1252+latin-1", 2)
    notes = dict(SourceRecord.objects.values_list("external_key", "attributes__note"))
    assert notes == {
        "email:a@x.de": "Preis 5 € – „gut“",
        "email:b@x.de": "x" + chr(undefined[0]) + "y",  # the byte kept, as Latin-1 reads it
    }


def test_the_detected_cp1252_latin1_encoding_reads_the_file_again_in_the_preview(
    make_source, import_csv
):
    content = "email,note\na@x.de,5 €\n".encode("cp1252") + b"b@x.de,\x81\n"
    path = import_csv(make_source(), content).file.path

    fmt = scan_file(path)
    preview = import_preview(path=path, specs=[], encoding=fmt.encoding)

    assert fmt.encoding == "cp1252+latin-1"
    assert [row["note"] for _n, row, _m, _e in preview.rows] == ["5 €", "\x81"]


def test_utf8_file_is_never_read_as_cp1252(make_source, import_csv):
    run = import_csv(make_source(), "email,first_name\nj@example.de,Jürgen\n".encode())

    assert run.encoding == "utf-8"
    assert Profile.objects.get().first_name == "Jürgen"


def test_user_chosen_encoding_is_used(make_source):
    content = "email,first_name\nj@example.de,Jürgen €\n".encode("iso-8859-15")
    run = import_run_create(
        source=make_source(),
        file=text_file(content, "latin9.csv"),
        encoding="iso-8859-15",
        sync=True,
    )

    assert (run.status, run.encoding) == ("succeeded", "iso-8859-15")
    assert Profile.objects.get().first_name == "Jürgen €"


def test_a_file_that_is_not_the_chosen_encoding_fails_with_a_message(make_source):
    content = "email,first_name\nj@example.de,Jürgen\n".encode("cp1252")
    run = import_run_create(
        source=make_source(), file=text_file(content, "a.csv"), encoding="utf-8", sync=True
    )

    assert run.status == "failed"
    assert run.error.startswith("The file cannot be read: The file is not valid utf-8 (byte")
    assert "choose the encoding" in run.error
    assert Profile.objects.count() == 0


def test_utf16_excel_unicode_text_is_read(make_source, import_csv):
    content = "email\tfirst_name\r\nz@example.pl\tZoë\r\n".encode("utf-16")

    run = import_csv(make_source(), content)

    assert (run.encoding, run.delimiter) == ("utf-16", "\t")
    assert Profile.objects.get().first_name == "Zoë"


def import_with_encoding(source, content: bytes, encoding: str, name: str = "u.txt"):
    return import_run_create(
        source=source, file=text_file(content, name), encoding=encoding, sync=True
    )


@pytest.mark.parametrize(
    ("byte_order", "read_as"), [("utf-16-le", "utf-16-le"), ("utf-16-be", "utf-16-be")]
)
def test_utf16_without_a_bom_is_read_when_chosen(make_source, byte_order, read_as):
    # Excel's "Unicode text" saved by some tools without a byte-order mark: NUL bytes in every
    # other place. Chosen as UTF-16, it is text, whichever byte order (not the server's).
    content = "email\tfirst_name\r\nz@example.pl\tZoë\r\n".encode(byte_order)

    run = import_with_encoding(make_source(), content, "utf-16")

    assert (run.status, run.error, run.encoding, run.delimiter) == ("succeeded", "", read_as, "\t")
    assert Profile.objects.get().first_name == "Zoë"


def test_utf16_with_a_bom_chosen_as_utf16_keeps_the_bom_out_of_the_header(make_source):
    content = "email\tfirst_name\r\nz@example.pl\tZoë\r\n".encode("utf-16")

    run = import_with_encoding(make_source(), content, "utf-16")

    assert (run.status, run.encoding, run.headers) == (
        "succeeded",
        "utf-16",
        ["email", "first_name"],
    )
    assert Profile.objects.get().first_name == "Zoë"


def test_utf16_without_a_bom_and_no_encoding_chosen_is_still_refused(make_source):
    content = "email\tfirst_name\r\nz@example.pl\tZoë\r\n".encode("utf-16-le")

    run = import_with_encoding(make_source(), content, "")

    assert run.status == "failed"
    assert run.error == (
        "The file cannot be read: This is not a CSV or text file: it looks like binary data "
        "(NUL bytes), not text."
    )
    assert RawRecord.objects.count() == 0


@pytest.mark.parametrize(
    ("content", "encoding", "looks_like"),
    [
        (b"PK\x03\x04\x14\x00\x06\x00" + bytes(200), "", "an Excel workbook (.xlsx)"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(200), "", "a PNG image"),
        # A chosen encoding does not turn a workbook or an image into text.
        (b"PK\x03\x04\x14\x00\x06\x00" + bytes(200), "utf-16", "an Excel workbook (.xlsx)"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(200), "utf-16", "a PNG image"),
        # NUL bytes are binary in an encoding that never writes them.
        (b"email\x00\x01\x02,name\nx\x00y\n", "cp1252", "binary data (NUL bytes)"),
    ],
)
def test_binary_files_are_still_refused(make_source, content, encoding, looks_like):
    run = import_with_encoding(make_source(), content, encoding, name="export.csv")

    assert run.status == "failed"
    assert run.error.startswith(
        f"The file cannot be read: This is not a CSV or text file: it looks like {looks_like}"
    )
    assert RawRecord.objects.count() == 0


@pytest.mark.parametrize("encoding", ["base64", "no-such-encoding"])
def test_a_chosen_encoding_that_is_no_text_encoding_fails_with_a_message(make_source, encoding):
    run = import_with_encoding(make_source(), b"email\na@example.com\n", encoding)

    assert (run.status, run.error) == (
        "failed",
        f"The file cannot be read: Unknown encoding {encoding!r}.",
    )


# --- delimiters and embedded newlines --------------------------------------------------------


@pytest.mark.parametrize("delimiter", [",", ";", "\t", "|"])
def test_delimiter_is_sniffed(delimiter):
    sample = delimiter.join(["email", "first_name", "note"]) + "\n"
    sample += delimiter.join(["a@example.com", "Ann", '"one, two; three | four"']) + "\n"

    assert sniff_delimiter(sample) == delimiter


def test_a_file_with_carriage_returns_only_is_sniffed_and_read(make_source, import_csv):
    # Excel for Mac's "CSV (Macintosh)" ends lines with a bare CR.
    content = "email;first_name\rann@example.com;Ann\rbob@example.com;Bob\r"

    run = import_csv(make_source(), content)

    assert (run.delimiter, run.headers, run.created_count) == (";", ["email", "first_name"], 2)
    ann = SourceRecord.objects.get(external_key="email:ann@example.com")
    assert ann.attributes == {"email": "ann@example.com", "first_name": "Ann"}


def test_quoted_field_with_embedded_newlines_stays_one_value(make_source, import_csv):
    content = (
        "email;note;first_name\n"
        'ann@example.com;"line one\nline two; still the note";Ann\n'
        "bob@example.com;short;Bob\n"
    )

    run = import_csv(make_source(), content)

    assert (run.delimiter, run.rows_total, run.created_count) == (";", 2, 2)
    ann = SourceRecord.objects.get(external_key="email:ann@example.com")
    assert ann.attributes["note"] == "line one\nline two; still the note"
    assert ann.attributes["first_name"] == "Ann"


# --- number locale -------------------------------------------------------------------------


def test_semicolon_file_with_decimal_comma_reads_german_numbers(make_source, import_csv):
    source = make_source()
    mapping_save(
        source=source,
        specs=[
            FieldSpec("E-Mail", "email", is_key=True),
            FieldSpec("Umsatz", "total_spent", number_locale="de"),
            FieldSpec("Bestellungen", "total_orders", number_locale="de"),
        ],
    )

    run = import_csv(
        source, "E-Mail;Umsatz;Bestellungen\na@example.de;1.234,50;3\nb@example.de;99,9;1.000\n"
    )

    assert (run.status, run.delimiter, run.rejected_count) == ("succeeded", ";", 0)
    values = dict(SourceRecord.objects.values_list("external_key", "attributes"))
    assert values["a@example.de"] == {
        "email": "a@example.de",
        "total_spent": 1234.5,
        "total_orders": 3,
    }
    assert values["b@example.de"]["total_spent"] == 99.9
    assert values["b@example.de"]["total_orders"] == 1000


def test_german_number_with_locale_en_is_a_row_error_never_1_234(make_source, import_csv):
    source = make_source()
    mapping_save(
        source=source,
        specs=[FieldSpec("email", "email", is_key=True), FieldSpec("spent", "total_spent")],
    )

    run = import_csv(source, "email;spent\na@example.de;1.234,50\nb@example.de;12.5\n")

    assert (run.created_count, run.rejected_count) == (1, 1)
    assert run.rejected_reasons == {"invalid_number": 1}
    raw = RawRecord.objects.get(status="rejected")
    assert raw.error == (
        "spent: '1.234,50' is not a number with a decimal point (e.g. 1,234.50); "
        "for a decimal comma choose the number format 1.234,50 in the mapping"
    )
    assert not SourceRecord.objects.filter(external_key="a@example.de").exists()


def test_decimal_comma_is_inferred_for_a_semicolon_file_without_a_saved_mapping(
    make_source, import_csv
):
    source = make_source()
    content = "email;total_spent;total_orders\na@example.de;1.234,56;2\nb@example.de;12,5;1\n"

    run = import_csv(source, content.encode("cp1252"))

    assert (run.status, run.rejected_count, run.created_count) == ("succeeded", 0, 2)
    values = dict(SourceRecord.objects.values_list("external_key", "attributes__total_spent"))
    assert values == {"email:a@example.de": 1234.56, "email:b@example.de": 12.5}


def test_shopify_total_spent_with_a_thousands_separator_is_read(make_source, import_csv):
    source = make_source(preset="shopify")
    content = shopify_csv(
        shopify_row(Email="zoe@example.de", **{"Total Spent": "1,234.50", "Total Orders": "3"}),
        shopify_row(Email="max@example.de", **{"Total Spent": "10.00", "Total Orders": "1"}),
    )

    run = import_csv(source, content)

    assert (run.status, run.rejected_count, run.created_count) == ("succeeded", 0, 2)
    zoe = SourceRecord.objects.get(external_key="zoe@example.de")
    assert (zoe.attributes["total_spent"], zoe.attributes["total_orders"]) == (1234.5, 3)


def test_an_unreadable_number_rejects_only_its_row(make_source, import_csv):
    source = make_source()
    content = "email;total_spent\na@example.de;1.234,56\nb@example.de;zwölf\nc@example.de;7,5\n"

    run = import_csv(source, content)

    assert (run.status, run.created_count, run.rejected_count) == ("succeeded", 2, 1)
    assert run.rejected_reasons == {"invalid_number": 1}
    raw = RawRecord.objects.get(status="rejected")
    assert (raw.row_number, raw.error) == (
        2,
        "total_spent: 'zwölf' is not a number in German format (decimal comma, e.g. 1.234,50)",
    )


# --- dates ---------------------------------------------------------------------------------


def test_day_first_column_is_inferred_from_the_whole_column(make_source, import_csv):
    source = make_source()
    rows = ["a@example.de,03/04/1980", "b@example.de,12/11/1975", "c@example.de,25/12/1990"]

    run = import_csv(source, "email,birth_date\n" + "\n".join(rows) + "\n")

    assert run.date_orders == {"birth_date": "dmy"}
    dates = dict(SourceRecord.objects.values_list("external_key", "attributes__birth_date"))
    assert dates == {
        "email:a@example.de": "1980-04-03",
        "email:b@example.de": "1975-11-12",
        "email:c@example.de": "1990-12-25",
    }


def test_month_first_column_is_inferred_too(make_source, import_csv):
    run = import_csv(make_source(), "email,birth_date\na@x.de,03/04/1980\nb@x.de,12/31/1975\n")

    assert run.date_orders == {"birth_date": "mdy"}
    assert SourceRecord.objects.get(external_key="email:a@x.de").attributes["birth_date"] == (
        "1980-03-04"
    )


def test_ambiguous_date_column_needs_an_explicit_format(make_source, import_csv):
    source = make_source()
    mapping_save(
        source=source,
        specs=[FieldSpec("email", "email", is_key=True), FieldSpec("birth_date", "birth_date")],
    )
    content = "email,birth_date\na@x.de,03/04/1980\nb@x.de,1975-11-12\n"

    run = import_csv(source, content)

    assert run.date_orders == {"birth_date": "ambiguous"}
    assert (run.created_count, run.rejected_count, run.rejected_reasons) == (
        1,
        1,
        {"ambiguous_date": 1},
    )
    assert "choose a date format" in RawRecord.objects.get(status="rejected").error

    mapping_save(
        source=source,
        specs=[
            FieldSpec("email", "email", is_key=True),
            FieldSpec("birth_date", "birth_date", date_format="%m/%d/%Y"),
        ],
    )
    again = import_csv(source, content)

    assert (again.created_count, again.unchanged_count, again.rejected_count) == (1, 1, 0)
    assert SourceRecord.objects.get(external_key="a@x.de").attributes["birth_date"] == "1980-03-04"


def test_reimport_with_a_saved_date_format_names_it_when_a_value_does_not_match(
    make_source, import_csv
):
    source = make_source()
    mapping_save(
        source=source,
        specs=[
            FieldSpec("email", "email", is_key=True),
            FieldSpec("born", "birth_date", date_format="%d.%m.%Y"),
        ],
    )
    import_csv(source, "email,born\na@x.de,31.01.1980\n")

    again = import_csv(source, "email,born\na@x.de,31.01.1980\nb@x.de,01/31/1980\n")

    assert (again.unchanged_count, again.rejected_count, again.rejected_reasons) == (
        1,
        1,
        {"invalid_date": 1},
    )
    assert RawRecord.objects.get(status="rejected").error == (
        "born: '01/31/1980' is not a date in the format DD.MM.YYYY"
    )


def test_dotted_german_dates_are_day_first(make_source, import_csv):
    import_csv(make_source(), "email,birth_date\na@x.de,03.04.1980\n")

    assert SourceRecord.objects.get().attributes["birth_date"] == "1980-04-03"


# --- identifiers ---------------------------------------------------------------------------


def test_leading_zero_postcodes_and_identifiers_stay_strings(make_source, import_csv):
    content = "customer_id,email,postcode,phone,country\n00042,a@x.de,01067,0301234567,DE\n"

    import_csv(make_source(), content)

    record = SourceRecord.objects.get()
    assert record.external_key == "00042"
    assert record.attributes["postcode"] == "01067"
    assert record.attributes["customer_id"] == "00042"
    assert record.attributes["phone"] == "+49301234567"
    assert Identity.objects.get(type="customer_id").key == "00042"


def test_excel_scientific_phone_is_rejected_as_a_phone(make_source, import_csv):
    run = import_csv(make_source(), "email,phone,country\na@x.us,2.02555E+09,US\n")

    assert run.status == "succeeded"
    record = SourceRecord.objects.get()
    assert "phone" not in record.attributes
    phone = Identity.objects.get(type="phone")
    assert (phone.raw_value, phone.key) == ("2.02555E+09", None)
    assert phone.flag == "scientific notation (a spreadsheet mangled this number)"
    assert Profile.objects.get().phone == ""


def test_excel_scientific_phone_with_a_decimal_comma_is_not_a_phone(make_source, import_csv):
    # German Excel writes 4,91701E+12: the same mangled number, with a decimal comma.
    run = import_csv(make_source(), "email;phone;country\na@x.de;4,91701E+12;DE\n")

    assert run.status == "succeeded"
    record = SourceRecord.objects.get()
    assert "phone" not in record.attributes
    phone = Identity.objects.get(type="phone")
    assert (phone.raw_value, phone.key) == ("4,91701E+12", None)
    assert phone.flag == "scientific notation (a spreadsheet mangled this number)"


# --- re-import, report, rejected rows --------------------------------------------------------


def test_overlapping_export_updates_in_place_by_key_and_counts_unchanged(make_source, import_csv):
    source = make_source()
    import_csv(source, "customer_id,email,city\nK1,a@x.de,Bonn\nK2,b@x.de,Ulm\n")

    run = import_csv(source, "customer_id,email,city\nK2,b@x.de,Ulm\nK1,a@x.de,Köln\nK3,c@x.de,\n")

    assert (run.created_count, run.updated_count, run.unchanged_count) == (1, 1, 1)
    assert SourceRecord.objects.count() == 3
    assert SourceRecord.objects.get(external_key="K1").attributes["city"] == "Köln"


def test_chosen_key_columns_together_are_the_key_for_updates_in_place(make_source, import_csv):
    # Customer numbers are unique per store only: store + number is the key.
    source = make_source()
    mapping_save(
        source=source,
        specs=[
            FieldSpec("store", "trait:store", is_key=True),
            FieldSpec("number", "trait:number", is_key=True),
            FieldSpec("email", "email"),
            FieldSpec("city", "city"),
        ],
    )
    content = "store,number,email,city\nS1,007,a@x.de,Bonn\nS2,007,b@x.de,Ulm\na|b,c,c@x.de,\n"
    first = import_csv(source, content)

    again = import_csv(
        source,
        "store,number,email,city\nS2,007,b@x.de,Ulm\nS1,007,a@x.de,Köln\na,b|c,d@x.de,\n"
        "S3,,e@x.de,\n",
    )

    assert (first.created_count, first.rejected_count) == (3, 0)
    assert (again.created_count, again.updated_count, again.unchanged_count) == (2, 1, 1)
    cities = dict(SourceRecord.objects.values_list("external_key", "attributes__city"))
    assert cities["S1|007"] == "Köln"
    assert cities["S2|007"] == "Ulm"
    # A | inside a value is escaped: ("a|b", "c") and ("a", "b|c") are two customers.
    assert {"a\\|b|c", "a|b\\|c"} <= set(cities)
    # A row missing a part of the key falls back to its e-mail.
    assert "email:e@x.de" in cities


def test_rejected_rows_are_reported_by_reason_and_download_as_csv(make_source, import_csv):
    content = (
        "email,total_spent,country,first_name\n"
        "bad@@x.de,1,DE,Ann\n"
        "ok@x.de,1.5,DE,Bob\n"
        "c@x.de,1.234,50,DE,Cem\n"
        'd@x.de,abc,DE,"=Dora"\n'
    )

    run = import_csv(make_source(), content)

    assert (run.rows_done, run.created_count, run.rejected_count) == (4, 1, 3)
    assert run.rejected_reasons == {"invalid_email": 1, "invalid_number": 1, "extra_values": 1}
    lines = "".join(import_run_rejected_csv_lines(run=run)).lstrip("\ufeff")
    rows = list(csv.reader(io.StringIO(lines)))
    assert rows[0] == ["email", "total_spent", "country", "first_name", "row", "error"]
    assert [r[:5] for r in rows[1:]] == [
        ["bad@@x.de", "1", "DE", "Ann", "1"],
        ["c@x.de", "1.234", "50", "DE", "3"],
        ["d@x.de", "abc", "DE", "'=Dora", "4"],  # a formula is neutralised (CSV injection)
    ]
    assert rows[2][5] == (
        "the row has 1 more value(s) than the header has columns (extra values: Cem)"
    )
    assert rows[3][5] == "total_spent: 'abc' is not a number (decimal point, e.g. 1,234.50)"


@pytest.mark.parametrize(
    ("delimiter", "written"), [(";", ";"), ("\t", ","), ("|", ","), (",", ",")]
)
def test_rejected_rows_csv_keeps_a_semicolon_file_semicolon(
    make_source, import_csv, delimiter, written
):
    content = f"email{delimiter}total_spent\nbad@@x.de{delimiter}7\nok@x.de{delimiter}1\n"

    run = import_csv(make_source(), content)

    assert (run.delimiter, run.rejected_count) == (delimiter, 1)
    lines = "".join(import_run_rejected_csv_lines(run=run)).lstrip("\ufeff").splitlines()
    assert lines[0] == written.join(["email", "total_spent", "row", "error"])
    assert lines[1].startswith(written.join(["bad@@x.de", "7", "1", "email: not a valid"]))


def test_a_failing_batch_lands_its_rows_unapplied_and_fails_the_run(make_source, monkeypatch):
    def broken(**kwargs):
        raise RuntimeError("database went away")

    monkeypatch.setattr("profiles.services.imports.profiles_resolve", broken)
    run = ImportRun(source=make_source(), original_name="a.csv")
    run.file.save("a.csv", text_file("email\na@x.de\nb@x.de\n", "a.csv"), save=False)
    run.save()

    with pytest.raises(RuntimeError):
        from profiles.tasks import import_run_execute

        import_run_execute(run.pk)

    run.refresh_from_db()
    assert (run.status, run.error) == ("failed", "Unexpected error: RuntimeError")
    raws = RawRecord.objects.order_by("row_number")
    assert [(r.row_number, r.status, r.payload) for r in raws] == [
        (1, "pending", {"email": "a@x.de"}),
        (2, "pending", {"email": "b@x.de"}),
    ]
    assert raws[0].error == "not applied: the import failed (RuntimeError)"
    assert SourceRecord.objects.count() == 0


def test_batches_use_a_constant_number_of_queries(
    make_source, import_csv, django_assert_max_num_queries, monkeypatch
):
    monkeypatch.setattr("profiles.services.imports.BATCH_SIZE", 50)
    source = make_source()
    small = "customer_id,email\n" + "".join(f"K{i},u{i}@x.de\n" for i in range(50))
    big = "customer_id,email\n" + "".join(f"K{i},u{i}@x.de\n" for i in range(1000, 1250))

    with django_assert_max_num_queries(60) as one_batch:
        import_csv(source, small)
    per_batch = len(one_batch.captured_queries)
    with django_assert_max_num_queries(per_batch * 5 + 15):
        run = import_csv(source, big)

    assert run.created_count == 250


def test_scan_file_reports_rows_and_headers(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("a|b\n1|2\n\n3|4\n")

    fmt = scan_file(str(path))

    assert (fmt.delimiter, fmt.rows, fmt.headers) == ("|", 2, ["a", "b"])


def test_saved_mapping_keeps_locale_and_date_format(make_source):
    source = make_source()
    mapping_save(
        source=source,
        specs=[FieldSpec("Umsatz", "total_spent", number_locale="de", date_format="")],
    )

    assert list(FieldMapping.objects.values_list("source_field", "number_locale")) == [
        ("Umsatz", "de")
    ]
