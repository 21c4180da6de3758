"""RequestStore against DynamoDB Local: ranges, open states, paging, search, detail, export, errors."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from streamdesk_processor.item import (
    CREATED_AT,
    ERROR,
    ID,
    MS_PER_DAY,
    REQUEST,
    STATE_BUCKET,
    TIME_BUCKET,
    Status,
)

from backend.local.dynamodb_local import free_port
from backend.settings import Settings, load_settings
from backend.store.calls import StoreUnavailable
from backend.store.models import Page, RequestFilter, RequestSummary
from backend.store.reader import RequestStore
from tests.seed import HTML, error_map, make_item, seed_every_state, write_items

NOW = int(time.time() * 1000)
SHARDS = 4


@pytest.fixture()
def store(settings: Settings) -> RequestStore:
    assert settings.index_shards == SHARDS  # the seed writes with the template's shard count
    return RequestStore(settings)


@pytest.fixture()
def every_state(ddb: Any, table_name: str) -> dict[str, list[str]]:
    return seed_every_state(ddb, table_name, NOW, shards=SHARDS)


def ids(items: list[RequestSummary]) -> list[str]:
    return [s.id for s in items]


def all_pages(store: RequestStore, flt: RequestFilter, size: int) -> list[Page]:
    pages = [store.list_requests(flt, size)]
    while pages[-1].next_token is not None:
        pages.append(store.list_requests(flt, size, pages[-1].next_token))
        assert len(pages) < 1_000
    return pages


def plain_items(
    count: int, start: int, step: int, status: str = Status.SUCCEEDED, **extra: Any
) -> list[dict]:
    """``count`` items created every ``step`` ms from ``start`` on (so across all shards)."""
    return [
        make_item(id=f"i{n:04d}", status=status, created_at=start + n * step, shards=SHARDS, **extra)
        for n in range(count)
    ]


# ------------------------------------------------------------------------------------ window
def test_window_returns_exactly_the_range_across_shards_and_a_day_boundary(
    store: RequestStore, ddb: Any, table_name: str
) -> None:
    midnight = (NOW // MS_PER_DAY - 3) * MS_PER_DAY
    since, until = midnight - 10_000, midnight + 10_000
    stamps = [since - 1, since, since + 1, midnight - 1, midnight, midnight + 1, until - 1, until, until + 1]
    stamps += list(range(since + 3, until - 3, 997))  # plenty more, every shard on both days
    items = [
        make_item(id=f"t{stamp}", status=Status.SUCCEEDED, created_at=stamp, shards=SHARDS)
        for stamp in stamps
    ]
    write_items(ddb, table_name, items)
    inside = sorted((s for s in stamps if since <= s <= until), reverse=True)
    assert {s % SHARDS for s in inside if s < midnight} == set(range(SHARDS))
    assert {s % SHARDS for s in inside if s >= midnight} == set(range(SHARDS))

    found = store.read_window(since, until)[0]
    assert ids(found) == [f"t{s}" for s in inside]  # newest first, nothing outside, nothing missing
    assert [s.created_at for s in found] == inside

    items_read = store.read_window(since, until)[1]
    assert items_read == len(inside)  # a query per partition, no scan


def test_window_until_defaults_to_now(store: RequestStore, ddb: Any, table_name: str) -> None:
    now = int(time.time() * 1000)
    write_items(ddb, table_name, plain_items(3, now - 3_000, 1_000))
    write_items(ddb, table_name, [make_item(id="future", status=Status.PENDING, created_at=now + 3_600_000)])
    assert ids(store.read_window(now - 60_000)[0]) == ["i0002", "i0001", "i0000"]


# ------------------------------------------------------------------------------- open states
def test_open_requests_by_state(store: RequestStore, every_state: dict[str, list[str]]) -> None:
    failed = store.open_requests([Status.FAILED])
    assert sorted(ids(failed)) == sorted(every_state["failed"] + every_state["html"])
    assert all(s.status == Status.FAILED and s.error_message for s in failed)

    pending = store.open_requests([Status.PENDING])
    assert sorted(ids(pending)) == sorted(every_state["pending"] + every_state["stuck_pending"])
    processing = store.open_requests([Status.PROCESSING])
    assert sorted(ids(processing)) == sorted(every_state["processing"] + every_state["stuck_processing"])

    everything = store.open_requests()
    assert sorted(ids(everything)) == sorted(ids(failed) + ids(pending) + ids(processing))
    created = [s.created_at or 0 for s in everything]
    assert created == sorted(created, reverse=True)


def test_open_requests_since_and_whatever_the_age(store: RequestStore, ddb: Any, table_name: str) -> None:
    old = NOW - 30 * MS_PER_DAY
    write_items(
        ddb,
        table_name,
        [
            make_item(id="old", status=Status.FAILED, created_at=old, error=error_map("x")),
            make_item(id="new", status=Status.FAILED, created_at=NOW - 1_000, error=error_map("y")),
            make_item(id="ok", status=Status.SUCCEEDED, created_at=NOW - 2_000),
        ],
    )
    assert ids(store.open_requests([Status.FAILED])) == ["new", "old"]
    assert ids(store.open_requests([Status.FAILED], since_ms=NOW - 60_000)) == ["new"]
    with pytest.raises(ValueError, match="not open"):
        store.open_requests([Status.SUCCEEDED])


# ------------------------------------------------------------------------------------ paging
@pytest.mark.parametrize("page_size", [1, 7, 50, 200])
def test_paging_newest_first_without_duplicates_or_gaps(
    store: RequestStore, ddb: Any, table_name: str, page_size: int
) -> None:
    start = NOW - 3 * 3_600_000
    write_items(ddb, table_name, plain_items(120, start, 61_001))  # 2 hours, every shard
    expected = [f"i{n:04d}" for n in reversed(range(120))]

    pages = all_pages(store, RequestFilter(since_ms=start, until_ms=NOW), page_size)
    for page in pages[:-1]:
        assert len(page.items) == page_size
    assert 1 <= len(pages[-1].items) <= page_size  # no empty last page
    assert [i for page in pages for i in ids(page.items)] == expected


def test_default_range_is_the_last_24_hours(store: RequestStore, ddb: Any, table_name: str) -> None:
    write_items(ddb, table_name, [make_item(id="recent", status=Status.SUCCEEDED, created_at=NOW - 1_000)])
    write_items(
        ddb, table_name, [make_item(id="older", status=Status.SUCCEEDED, created_at=NOW - MS_PER_DAY - 1)]
    )
    assert ids(store.list_requests(RequestFilter(), 10).items) == ["recent"]


def test_a_page_reads_about_what_it_shows(store: RequestStore, ddb: Any, table_name: str) -> None:
    start = NOW - 2 * 3_600_000
    write_items(ddb, table_name, plain_items(400, start, 15_001))
    page = store.list_requests(RequestFilter(since_ms=start, until_ms=NOW), 20)
    assert len(page.items) == 20
    assert page.examined <= 20 + SHARDS * 10  # each shard's query reads a chunk, never the whole range
    second = store.list_requests(RequestFilter(since_ms=start, until_ms=NOW), 20, page.next_token)
    assert second.examined <= 20 + SHARDS * 10
    assert set(ids(page.items)).isdisjoint(ids(second.items))


def test_paging_over_several_days_reads_newest_days_first(
    store: RequestStore, ddb: Any, table_name: str
) -> None:
    start = NOW - 5 * MS_PER_DAY
    write_items(ddb, table_name, plain_items(100, start, MS_PER_DAY // 20 + 7))  # 20 a day
    flt = RequestFilter(since_ms=start, until_ms=NOW)
    page = store.list_requests(flt, 5)
    assert ids(page.items) == [f"i{n:04d}" for n in range(99, 94, -1)]
    assert page.examined < 40  # the older days were not read
    everything = [i for p in all_pages(store, flt, 9) for i in ids(p.items)]
    assert everything == [f"i{n:04d}" for n in reversed(range(100))]


def test_multi_state_filter_on_the_time_index(store: RequestStore, every_state: dict[str, list[str]]) -> None:
    flt = RequestFilter(states=frozenset({Status.SUCCEEDED, Status.FAILED}))
    found = [i for p in all_pages(store, flt, 4) for i in ids(p.items)]
    expected = every_state["succeeded"] + every_state["expiring"] + every_state["expired"]
    expected += every_state["failed"] + every_state["html"]
    assert sorted(found) == sorted(expected)
    assert len(found) == len(set(found))


def test_open_states_filter_uses_every_open_request(
    store: RequestStore, every_state: dict[str, list[str]]
) -> None:
    flt = RequestFilter(states=frozenset({Status.PENDING, Status.FAILED}))
    pages = all_pages(store, flt, 3)
    found = [s for p in pages for s in p.items]
    expected = (
        every_state["pending"] + every_state["stuck_pending"] + every_state["failed"] + every_state["html"]
    )
    assert sorted(ids(found)) == sorted(expected)
    created = [s.created_at or 0 for s in found]
    assert created == sorted(created, reverse=True)


def test_unknown_state_finds_malformed_items(store: RequestStore, every_state: dict[str, list[str]]) -> None:
    found = store.list_requests(RequestFilter(states=frozenset({"UNKNOWN"})), 10).items
    assert ids(found) == ["malformed-0", "malformed-1"]  # malformed-2 has no createdAt: in no index
    by_id = {s.id: s for s in found}
    assert by_id["malformed-0"].status == "" and "status" in by_id["malformed-0"].malformed
    assert by_id["malformed-1"].status == "WEIRD"
    assert set(by_id["malformed-1"].malformed) >= {"status", "attempts"}
    assert by_id["malformed-1"].attempts == 0


def test_bad_filters_and_tokens_are_refused(store: RequestStore, every_state: dict[str, list[str]]) -> None:
    with pytest.raises(ValueError, match="unknown states"):
        store.list_requests(RequestFilter(states=frozenset({"DONE"})), 5)
    token = store.list_requests(RequestFilter(), 2).next_token
    assert token is not None
    with pytest.raises(ValueError, match="another filter"):
        store.list_requests(RequestFilter(text="x"), 2, token)
    with pytest.raises(ValueError, match="malformed"):
        store.list_requests(RequestFilter(), 2, "not-a-token!")


def test_id_lookup(store: RequestStore, every_state: dict[str, list[str]]) -> None:
    page = store.list_requests(RequestFilter(request_id="failed-1", states=frozenset({Status.PENDING})), 10)
    assert ids(page.items) == ["failed-1"]
    assert page.items[0].error_message == "gateway timeout"
    assert page.next_token is None
    assert store.list_requests(RequestFilter(request_id="nope"), 10).items == []
    # an item in no index is still found by id
    assert ids(store.list_requests(RequestFilter(request_id="malformed-2"), 10).items) == ["malformed-2"]


# -------------------------------------------------------------------------------------- search
def test_text_search_in_body_and_error_case_insensitive(
    store: RequestStore, every_state: dict[str, list[str]]
) -> None:
    def search(text: str, **kw: Any) -> list[str]:
        return [i for p in all_pages(store, RequestFilter(text=text, **kw), 10) for i in ids(p.items)]

    assert search("CARD Declined") == ["failed-0"]  # error message
    assert search("Failed-2") == ["failed-2"]  # body
    assert search(HTML.upper()) == ["html-0"]  # both
    assert sorted(search("expiring-")) == ["expiring-0", "expiring-1"]
    assert search("expiring-", states=frozenset({Status.FAILED})) == []
    assert search("no such words anywhere") == []


def test_text_search_pages_over_many_candidates(store: RequestStore, ddb: Any, table_name: str) -> None:
    start = NOW - 3_600_000
    items = []
    for n in range(90):
        body = json.dumps({"order": n, "note": "Needle here" if n % 3 == 0 else "hay"})
        items.append(
            make_item(id=f"i{n:04d}", status=Status.SUCCEEDED, created_at=start + n * 30_011, body=body)
        )
    write_items(ddb, table_name, items)
    flt = RequestFilter(since_ms=start, until_ms=NOW, text="needle")
    pages = all_pages(store, flt, 4)
    found = [i for p in pages for i in ids(p.items)]
    assert found == [f"i{n:04d}" for n in reversed(range(0, 90, 3))]
    assert all(len(p.items) == 4 for p in pages[:-2])


def test_lists_never_read_bodies_but_get_does(store: RequestStore, every_state: dict[str, list[str]]) -> None:
    """What DynamoDB is asked for, seen on the wire: list reads never name the request attribute."""
    calls: list[tuple[str, dict[str, Any]]] = []

    def record(params: dict[str, Any], model: Any, **_: Any) -> None:
        calls.append((model.name, params))

    store.client.meta.events.register("before-parameter-build.dynamodb", record)
    try:
        store.list_requests(RequestFilter(), 50)
        store.list_requests(RequestFilter(states=frozenset({"FAILED"})), 50)
        store.list_requests(RequestFilter(request_id="pending-0"), 50)
        store.read_window(NOW - 3_600_000, NOW)[0]
        list_calls = list(calls)
        calls.clear()
        detail = store.get("pending-0")
    finally:
        store.client.meta.events.unregister("before-parameter-build.dynamodb", record)
    assert {name for name, _ in list_calls} == {"Query", "GetItem"}
    for _name, params in list_calls:
        projection = params.get("ProjectionExpression")
        if projection is None:
            # Index queries return the index's projection, which holds no body (see the template).
            assert params.get("IndexName") in ("byTime", "byState"), params
            continue
        named = {
            params.get("ExpressionAttributeNames", {}).get(p.strip(), p.strip())
            for p in projection.split(",")
        }
        assert REQUEST not in named, params
    assert [name for name, _ in calls] == ["GetItem"] and "ProjectionExpression" not in calls[0][1]
    assert detail is not None and detail.body is not None and "pending-0" in detail.body


# -------------------------------------------------------------------------------------- detail
def test_get_returns_every_attribute(store: RequestStore, every_state: dict[str, list[str]]) -> None:
    detail = store.get("failed-1")
    assert detail is not None
    assert detail.summary.status == Status.FAILED
    assert detail.summary.attempts == 4
    assert detail.summary.malformed == ()
    assert detail.body == json.dumps({"order": 1, "customer": "failed-1", "note": ""})
    assert detail.error is not None
    assert detail.error["message"] == "gateway timeout"
    assert detail.error["transient"] is True
    assert "Traceback" in detail.error["traceback"]
    assert detail.steps == {"validate": {"at": detail.summary.started_at, "attempt": 1}}
    attrs = detail.attributes
    assert attrs[ID] == "failed-1"
    assert isinstance(attrs[CREATED_AT], int)
    assert attrs[TIME_BUCKET].endswith(f":{attrs[CREATED_AT] % SHARDS}")
    assert attrs[STATE_BUCKET] == f"FAILED:{attrs[CREATED_AT] % SHARDS}"
    assert attrs[REQUEST] == detail.body
    assert attrs[ERROR] == detail.error

    ok = store.get("succeeded-0")
    assert ok is not None and ok.result == {"receipt": "r-succeeded-0"} and ok.error is None
    assert ok.summary.ttl is not None and ok.summary.ttl > NOW // 1000
    assert store.get("missing") is None


def test_malformed_items_never_raise(store: RequestStore, every_state: dict[str, list[str]]) -> None:
    weird = store.get("malformed-1")
    assert weird is not None
    assert set(weird.summary.malformed) == {"status", "attempts", "error"}
    assert weird.error is None and weird.attributes[ERROR] == "something broke"
    no_created = store.get("malformed-2")
    assert no_created is not None
    assert no_created.summary.created_at is None
    assert "createdAt" in no_created.summary.malformed


# -------------------------------------------------------------------------------------- export
def test_export_follows_the_filter_with_full_items(
    store: RequestStore, every_state: dict[str, list[str]]
) -> None:
    failures = list(store.export(RequestFilter(states=frozenset({Status.FAILED}))))
    assert sorted(d.summary.id for d in failures) == sorted(every_state["failed"] + every_state["html"])
    assert all(d.body and d.error and d.error["traceback"] for d in failures)
    created = [d.summary.created_at or 0 for d in failures]
    assert created == sorted(created, reverse=True)

    one = list(store.export(RequestFilter(request_id="expired-0")))
    assert [d.summary.id for d in one] == ["expired-0"]
    searched = list(store.export(RequestFilter(since_ms=NOW - 3_600_000, until_ms=NOW, text="declined")))
    assert [d.summary.id for d in searched] == ["failed-0"]


def test_export_without_any_narrowing_reads_what_the_list_shows_and_never_scans(
    store: RequestStore, every_state: dict[str, list[str]]
) -> None:
    """Whoever asks, an export with no filter covers the list's default range (the last 24 hours),
    through the indexes: a Scan would read the whole table (on AWS: a bill that grows with the table)."""
    calls: list[str] = []
    store.client.meta.events.register("before-call.dynamodb.*", lambda model, **_: calls.append(model.name))
    everything = list(store.export(RequestFilter()))
    listed = [s.id for p in all_pages(store, RequestFilter(), 50) for s in p.items]
    assert [d.summary.id for d in everything] == listed
    assert listed and len(listed) < sum(len(group) for group in every_state.values())  # older ones left out
    assert "Scan" not in calls and "Query" in calls
    assert [d.summary.id for d in store.export(RequestFilter(text="<SCRIPT>"))] == ["html-0"]


# ------------------------------------------------------------------------------------- the table
def test_table_info(store: RequestStore, settings: Settings, every_state: dict[str, list[str]]) -> None:
    info = store.table_info()
    assert info.name == settings.table
    assert info.status == "ACTIVE"
    assert info.stream_enabled is True
    assert info.stream_view_type == "NEW_AND_OLD_IMAGES"
    assert info.ttl_status in ("ENABLED", "ENABLING")
    assert info.ttl_attribute == "ttl"
    # DynamoDB refreshes ItemCount about every six hours, DynamoDB Local at once: all 22 seeded items.
    assert info.item_count == sum(len(ids) for ids in every_state.values())
    assert info.latest_stream_arn and info.latest_stream_arn.startswith("arn:aws:dynamodb:")


# ----------------------------------------------------------------------------------------- errors
def test_unreachable_dynamodb_is_store_unavailable(tmp_path: Any) -> None:
    port = free_port()  # nothing listens there
    settings = load_settings(
        dynamodb_port=port, table="streamdesk-requests", data_dir=tmp_path, time_index_shards=4
    )
    store = RequestStore(settings)
    with pytest.raises(StoreUnavailable, match=f"DynamoDB at http://127.0.0.1:{port} is unreachable"):
        store.read_window(NOW - 60_000, NOW)[0]
    with pytest.raises(StoreUnavailable):
        store.table_info()


def test_missing_table_is_store_unavailable(dynamodb_endpoint: str, settings: Settings) -> None:
    missing = settings.model_copy(update={"table": "no-such-table"})
    store = RequestStore(missing)
    with pytest.raises(StoreUnavailable, match="table no-such-table does not exist"):
        store.list_requests(RequestFilter(), 10)
    with pytest.raises(StoreUnavailable, match="does not exist"):
        store.get("x")


def test_table_without_the_indexes_is_store_unavailable(ddb: Any, settings: Settings) -> None:
    bare = f"{settings.table}-bare"
    ddb.create_table(
        TableName=bare,
        AttributeDefinitions=[{"AttributeName": ID, "AttributeType": "S"}],
        KeySchema=[{"AttributeName": ID, "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )
    try:
        store = RequestStore(settings.model_copy(update={"table": bare}))
        with pytest.raises(StoreUnavailable, match="lacks the dashboard's indexes"):
            store.read_window(NOW - 60_000, NOW)[0]
    finally:
        ddb.delete_table(TableName=bare)


def test_an_id_no_request_can_have_is_simply_not_found(settings: Settings) -> None:
    store = RequestStore(settings)
    for impossible in ("x" * 2049, ""):
        assert store.get(impossible) is None  # not a ValidationException reaching the page
    assert store.list_requests(RequestFilter(request_id="x" * 3000), 10).items == []


def test_has_any_sees_a_request_of_any_age(settings: Settings, ddb: Any, table_name: str) -> None:
    store = RequestStore(settings)
    assert store.has_any() is False
    # Weeks old: outside every default list range, still "the table is not empty".
    write_items(
        ddb, table_name, [make_item(id="old", status=Status.SUCCEEDED, created_at=NOW - 30 * 86_400_000)]
    )
    assert store.has_any() is True


def test_statuses_reads_only_ids_and_statuses(store: RequestStore, every_state: dict[str, list[str]]) -> None:
    calls: list[dict[str, Any]] = []
    store.client.meta.events.register(
        "before-parameter-build.dynamodb.BatchGetItem", lambda params, **_: calls.append(params)
    )
    wanted = [every_state["failed"][0], every_state["succeeded"][0], "no-such-id"]
    assert store.statuses(wanted) == {wanted[0]: "FAILED", wanted[1]: "SUCCEEDED"}
    (request,) = calls[0]["RequestItems"].values()
    names = {
        request["ExpressionAttributeNames"].get(p.strip(), p.strip())
        for p in request["ProjectionExpression"].split(",")
    }
    assert names == {"id", "status"}
