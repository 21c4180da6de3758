"""What the processor writes stays bounded whatever the business logic produces."""

from __future__ import annotations

from streamdesk_processor import item
from streamdesk_processor.bounds import ELLIPSIS, bounded_summary, head, tail
from streamdesk_processor.errors import BusinessError, InvalidRequestError, TransientError
from streamdesk_processor.processor import error_info


def test_head_keeps_the_start_and_tail_keeps_the_end() -> None:
    text = "".join(str(i % 10) for i in range(100))
    assert head(text, 10) == text[:9] + ELLIPSIS
    assert tail(text, 10) == ELLIPSIS + text[-9:]
    assert head("short", 10) == tail("short", 10) == "short"


def test_summary_is_a_bounded_map_of_strings() -> None:
    values = {f"k{i}": "v" * (item.MAX_RESULT_VALUE_CHARS * 2) for i in range(item.MAX_RESULT_KEYS + 10)}
    values["k0"] = {"nested": [1, 2]}  # type: ignore[assignment]
    summary = bounded_summary(values)
    assert list(summary) == [f"k{i}" for i in range(item.MAX_RESULT_KEYS)]
    assert summary["k0"] == '{"nested":[1,2]}'
    assert all(len(value) <= item.MAX_RESULT_VALUE_CHARS for value in summary.values())
    assert summary["k1"].endswith(ELLIPSIS)


def test_summary_drops_empty_keys_and_stringifies_numbers() -> None:
    assert bounded_summary({"": "x", "n": 3, "b": True}) == {"n": "3", "b": "true"}


def raise_and_catch(error: Exception) -> Exception:
    try:
        raise error
    except Exception as caught:
        return caught


def test_error_info_bounds_message_and_keeps_the_end_of_the_traceback() -> None:
    message = "m" * 10_000 + "THE-END"
    info = error_info(raise_and_catch(BusinessError(message)), "charge")
    assert info.type == "BusinessError"
    assert info.step == "charge"
    assert info.transient is False
    assert len(info.message) == item.MAX_ERROR_MESSAGE_CHARS
    assert info.message.startswith("mmm")
    assert len(info.traceback) == item.MAX_TRACEBACK_CHARS
    assert info.traceback.startswith(ELLIPSIS)
    assert info.traceback.rstrip().endswith("THE-END")


def test_error_types() -> None:
    assert error_info(raise_and_catch(TransientError("t")), "s").transient is True
    assert error_info(raise_and_catch(InvalidRequestError("bad")), "request").type == "InvalidRequest"
    unexpected = error_info(raise_and_catch(KeyError("oops")), "s")
    assert (unexpected.type, unexpected.transient) == ("KeyError", False)
    assert "KeyError" in unexpected.traceback
