"""Velocity as API Gateway runs it: the semantics the template relies on, pinned one by one."""

from __future__ import annotations

import json
from typing import Any

import pytest

from backend.local.vtl import VelocityTemplate, VtlError, render
from backend.local.vtl_java import velocity_str
from backend.local.vtl_objects import UTIL, RequestParams, VtlInput, escape_javascript

# The template's idiom for embedding a string in JSON (see infra/template.yaml).
EMBED = '{"s": "$util.escapeJavaScript($input.body).replaceAll("\\\\\'", "\'")"}'


def ns(
    body: str = "", context: dict[str, Any] | None = None, params: RequestParams | None = None
) -> dict[str, Any]:
    return {"input": VtlInput(body, params), "util": UTIL, "context": context or {}}


@pytest.mark.parametrize(
    ("text", "escaped"),
    [
        ('say "hi"', 'say \\"hi\\"'),
        ("it's", "it\\'s"),
        ("a\\b", "a\\\\b"),
        ("line1\nline2\r\n", "line1\\nline2\\r\\n"),
        ("tab\there", "tab\\there"),
        ("\b\f", "\\b\\f"),
        ("\x01\x1f", "\\u0001\\u001F"),
        ("$x #y", "$x #y"),
        ("a/b", "a\\/b"),
        ("é", "\\u00E9"),
        ("€", "\\u20AC"),
        ("😀", "\\uD83D\\uDE00"),
        ("\x7f", "\x7f"),
    ],
)
def test_escape_javascript_matches_commons_lang(text: str, escaped: str) -> None:
    assert escape_javascript(text) == escaped
    assert render("$util.escapeJavaScript($input.body)", ns(text)) == escaped


def test_escape_javascript_of_null_is_null() -> None:
    assert escape_javascript(None) is None


def test_escaped_apostrophe_is_not_json_without_the_replace_all() -> None:
    plain = render('{"s": "$util.escapeJavaScript($input.body)"}', ns("it's"))
    with pytest.raises(json.JSONDecodeError):
        json.loads(plain)


@pytest.mark.parametrize(
    "body",
    [
        '{"q": "say \\"hi\\"", "a": "it\'s", "b": "back\\\\slash"}',
        "new\nline\ttab\r\n",
        "$dollar #hash ## #* not a comment *# $!quiet ${x}",
        "slash / and \\/ and \\\\'",
        "non-ASCII é ß 漢字 and emoji 😀🎉",
        '{"nested": {"list": [1, 2.5, true, null, {"deep": "x"}]}}',
        "\x00\x01 control",
        "",
    ],
)
def test_embedding_idiom_round_trips_exactly(body: str) -> None:
    rendered = render(EMBED, ns(body))
    assert json.loads(rendered) == {"s": body}


def test_string_literals_keep_backslashes_as_velocity_does() -> None:
    # Velocity 1.7 processes no backslash escapes in literals: "\\'" is backslash, backslash, quote.
    assert render("""#set($r = "\\\\'")$r""", ns()) == "\\\\'"
    assert render("""#set($r = '\\n')$r""", ns()) == "\\n"
    # ... so as a Java regex it matches one backslash followed by a quote.
    assert render("""$input.body.replaceAll("\\\\'", "'")""", ns("a\\'b")) == "a'b"


def test_doubled_quotes_and_unicode_escapes_in_literals() -> None:
    assert render('#set($s = "say ""hi""")$s', ns()) == 'say "hi"'
    assert render("#set($s = 'it''s')$s", ns()) == "it's"
    assert render('#set($s = "\\u00e9")$s', ns()) == "é"


def test_replace_all_uses_java_regex_and_replacement_syntax() -> None:
    assert render("""$input.body.replaceAll("(\\w+)@(\\w+)", "$2 at $1")""", ns("me@host")) == "host at me"
    assert render("""$input.body.replaceAll("a+", "\\$")""", ns("baaad")) == "b$d"
    assert render("""$input.body.replaceFirst("o", "0")""", ns("foo")) == "f0o"
    assert render("""$input.body.replace(".", "!")""", ns("a.b.c")) == "a!b!c"


def test_java_string_methods() -> None:
    body = "Hello, World"
    assert render('$input.body.contains("World")', ns(body)) == "true"
    assert render('$input.body.matches("Hello")', ns(body)) == "false"  # matches() is a full match
    assert render('$input.body.matches("Hello.*")', ns(body)) == "true"
    assert render("$input.body.length()", ns(body)) == "12"
    assert render("$input.body.toUpperCase()", ns(body)) == "HELLO, WORLD"
    assert render("$input.body.substring(7)", ns(body)) == "World"
    assert render('$input.body.split(", ").size()', ns(body)) == "2"
    assert render('$input.body.startsWith("He")', ns(body)) == "true"
    assert render("$input.body.isEmpty()", ns(body)) == "false"


def test_integer_arithmetic_is_javas() -> None:
    assert render("#set($x = 7 / 2)$x", ns()) == "3"
    assert render("#set($x = -7 / 2)$x", ns()) == "-3"  # truncates toward zero, not floor
    assert render("#set($x = -7 % 3)$x", ns()) == "-1"  # the dividend's sign
    assert render("#set($x = 7 % 3)$x", ns()) == "1"
    assert render("#set($x = 2 + 3 * 4)$x", ns()) == "14"
    context = {"requestTimeEpoch": 1_795_762_320_123}
    template = "#set($day = $context.requestTimeEpoch / 86400000)#set($shard = $context.requestTimeEpoch % 4)"
    rendered = render(template + "$day:$shard", ns(context=context))
    assert rendered == f"{1_795_762_320_123 // 86_400_000}:{1_795_762_320_123 % 4}" == "20784:3"


def test_division_by_zero_is_null_and_set_keeps_the_old_value() -> None:
    assert render("#set($x = 1)#set($x = 5 / 0)$x", ns()) == "1"


def test_set_with_null_keeps_the_previous_value() -> None:
    assert render("#set($x = 'a')#set($x = $input.path('$.missing'))$x", ns("{}")) == "a"


def test_plus_concatenates_strings() -> None:
    assert render('#set($s = "n=" + 5)$s', ns()) == "n=5"


def test_foreach_with_has_next_over_a_key_set() -> None:
    body = json.dumps({"m": {"a": {"S": "1"}, "b": {"S": "2"}, "c": {"S": "3"}}})
    template = (
        "#set($m = $input.path('$.m'))"
        '#foreach($k in $m.keySet())"$k": "$m.get($k).S"#if($foreach.hasNext), #end#end'
    )
    assert render(template, ns(body)) == '"a": "1", "b": "2", "c": "3"'


def test_foreach_over_a_map_iterates_its_values() -> None:
    assert render("#foreach($v in $input.path('$'))$v#end", ns('{"a": "x", "b": "y"}')) == "xy"


def test_input_path_gives_maps_and_lists() -> None:
    body = json.dumps({"Item": {"id": {"S": "abc"}, "tags": {"L": [{"S": "t1"}, {"S": "t2"}]}}})
    template = (
        "#set($item = $input.path('$.Item'))"
        "$item.id.S|$item.size()|$item.tags.L.size()|$item.tags.L.get(1).S|$item.containsKey('id')"
    )
    assert render(template, ns(body)) == "abc|2|2|t2|true"
    assert render("$input.path('$.Item.tags.L[0].S')", ns(body)) == "t1"
    assert render("$input.path(\"$['Item']['id']['S']\")", ns(body)) == "abc"


def test_input_json_gives_json_text() -> None:
    body = '{"a": {"b": [1, "x", true]}, "s": "q\\"uote"}'
    assert json.loads(render("$input.json('$.a')", ns(body))) == {"b": [1, "x", True]}
    assert render("$input.json('$.s')", ns(body)) == '"q\\"uote"'
    assert json.loads(render("$input.json('$')", ns(body))) == json.loads(body)


def test_input_params_search_path_then_query_then_header() -> None:
    params = RequestParams(
        path={"id": "from-path"}, querystring={"id": "from-query", "q": "1"}, header={"X-Trace": "t-1"}
    )
    assert render("$input.params('id')", ns(params=params)) == "from-path"
    assert render("$input.params('q')", ns(params=params)) == "1"
    assert render("$input.params('x-trace')", ns(params=params)) == "t-1"
    assert render("[$input.params('absent')]", ns(params=params)) == "[]"
    assert render("$input.params().querystring.q", ns(params=params)) == "1"


def test_quiet_references_and_unresolved_references() -> None:
    assert render("[$!nothing]", ns()) == "[]"
    assert render("[$nothing]", ns()) == "[$nothing]"  # Velocity prints what it cannot resolve
    assert render("[$input.path('$.missing')]", ns("{}")) == "[$input.path('$.missing')]"
    # The template's idiom: quiet references inside an interpolated string literal.
    template = """#set($msg = "$!input.path('$.message')$!input.path('$.Message')")[$msg]"""
    assert render(template, ns('{"Message": "Item size"}')) == "[Item size]"
    assert render(template, ns("{}")) == "[]"


def test_velocity_truthiness_and_equality() -> None:
    assert render('#if("")empty is true#end', ns()) == "empty is true"  # Velocity 1.7, unlike Python
    assert render("#if($missing)yes#{else}no#end", ns()) == "no"
    assert render("#if(!$missing)absent#end", ns()) == "absent"
    assert render('#if("$!missing" == "")blank#end', ns()) == "blank"
    assert render("#set($n = 5)#if($n == 5 && $n > 4)ok#end", ns()) == "ok"
    assert render('#set($n = 5)#if($n == "5")same text#end', ns()) == "same text"


def test_values_render_as_java_would() -> None:
    assert render("$input.path('$.t')|$input.path('$.m')", ns('{"t": true, "m": {"k": [1, "v"]}}')) == (
        "true|{k=[1, v]}"
    )
    assert velocity_str(None) == ""


def test_response_override_status_is_set_on_the_context() -> None:
    context: dict[str, Any] = {"responseOverride": {"status": None, "header": {}}}
    out = render('#set($context.responseOverride.status = 413){"m": 1}', ns(context=context))
    assert out == '{"m": 1}'
    assert context["responseOverride"]["status"] == 413
    render('#set($context.responseOverride.header.X_Retry = "1")', ns(context=context))
    assert context["responseOverride"]["header"] == {"X_Retry": "1"}


def test_context_values_and_hash_text_pass_through() -> None:
    template = '"ProjectionExpression": "id, #s", "k": {"#s": "status"}, "id": "$context.extendedRequestId"'
    out = render(template, ns(context={"extendedRequestId": "x1"}))
    assert out == '"ProjectionExpression": "id, #s", "k": {"#s": "status"}, "id": "x1"'


def test_util_helpers() -> None:
    assert render("$util.urlEncode('a b&c~*')", ns()) == "a+b%26c%7E*"
    assert render("$util.urlDecode('a+b%26c')", ns()) == "a b&c"
    assert render("$util.base64Encode('hé')", ns()) == "aMOp"
    assert render("$util.base64Decode('aMOp')", ns()) == "hé"
    assert render("$util.parseJson($input.body).a.get(0)", ns('{"a": ["x"]}')) == "x"


def test_a_template_compiles_once_and_renders_many_times() -> None:
    template = VelocityTemplate("#set($x = $context.n * 2)$x", "twice")
    assert [template.render(ns(context={"n": n})) for n in (1, 2, 3)] == ["2", "4", "6"]


def test_syntax_and_runtime_errors_raise_vtl_error() -> None:
    with pytest.raises(VtlError):
        VelocityTemplate("#if($x", "broken")
    with pytest.raises(VtlError):
        render("$input.path('$..deep')", ns("{}"))


def test_the_airspeed_package_itself_is_left_alone() -> None:
    import airspeed

    # The corrections live in a private copy: the installed module still behaves like airspeed.
    assert airspeed.Template('#set($x = "\\\\\'")$x').merge({}) == "\\'"
    assert render('#set($x = "\\\\\'")$x', ns()) == "\\\\'"


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("#if(false)\nA\n#else\nB\n#end\n", "B\n"),
        ("#if(false)\nA\n#else  \nB\n#end\n", "B\n"),
        ("#if(true)\nA\n#else\nB\n#end\n", "A\n"),
        ("#if(false)\nA\n#elseif(true)\nC\n#else\nB\n#end\n", "C\n"),
    ],
)
def test_an_else_line_leaves_no_blank_line(source: str, expected: str) -> None:
    """Velocity 1.7 takes the rest of an #else line with the directive (as for #if and #end), so an
    API answer rendered from an #else branch does not start with a blank line."""
    assert render(source, {}) == expected
