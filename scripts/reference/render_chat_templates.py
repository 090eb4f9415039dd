#!/usr/bin/env python3
"""Reference renderings for the C++ chat-template interpreter (engine/src/chat).

Renders every template in tests/unit/chat/templates/ over a set of conversations,
plus a list of small language-feature templates, with Python jinja2 configured the
way Hugging Face transformers configures it (transformers/utils/chat_template_utils.py,
_compile_jinja_template):

    ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                  extensions=[AssistantTracker, jinja2.ext.loopcontrols])
    filters["tojson"]  = json.dumps(x, ensure_ascii=False, indent=indent,
                                    separators=separators, sort_keys=sort_keys)
    globals["raise_exception"] = raises jinja2.exceptions.TemplateError(message)
    globals["strftime_now"]    = datetime.now().strftime(format)

and, like apply_chat_template, passes messages, tools (None), documents (None),
add_generation_prompt and the tokenizer's special tokens (tokens that are None are
left out, as special_tokens_map does).

The C++ side receives contexts as nlohmann::json, whose objects iterate in sorted key
order; every context is therefore fed to Python with its keys sorted too, so both
sides see the same dicts.

Writes tests/unit/chat/expected.json. Usage: scripts/reference/render_chat_templates.py
"""

import json
import pathlib
import warnings
from datetime import datetime

import jinja2
import jinja2.ext
import jinja2.nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment

ROOT = pathlib.Path(__file__).resolve().parents[2]
CHAT_TESTS = ROOT / "tests" / "unit" / "chat"


class GenerationTag(jinja2.ext.Extension):
    """transformers' AssistantTracker with its tracker inactive: {% generation %} renders its body."""

    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(["name:endgeneration"], drop_needle=True)
        return jinja2.nodes.CallBlock(self.call_method("_generation_support"), [], [], body).set_lineno(lineno)

    @jinja2.pass_eval_context
    def _generation_support(self, context, caller):
        return caller()


# jinja2's generated Python for some constant subscripts triggers CPython's
# "object is not subscriptable" SyntaxWarning; the behaviour is what is under test.
warnings.filterwarnings("ignore", category=SyntaxWarning)


def make_environment():
    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    def strftime_now(format):
        return datetime.now().strftime(format)

    env = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=[GenerationTag, jinja2.ext.loopcontrols]
    )
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env


def sorted_keys(value):
    """The context as the C++ side sees it: nlohmann::json objects are key-sorted."""
    return json.loads(json.dumps(value, sort_keys=True, ensure_ascii=False))


def render(env, source, context):
    """Returns {"expected": text} or {"error": ..., "phase": ..., "raised": bool}."""
    try:
        template = env.from_string(source)
    except jinja2.exceptions.TemplateSyntaxError as e:
        return {"error": f"{type(e).__name__}: {e.message}", "phase": "compile", "raised": False}
    except SyntaxError as e:  # e.g. {% break %} outside a loop fails in jinja2's generated Python
        return {"error": f"{type(e).__name__}: {e.msg}", "phase": "compile", "raised": False}
    try:
        return {"expected": template.render(**sorted_keys(context))}
    except jinja2.exceptions.TemplateError as e:
        # raise_exception() raises the base TemplateError itself; jinja2's own errors
        # are subclasses (UndefinedError, SecurityError, TemplateRuntimeError, ...).
        raised = type(e) is jinja2.exceptions.TemplateError
        result = {"error": f"{type(e).__name__}: {e.message}", "phase": "render", "raised": raised}
        if raised:
            result["message"] = e.message
        return result
    except (TypeError, ValueError, ArithmeticError, LookupError, AttributeError) as e:
        return {"error": f"{type(e).__name__}: {e}", "phase": "render", "raised": False}


# ---------------------------------------------------------------- chat templates

# Special tokens each model's tokenizer passes to its template (None = not passed).
TEMPLATES = {
    "llama3_instruct": {"bos_token": "<|begin_of_text|>", "eos_token": "<|end_of_text|>"},
    "llama3_1_instruct": {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>"},
    "qwen2_instruct": {"bos_token": None, "eos_token": "<|im_end|>"},
    "qwen2_5_instruct": {"bos_token": None, "eos_token": "<|im_end|>"},
    "qwen3": {"bos_token": None, "eos_token": "<|im_end|>"},
    "phi3_mini_4k_instruct": {"bos_token": "<s>", "eos_token": "<|endoftext|>"},
}

SYSTEM = {"role": "system", "content": "You are a helpful assistant."}
USER = {"role": "user", "content": "What is the capital of France?"}
ASSISTANT = {"role": "assistant", "content": "The capital of France is Paris."}
USER2 = {"role": "user", "content": "And of Germany?"}

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_current_weather",
        "description": "Get the current weather in a given location",
        "parameters": {
            "type": "object",
            "properties": {
                "location": {"type": "string", "description": "The city and state, e.g. San Francisco, CA"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["location"],
        },
    },
}
TOOL_CALL = {
    "id": "call_1",
    "type": "function",
    "function": {"name": "get_current_weather", "arguments": {"location": "Paris, France", "unit": "celsius"}},
}

CONVERSATIONS = {
    "system_user": [SYSTEM, USER],
    "user_only": [USER],
    "multi_turn": [SYSTEM, USER, ASSISTANT, USER2],
    "multi_turn_no_system": [USER, ASSISTANT, USER2],
    "ends_with_assistant": [SYSTEM, USER, ASSISTANT],
    "quotes_and_escapes": [
        {"role": "system", "content": "Use 'single' and \"double\" quotes, a back\\slash and {{ braces }} {% tags %}."},
        {"role": "user", "content": "It's \"quoted\": '\\n' is not a newline; <b>&amp;</b>"},
    ],
    "newlines": [
        {"role": "user", "content": "line one\nline two\r\nline three\n\n"},
        {"role": "assistant", "content": "\nanswer\n\twith tab\n"},
        {"role": "user", "content": "last\n"},
    ],
    "unicode": [
        {"role": "system", "content": "Réponds en français. 日本語も話せます。"},
        {"role": "user", "content": "héllo wörld 你好 😀 — ½ ß İ Ω \u00a0nbsp\u2028sep"},
    ],
    "surrounding_whitespace": [
        {"role": "system", "content": "   padded system\t \n"},
        {"role": "user", "content": "\n\n  padded user  \n"},
        {"role": "assistant", "content": "  padded assistant  "},
        {"role": "user", "content": " \t "},
    ],
    "empty_content": [{"role": "user", "content": ""}],
    "consecutive_users": [USER, USER2],
}

TOOL_CONVERSATIONS = {
    "tool_round_trip": {
        "messages": [
            SYSTEM,
            {"role": "user", "content": "What's the weather in Paris?"},
            {"role": "assistant", "content": "", "tool_calls": [TOOL_CALL]},
            {"role": "tool", "content": "{\"temperature\": 22, \"unit\": \"celsius\"}"},
            {"role": "assistant", "content": "It is 22 °C in Paris."},
        ],
        "tools": [WEATHER_TOOL],
    },
    "tools_no_system": {
        "messages": [{"role": "user", "content": "Weather in Oslo and Stockholm?"}],
        "tools": [WEATHER_TOOL],
    },
}


def chat_template_cases(env):
    cases = []
    for name, tokens in TEMPLATES.items():
        source = (CHAT_TESTS / "templates" / f"{name}.jinja").read_text(encoding="utf-8")
        specials = {k: v for k, v in tokens.items() if v is not None}

        def add(case, context):
            result = render(env, source, context)
            cases.append({"template": name, "case": case, "context": sorted_keys(context), **result})

        for conv_name, messages in CONVERSATIONS.items():
            for gen in (True, False):
                add(f"{conv_name}/gen={gen}",
                    {"messages": messages, "tools": None, "documents": None, "add_generation_prompt": gen, **specials})
        if name in ("qwen2_5_instruct", "qwen3", "llama3_1_instruct"):
            for conv_name, conv in TOOL_CONVERSATIONS.items():
                add(conv_name, {"messages": conv["messages"], "tools": conv["tools"], "documents": None,
                                "add_generation_prompt": True, **specials})
        if name == "qwen3":
            thinking = [USER, {"role": "assistant", "content": "<think>\nStep 1.\nStep 2.\n</think>\n\nParis."}, USER2]
            for enable in (True, False):
                add(f"thinking/enable_thinking={enable}",
                    {"messages": thinking, "tools": None, "documents": None, "add_generation_prompt": True,
                     "enable_thinking": enable, **specials})
            add("reasoning_content_field",
                {"messages": [USER, {"role": "assistant", "content": "Paris.", "reasoning_content": "Recall."}, USER2,
                              {"role": "assistant", "content": "Berlin."}],
                 "tools": None, "documents": None, "add_generation_prompt": False, **specials})
            add("tool_response_first_user",
                {"messages": [{"role": "user", "content": "<tool_response>x</tool_response>"}],
                 "tools": None, "documents": None, "add_generation_prompt": True, **specials})
        if name == "llama3_1_instruct":
            # raise_exception paths of the official template.
            add("raise/tools_without_user_message",
                {"messages": [SYSTEM], "tools": [WEATHER_TOOL], "documents": None, "add_generation_prompt": True,
                 **specials})
            add("raise/two_tool_calls",
                {"messages": [USER, {"role": "assistant", "tool_calls": [TOOL_CALL, TOOL_CALL]}], "tools": None,
                 "documents": None, "add_generation_prompt": True, **specials})
            add("builtin_tools_ipython",
                {"messages": [USER, {"role": "assistant", "tool_calls": [
                    {"type": "function", "function": {"name": "brave_search", "arguments": {"query": "weather"}}}]},
                    {"role": "ipython", "content": {"result": "sunny"}}],
                 "builtin_tools": ["brave_search", "code_interpreter"], "tools": None, "documents": None,
                 "add_generation_prompt": True, "date_string": "01 Jan 2025", **specials})
            add("tools_in_system_message",
                {"messages": [SYSTEM, USER], "tools": [WEATHER_TOOL], "tools_in_user_message": False,
                 "documents": None, "add_generation_prompt": True, **specials})
        # No messages at all: every template indexes messages[0] or just loops; jinja2 decides.
        add("no_messages", {"messages": [], "tools": None, "documents": None, "add_generation_prompt": True, **specials})
    return cases


# ---------------------------------------------------------------- language features

FEATURE_CONTEXT = {
    "name": "World",
    "n": 7,
    "f": 2.5,
    "flag": True,
    "nothing": None,
    "items": [3, 1, 2],
    "words": ["b", "A", "a", "c"],
    "msgs": [
        {"role": "system", "content": "sys"},
        {"role": "user", "content": " hi "},
        {"role": "assistant", "content": "yo", "extra": {"k": [1, 2]}},
    ],
    "d": {"b": 2, "a": 1, "items": "shadowed"},
    "text": "  Hello, World!  ",
    "uni": "héllo wörld ß",
}

FEATURES = [
    # whitespace control, trim_blocks, lstrip_blocks
    ("ws_trim_blocks", "{% if true %}\nyes\n{% endif %}\nafter"),
    ("ws_lstrip_blocks", "a\n    {% if true %}\n    b\n    {% endif %}\nc"),
    ("ws_minus_both", "a   {%- if true -%}   b   {%- endif -%}   c"),
    ("ws_var_minus", "x \n {{- name -}} \n y"),
    ("ws_plus_disables", "  {%+ if true %}x{% endif +%}\n  y"),
    ("ws_comment", "a\n  {# note #}\nb {#- c -#} d"),
    ("ws_var_no_trim_blocks", "{{ name }}\n{{ n }}\n"),
    ("ws_trailing_newline_dropped", "x\n"),
    ("ws_two_trailing_newlines", "x\n\n"),
    ("ws_crlf", "a\r\n{% if true %}\r\nb\r\n{% endif %}\r\nc"),
    ("ws_tabs_lstrip", "\t\t{% if true %}t{% endif %}"),
    ("ws_lstrip_not_after_text", "text {% if true %}x{% endif %}"),
    ("ws_raw", "{% raw %}{{ not rendered }} {% if %}{% endraw %}\n{% raw -%}  a  {%- endraw %}!"),
    ("ws_minus_unicode_space", "a\u00a0\u2003{{- 'b' -}}\u3000c"),
    ("ws_comment_minus_start", "x  \n  {#- comment #}\ny"),
    # literals and output conversion
    ("out_scalars", "{{ none }} {{ true }} {{ false }} {{ 1 }} {{ -3 }} {{ 2.0 }} {{ 1e20 }} {{ 1.5e-5 }} {{ 0.1 + 0.2 }}"),
    ("out_containers", "{{ [1, 'a', none, true, 2.5] }} {{ (1,) }} {{ (1, 2) }} {{ {'k': 'v', 'n': [1]} }} {{ () }}"),
    ("out_string_repr", "{{ [\"it's\", 'a\"b', 'c\\'d\"', 'tab\\tnl\\n', 'é'] }}"),
    ("out_undefined", "[{{ missing }}][{{ d.missing }}][{{ msgs[9] }}]"),
    ("out_float_repr", "{{ 1e16 }} {{ 123456789012345678.0 }} {{ 1e-4 }} {{ -0.0 }} {{ 100.0 }} {{ 3.14159 }}"),
    ("literal_escapes", "{{ 'a\\tb\\x41\\u00e9\\101\\d\\\\' }}"),
    ("literal_concat", "{{ 'a' 'b' \"c\" }}"),
    ("literal_numbers", "{{ 0x1f }} {{ 0o17 }} {{ 0b101 }} {{ 1_000 }} {{ 1_0.5 }}"),
    ("print_tag", "{% print 'p' ~ n %}"),
    # arithmetic
    ("math_ints", "{{ 7 + 3 }} {{ 7 - 10 }} {{ 7 * 3 }} {{ 7 / 2 }} {{ 8 / 2 }} {{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % 3 }} {{ -7 % 3 }} {{ 7 % -3 }} {{ 2 ** 10 }} {{ 2 ** 3 ** 2 }} {{ 2 ** -1 }}"),
    ("math_floats", "{{ 7.5 // 2 }} {{ -7.5 // 2 }} {{ -7.5 % 2 }} {{ 5.0 % 0.3 }} {{ 2 ** 0.5 }} {{ f * 2 }} {{ true + 1 }} {{ 1 + 1.5 }}"),
    ("math_precedence", "{{ 1 + 2 * 3 - 4 / 2 }} {{ (1 + 2) * 3 }} {{ -2 ** 2 }} {{ - n + 1 }} {{ 10 - 2 - 3 }}"),
    ("math_strings", "{{ 'ab' * 3 }} {{ 3 * 'x' }} {{ [1] * 3 }} {{ 'a' + 'b' }} {{ [1] + [2] }} {{ 'x' * 0 }}|"),
    ("math_percent_format", "{{ '%s-%d-%5.2f-%r-%x' % ('a', 3, 2.5, 'b', 255) }} {{ '%(a)s' % {'a': 1} }} {{ '%05d|%-4s|' % (42, 'ab') }} {{ '%s' % [1] }} {{ '100%%' % () }}"),
    ("math_div_zero", "{{ 1 / 0 }}"),
    ("math_str_plus_int", "{{ 'a' + 1 }}"),
    ("math_undefined_plus", "{{ missing + 'a' }}"),
    ("concat_tilde", "{{ 'a' ~ 1 ~ none ~ true ~ missing ~ [1] ~ 2.0 }}"),
    # comparisons and logic
    ("cmp_basic", "{{ 1 == 1.0 }} {{ true == 1 }} {{ 'a' < 'b' }} {{ [1, 2] < [1, 3] }} {{ (1, 2) == [1, 2] }} {{ 1 != 2 }} {{ none == none }}"),
    ("cmp_chained", "{{ 1 < 2 < 3 }} {{ 3 > 2 > 2 }} {{ 1 <= 1 < 2 }}"),
    ("cmp_in", "{{ 'ell' in 'hello' }} {{ 2 in items }} {{ 'a' in d }} {{ 'z' not in d }} {{ 1 in [1.0] }} {{ 'x' in missing }}"),
    ("cmp_mixed_types", "{{ 1 < 'a' }}"),
    ("cmp_in_none", "{{ 'x' in nothing }}"),
    ("logic_values", "{{ 0 or 'x' }} {{ 'a' and 'b' }} {{ '' and 'b' }}|{{ none or [] }} {{ not 0 }} {{ not not 'x' }} {{ not missing }}"),
    ("logic_precedence", "{{ true or false and false }} {{ not true == false }} {{ not 1 in [2] }}"),
    ("cond_expr", "{{ 'y' if flag else 'n' }} {{ 'y' if nothing else 'n' }} [{{ 'x' if false }}] {{ 'a' if false else 'b' if true else 'c' }}"),
    ("truthiness", "{% for v in [0, 1, 0.0, '', 'x', [], [0], {}, none, true] %}{{ 'T' if v else 'F' }}{% endfor %}"),
    # attribute / subscript / slice
    ("access_basic", "{{ msgs[0].role }} {{ msgs[1]['content'] }} {{ msgs[-1].extra.k[1] }} {{ msgs.0.role }} {{ d['b'] }} {{ d.a }}"),
    ("access_method_shadows_key", "{{ d['items'] }} {{ d.items is defined }}"),
    ("access_missing_chain_error", "{{ d.missing.deeper }}"),
    ("access_undefined_attr_error", "{{ missing.attr }}"),
    ("access_slices", "{{ items[::-1] }} {{ items[1:] }} {{ items[:1] }} {{ items[::2] }} {{ items[5:1:-1] }} {{ 'hello'[-3:] }} {{ uni[1:4] }} {{ uni[::-1] }} {{ items[true] }}"),
    ("access_string_index", "{{ 'abc'[0] }} {{ 'abc'[-1] }} [{{ 'abc'[5] }}] {{ uni[1] }}"),
    ("access_private", "[{{ d.__class__ }}][{{ 'a'.__len__ }}]"),
    ("access_unsafe_attr_prints_empty", "[{{ items.append }}]"),
    ("access_unsafe_call", "{{ items.append(4) }}"),
    # statements
    ("if_elif_else", "{% for x in [1, 2, 3] %}{% if x == 1 %}one{% elif x == 2 %}two{% else %}many{% endif %},{% endfor %}"),
    ("for_loop_vars", "{% for x in items %}{{ loop.index }}{{ loop.index0 }}{{ loop.revindex }}{{ loop.revindex0 }}{{ loop.first }}{{ loop.last }}{{ loop.length }}{{ loop.depth }};{% endfor %}"),
    ("for_prev_next_cycle", "{% for x in items %}[{{ loop.previtem }}|{{ loop.nextitem }}|{{ loop.cycle('a', 'b') }}|{{ loop.changed(x > 1) }}]{% endfor %}"),
    ("for_else", "{% for x in [] %}x{% else %}empty{% endfor %} {% for x in items if x > 5 %}x{% else %}none>5{% endfor %}"),
    ("for_filter_loop", "{% for x in items if x > 1 %}{{ loop.index }}/{{ loop.length }}:{{ x }} {% endfor %}"),
    ("for_filter_sees_outer_loop", "{% for a in [1] %}{% for y in [2, 3] if loop.index == 1 %}{{ y }}{% endfor %}{% endfor %}"),
    ("for_unpack", "{% for k, v in d | dictsort %}{{ k }}={{ v }};{% endfor %} {% for a, (b, c) in [(1, (2, 3))] %}{{ a }}{{ b }}{{ c }}{% endfor %}"),
    ("for_dict_and_string", "{% for k in {'x': 1, 'y': 2} %}{{ k }}{% endfor %} {% for ch in 'héy' %}[{{ ch }}]{% endfor %}"),
    ("for_undefined_iterable", "{% for x in missing %}x{% else %}no items{% endfor %}"),
    ("for_break_continue", "{% for i in range(10) %}{% if i == 1 %}{% continue %}{% endif %}{% if i == 4 %}{% break %}{% endif %}{{ i }}{% endfor %}"),
    ("for_nested_loop_outer", "{% for a in [1, 2] %}{% set outer = loop %}{% for b in [3, 4] %}{{ outer.index }}{{ loop.index }} {% endfor %}{% endfor %}"),
    ("for_loop_repr", "{% for a in [1] %}{{ loop }}{% endfor %}"),
    ("for_int_error", "{% for x in 5 %}{% endfor %}"),
    ("scope_loop_body", "{% set x = 1 %}{% for i in [1, 2] %}{{ x }}{% set x = 2 %}{{ x }}{% endfor %}{{ x }}"),
    ("scope_loop_iteration", "{% for i in [1, 2] %}{% if i == 1 %}{% set y = 'a' %}{% endif %}[{{ y }}]{% endfor %}"),
    ("scope_if_leaks", "{% if true %}{% set z = 3 %}{% endif %}{{ z }}"),
    ("scope_for_else", "{% for x in [] %}{% else %}{% set y = 1 %}{{ y }}{% endfor %}[{{ y }}]"),
    ("set_tuple", "{% set a, b = [1, 2] %}{{ a }}{{ b }} {% set (c, d2), e = [(3, 4), 5] %}{{ c }}{{ d2 }}{{ e }}"),
    ("set_tuple_error", "{% set a, b = [1, 2, 3] %}"),
    ("set_block", "{% set x %}  inner {{ name }}  {% endset %}[{{ x }}] {% set y | trim | upper %}  shout  {% endset %}[{{ y }}]"),
    ("set_block_scope", "{% set x %}{% set inner = 1 %}a{% endset %}[{{ inner }}]"),
    ("namespace_basic", "{% set ns = namespace(a=1, b='x') %}{% set ns.a = ns.a + 1 %}{{ ns.a }}{{ ns.b }}{{ ns['a'] }}[{{ ns.z }}]{{ ns }}"),
    ("namespace_in_loop", "{% set ns = namespace(found=false, count=0) %}{% for m in msgs %}{% if m.role == 'user' %}{% set ns.found = true %}{% endif %}{% set ns.count = ns.count + 1 %}{% endfor %}{{ ns.found }} {{ ns.count }}"),
    ("namespace_from_dict", "{{ namespace({'a': 2}).a }} {{ namespace({'a': 2}, a=3).a }}"),
    ("namespace_assign_non_namespace", "{% set d2 = {} %}{% set d2.x = 1 %}"),
    ("with_block", "{% with a = 1, b = n %}{{ a }}{{ b }}{% set c = 3 %}{% endwith %}[{{ a }}{{ c }}]"),
    ("filter_block", "{% filter upper %}hello {{ name }}{% set q = 1 %}{% endfilter %}[{{ q }}]"),
    ("macro_basic", "{% macro greet(who, punct='!') %}Hi {{ who }}{{ punct }}{% endmacro %}{{ greet('A') }} {{ greet('B', '?') }} {{ greet(punct='.', who='C') }}"),
    ("macro_defaults_ref_params", "{% macro m(a, b=a) %}{{ a }}{{ b }}{% endmacro %}{{ m(1) }}{{ m(1, 2) }}"),
    ("macro_varargs_kwargs", "{% macro m(a) %}{{ a }}{{ varargs }}{{ kwargs }}{% endmacro %}{{ m(1, 2, 3, x=4) }}"),
    ("macro_too_many_args", "{% macro m(a) %}{{ a }}{% endmacro %}{{ m(1, 2) }}"),
    ("macro_missing_arg", "{% macro m(a, b) %}[{{ a }}|{{ b }}]{% endmacro %}{{ m(1) }}"),
    ("macro_late_binding", "{% set x = 5 %}{% macro m() %}{{ x }}{% endmacro %}{% set x = 6 %}{{ m() }}"),
    ("macro_repr", "{% macro m() %}{% endmacro %}{{ m }}"),
    ("macro_recursion", "{% macro fact(k) %}{% if k <= 1 %}1{% else %}{{ k * (fact(k - 1) | int) }}{% endif %}{% endmacro %}{{ fact(5) }}"),
    ("call_block", "{% macro wrap(tag) %}<{{ tag }}>{{ caller() }}</{{ tag }}>{% endmacro %}{% call wrap('b') %}body {{ name }}{% endcall %}"),
    ("call_block_args", "{% macro each(xs) %}{% for x in xs %}{{ caller(x) }}{% endfor %}{% endmacro %}{% call(v) each([1, 2]) %}<{{ v }}>{% endcall %}"),
    ("generation_tag", "{% generation %}gen {{ name }}{% set g = 1 %}{% endgeneration %}[{{ g }}]"),
    # tests
    ("tests_defined", "{{ name is defined }} {{ missing is defined }} {{ missing is undefined }} {{ d.zz is defined }} {{ nothing is none }} {{ nothing is not none }}"),
    ("tests_types", "{{ 'a' is string }} {{ d is mapping }} {{ items is sequence }} {{ items is iterable }} {{ 'ab' is iterable }} {{ 1 is number }} {{ true is number }} {{ 1.5 is float }} {{ 1 is integer }} {{ true is integer }} {{ true is boolean }}"),
    ("tests_undefined_types", "{{ missing is iterable }} {{ missing is sequence }} {{ missing is mapping }} {{ missing is string }} {{ missing is callable }} {{ missing is number }}"),
    ("tests_true_false", "{{ flag is true }} {{ flag is false }} {{ 1 is true }} {{ false is false }} {{ 0 is false }}"),
    ("tests_values", "{{ 5 is divisibleby 5 }} {{ 3 is odd }} {{ 4 is even }} {{ 'A' is upper }} {{ 'a' is lower }} {{ 1 is in [1] }} {{ 2 is gt 1 }} {{ 2 is ge 2 }} {{ 1 is eq 1.0 }} {{ 1 is ne 2 }} {{ 1 is lt 2 }} {{ 3 is le 2 }} {{ 'a' is equalto 'a' }} {{ 1 is sameas 1 }} {{ none is sameas none }}"),
    ("tests_names", "{{ 'tojson' is filter }} {{ 'nope' is filter }} {{ 'odd' is test }} {{ range is callable }} {{ name is callable }} {{ ('a'|e) is escaped }} {{ 'a' is escaped }}"),
    ("tests_negated_chain", "{{ name is not string or n is number }} {{ not name is string }}"),
    # filters
    ("filter_trim_length", "[{{ text | trim }}] {{ text | length }} {{ uni | count }} {{ items | length }} {{ d | length }} [{{ 'xxaxx' | trim('x') }}] [{{ ' \u00a0x\u2003' | trim }}]"),
    ("filter_case", "{{ name | lower }} {{ name | upper }} {{ 'hello world-foo(bar' | title }} {{ 'hELLO' | capitalize }} {{ uni | upper }} {{ 'ÉCOLE' | lower }}"),
    ("filter_replace", "{{ 'a b c' | replace(' ', '_') }} {{ 'aaa' | replace('a', 'b', 2) }} {{ 'ab' | replace('', '-') }}"),
    ("filter_join", "{{ items | join(',') }} {{ msgs | join('|', attribute='role') }} {{ 'abc' | join('.') }} {{ [1, none, 'x'] | join }}"),
    ("filter_first_last", "{{ items | first }} {{ items | last }} {{ 'ab' | first }} {{ 'ab' | last }} {{ d | first }} [{{ [] | first }}] [{{ missing | last }}]"),
    ("filter_default", "{{ missing | default('dflt') }} {{ nothing | default('x') }} {{ nothing | default('x', true) }} {{ '' | d('y', true) }} [{{ missing | default }}] {{ name | d('z') }}"),
    ("filter_list_items", "{{ 'abc' | list }} {{ d | list }} {{ d | items | list }} {{ missing | list }} {{ missing | items | list }}"),
    ("filter_string", "{{ 3 | string + 'x' }} {{ nothing | string }} {{ items | string }} {{ flag | string }}"),
    ("filter_int_float", "{{ '42' | int }} {{ '42.7' | int }} {{ 'x' | int }} {{ 'x' | int(5) }} {{ 3.9 | int }} {{ true | int }} {{ ' 12 ' | int }} {{ '1_000' | int }} {{ '0x1f' | int(base=16) }} {{ '0b11' | int(base=0) }} {{ 1 | float }} {{ '3.5' | float }} {{ 'a' | float }} {{ 'inf' | float }}"),
    ("filter_abs_round", "{{ -7 | abs }} {{ -2.5 | abs }} {{ 5 | round }} {{ 2.5 | round }} {{ 3.5 | round }} {{ 2.675 | round(2) }} {{ 2.1 | round(0, 'ceil') }} {{ 2.9 | round(1, 'floor') }} {{ 1234 | round(-2) }} {{ 1250 | round(-2) }}"),
    ("filter_sort_unique", "{{ items | sort }} {{ words | sort }} {{ words | sort(case_sensitive=true) }} {{ items | sort(reverse=true) }} {{ msgs | sort(attribute='role') | map(attribute='role') | list }} {{ words | unique | list }} {{ [1, 2, 1] | unique | list }}"),
    ("filter_reverse", "{{ items | reverse | list }} {{ 'abc' | reverse }} {{ uni | reverse }}"),
    ("filter_min_max_sum", "{{ items | min }} {{ items | max }} {{ words | min }} {{ words | max(case_sensitive=true) }} {{ items | sum }} {{ msgs | map(attribute='content') | map('length') | sum }} [{{ [] | max }}]"),
    ("filter_map", "{{ items | map('string') | list }} {{ msgs | map(attribute='role') | join(',') }} {{ [[1, 2]] | map('first') | list }} {{ ['a'] | map('replace', 'a', 'b') | list }} {{ msgs | map(attribute='missing', default='-') | list }} {{ [[1, 2]] | map(attribute='0') | list }}"),
    ("filter_select", "{{ [0, 1, none, '', 'a'] | select | list }} {{ items | select('odd') | list }} {{ items | reject('odd') | list }} {{ items | select('gt', 1) | list }} {{ msgs | selectattr('role', 'equalto', 'user') | map(attribute='content') | list }} {{ msgs | rejectattr('role', 'eq', 'user') | map(attribute='role') | list }} {{ msgs | selectattr('extra') | list | length }}"),
    ("filter_dictsort", "{{ {'b': 2, 'a': 1} | dictsort }} {{ {'b': 2, 'a': 1, 'c': 0} | dictsort(by='value', reverse=true) }} {{ {'B': 1, 'a': 2} | dictsort }} {{ {'B': 1, 'a': 2} | dictsort(true) }}"),
    ("filter_tojson", "{{ d | tojson }} {{ msgs[2] | tojson }} {{ items | tojson(indent=2) }} {{ {'a': [], 'b': {}} | tojson(indent=2) }} {{ 'é\"\\n<' | tojson }} {{ nothing | tojson }} {{ [1.0, 1e100, true] | tojson }}"),
    ("filter_tojson_options", "{{ {'b': 1, 'a': [1, 2]} | tojson(indent='\t', sort_keys=true) }} {{ {'a': [1]} | tojson(separators=(',', ':')) }} {{ 'é😀' | tojson(ensure_ascii=true) }} {{ (1, 2) | tojson }} {{ {1: 2, 'x': none} | tojson }} {{ d | tojson(indent=0) }}"),
    ("filter_tojson_undefined", "{{ missing | tojson }}"),
    ("filter_escape_safe", "{{ '<a href=\"x\">&\\'</a>' | e }} {{ '<' | escape | escape }} {{ '<' | e + '<' }} {{ '<' + '<' | e }} {{ ('<' | safe) ~ '<' }} {{ ['<', '<' | safe] | join }} {{ '<' | safe | upper }} {{ ('<' | e).replace('&', 'x') }} {{ '<' | forceescape }}"),
    ("filter_indent", "{{ 'x\ny' | indent(2) }}|{{ 'x\n\ny' | indent(2, true, true) }}|{{ 'x\ny\n' | indent }}|{{ 'a\nb' | indent('> ') }}"),
    ("filter_center_truncate_wordcount", "[{{ 'ab' | center(7) }}] {{ 'The quick brown fox jumps' | truncate(12) }} {{ 'The quick brown fox jumps' | truncate(12, true) }} {{ 'short' | truncate(10) }} {{ 'one two  three' | wordcount }}"),
    ("filter_format", "{{ '%s=%d' | format('n', 3) }} {{ '%(a)s!' | format(a='kw') }}"),
    ("filter_attr", "{{ d | attr('a') }}|{{ msgs[0] | attr('role') }}|{{ (d | attr('keys'))() | list }}"),
    ("filter_unknown", "{{ 1 | no_such_filter }}"),
    # found by differential fuzzing against jinja2
    ("filter_empty_input_skips_arg_checks", "{{ missing | map | list }} {{ [] | map(attribtue='x') | list }} {{ false | select('gt', 0) | list }} {{ none | rejectattr('x') | list }}"),
    ("filter_int_fallbacks", "{{ '0b11' | int(base=missing) }} {{ 'infinity' | int }} {{ 'nan' | int(7) }} {{ '-0x10' | int(base=0) }}"),
    ("filter_float_undefined", "{{ missing | float }}"),
    ("filter_sort_reverse_type", "{{ items | sort(reverse=missing) }}"),
    ("test_extra_argument", "{{ 'a' is lower per }}"),
    ("namespace_undefined_positional", "{{ namespace(missing).x }}"),
    ("slice_undefined_bound", "{{ 'abc'[missing:] }}"),
    ("slice_of_dict", "{{ d[1:] }}"),
    ("slice_of_int", "{{ n[1:] }}"),
    ("undefined_dunder_attribute", "[{{ missing.__class__ }}]"),
    # map/select/... return generators: always truthy, single use, no len()
    ("generator_truthy", "{{ 'T' if ([] | select) else 'F' }} {{ 'T' if (msgs | selectattr('role', 'eq', 'nobody')) else 'F' }} {{ 'T' if (msgs | selectattr('role', 'eq', 'nobody') | list) else 'F' }} {{ 'T' if (missing | map('x')) else 'F' }}"),
    ("generator_single_use", "{% set g = items | select('odd') %}{{ g | list }}{{ g | list }} {% set h = items | map('string') %}{{ h | first }}{{ h | list }}"),
    ("generator_in_consumes", "{% set g = items | map('string') %}{{ '1' in g }} {{ g | list }} {{ 'x' in g }}"),
    ("generator_len_error", "{{ items | select | length }}"),
    ("generator_last_error", "{{ items | select | last }}"),
    ("generator_tojson_error", "{{ items | select | tojson }}"),
    ("generator_errors_are_deferred", "{{ 'T' if (n | rejectattr('role')) else 'F' }} {{ 'T' if ([1] | map) else 'F' }} {{ name | items | float }} {% set g = [1, 'a'] | map('upper') %}{{ 'T' if g else 'F' }}"),
    ("generator_deferred_error_raised_on_use", "{{ [1] | map | list }}"),
    ("generator_map_bad_kwarg", "{{ msgs | map(attribute='role', bogus=1) | list }}"),
    ("str_title_sharp_s", "{{ 'ßa straße'.title() }} {{ 'ßa' | capitalize }} {{ 'ßa' | title }}"),
    ("filter_indent_non_string", "{{ items | indent }}"),
    ("filter_truncate_non_string", "{{ items | truncate(5) }} {{ 'abcdefghijklmnop' | truncate(10) }}"),
    ("percent_format_undefined", "[{{ 'ab' % missing }}][{{ '%s!' % missing }}]"),
    ("constant_slice_folds_to_undefined", "[{{ (true)[1:] }}][{{ (1)[::-1] | length }}][{{ ({})[1:] }}][{{ ((not 'x') | string)[1:] }}]"),
    ("variable_slice_error", "{{ flag[1:] }}"),
    ("constant_slice_in_if_is_an_error", "{% if (true)[1:] %}y{% endif %}"),
    ("constant_folding_inside_larger_expressions", "{% if (true)[1:] is none %}folded{% endif %} {% if ((1)[::-1] | length) == 0 %}len0{% endif %} {{ n + ((true)[1:] | length) }}"),
    ("constant_slice_zero_step_still_fails", "{{ ['x'[::0], 1] }}"),
    ("constant_folding_short_circuits", "[{{ (not [] or ('').replace('a', 'b'))[::-1] }}][{{ ((n.x)[0] if (not {})[::-1] else -3 | string) }}]"),
    ("constant_slice_of_folded_undefined", "{{ ((2.5)[-1])[1:] }}"),
    ("generator_loop", "{% for x in items | select('gt', 1) %}{{ loop.index }}/{{ loop.length }}={{ x }} {% endfor %}"),
    ("dict_views", "{{ d.items() }} {{ d.keys() }} {{ d.values() }} {{ 'a' in d.keys() }} {{ d.keys() | length }} {{ d.keys() | last }} {{ d.values() | first }} [{{ d.keys()[0] }}] {{ 'T' if {}.keys() else 'F' }}"),
    ("reverse_iterator", "{% set r = items | reverse %}{{ r | list }}{{ r | list }} {{ 'T' if ([] | reverse) else 'F' }} {{ d | reverse | list }} {{ (items | select) | reverse }}"),
    ("test_unknown", "{{ 1 is no_such_test }}"),
    ("filter_unknown_in_if_is_deferred", "{% if false %}{{ 1 | no_such_filter }}{% else %}{{ (2 is no_such_test) if false }}{% endif %}ok"),
    ("filter_unknown_in_if_test", "{% if 1 | no_such_filter %}{% endif %}"),
    ("filter_unknown_in_loop_in_if", "{% if false %}{% for x in [1] %}{{ x | no_such_filter }}{% endfor %}{% endif %}"),
    ("filter_mixed_dictsort_error", "{{ d | dictsort(by='value') }}"),
    # string methods
    ("str_strip", "[{{ text.strip() }}] [{{ text.lstrip() }}] [{{ text.rstrip() }}] [{{ 'xxaxx'.strip('x') }}] [{{ '\n\nx\n'.lstrip('\n') }}] [{{ 'ab\n'.rstrip('\n') }}]"),
    ("str_split", "{{ 'a b  c'.split() }} {{ 'a,b,,c'.split(',') }} {{ 'a-b-c'.split('-', 1) }} {{ 'a-b-c'.rsplit('-', 1) }} {{ '  a b  '.split(None, 1) }} {{ ''.split() }} {{ ''.split(',') }} {{ 'x</think>y</think>z'.split('</think>') }} {{ 'l1\nl2\r\nl3'.splitlines() }}"),
    ("str_predicates", "{{ 'abc'.startswith('ab') }} {{ 'abc'.startswith(('x', 'a')) }} {{ 'abc'.endswith('bc') }} {{ 'abc'.endswith('b', 0, 2) }} {{ '123'.isdigit() }} {{ 'ab'.isalpha() }} {{ ' '.isspace() }} {{ 'AB'.isupper() }} {{ 'ab'.islower() }} {{ ''.isdigit() }}"),
    ("str_case_methods", "{{ 'hELLO wORLD'.title() }} {{ \"they're bill's\".title() }} {{ 'abc'.upper() }} {{ 'ABC'.lower() }} {{ 'émile'.capitalize() }} {{ 'aBc'.swapcase() }} {{ 'ß'.upper() }}"),
    ("str_search", "{{ 'hello'.find('l') }} {{ 'hello'.rfind('l') }} {{ 'hello'.find('z') }} {{ 'hello'.index('e') }} {{ 'hello'.count('l') }} {{ 'héllo'.find('l') }} {{ 'a.b.c'.replace('.', '/') }} {{ 'a.b.c'.replace('.', '/', 1) }}"),
    ("str_misc", "{{ '-'.join(['a', 'b']) }} {{ 'k=v=w'.partition('=') }} {{ 'k=v=w'.rpartition('=') }} {{ 'prefix_x'.removeprefix('prefix_') }} {{ 'x.txt'.removesuffix('.txt') }} [{{ 'ab'.ljust(4) }}] [{{ 'ab'.rjust(4, '*') }}] [{{ 'ab'.center(5) }}] {{ '42'.zfill(5) }} {{ '-4'.zfill(4) }}"),
    ("str_index_error", "{{ 'abc'.index('z') }}"),
    ("str_join_type_error", "{{ ','.join([1, 2]) }}"),
    # dict and list methods
    ("dict_methods", "{{ d.get('a') }} {{ d.get('zz') }} {{ d.get('zz', 5) }} {{ d.keys() | list }} {{ d.values() | list }} {% for k, v in d.items() %}{{ k }}{{ v }}{% endfor %} {{ d.copy() == d }}"),
    ("list_methods", "{{ items.index(2) }} {{ items.count(3) }} {{ (1, 2, 1).count(1) }}"),
    ("dict_literal_and_equality", "{{ {'a': 1, 'b': 2} == {'b': 2, 'a': 1} }} {{ {'a': 1}['a'] }} {{ {1: 'int', 'x': 2}[1] }} {{ {true: 'b'}[1] }}"),
    # globals
    ("global_range", "{{ range(3) | list }} {{ range(1, 10, 3) | list }} {{ range(5, 0, -2) | list }} {{ range(0) | list }}"),
    ("global_range_too_big", "{{ range(100001) | length }}"),
    ("global_dict_joiner", "{{ dict(a=1, b=2) }} {% set j = joiner('|') %}{% for i in items %}{{ j() }}{{ i }}{% endfor %}"),
    ("global_raise", "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}"),
    ("global_raise_in_branch", "{% for m in msgs %}{% if m.role == 'assistant' and loop.first %}{{ raise_exception('no') }}{% endif %}{% endfor %}ok"),
    # syntax errors (compile phase)
    ("syntax_unclosed_block", "{% if true %}x"),
    ("syntax_unknown_tag", "{% frobnicate %}"),
    ("syntax_bad_expression", "{{ 1 + }}"),
    ("syntax_unclosed_string", "{{ 'abc }}"),
    ("syntax_unbalanced", "{{ (1 }}"),
    ("syntax_break_outside_loop", "{% break %}"),
    ("syntax_unclosed_comment", "{# never closed"),
    ("syntax_chained_is", "{{ 1 is number is number }}"),
    ("syntax_assign_const", "{% set true = 1 %}"),
    ("syntax_extends", "{% extends 'base.html' %}"),
]


def feature_cases(env):
    cases = []
    for name, source in FEATURES:
        result = render(env, source, FEATURE_CONTEXT)
        cases.append({"name": name, "source": source, **result})
    return cases


def main():
    env = make_environment()
    out = {
        "generator": "scripts/reference/render_chat_templates.py",
        "jinja2_version": jinja2.__version__,
        "feature_context": sorted_keys(FEATURE_CONTEXT),
        "chat_templates": chat_template_cases(env),
        "features": feature_cases(env),
    }
    path = CHAT_TESTS / "expected.json"
    path.write_text(json.dumps(out, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    n_err = sum("error" in c for c in out["chat_templates"] + out["features"])
    print(f"wrote {path.relative_to(ROOT)}: {len(out['chat_templates'])} chat-template cases, "
          f"{len(out['features'])} feature cases ({n_err} expected errors)")


if __name__ == "__main__":
    main()
