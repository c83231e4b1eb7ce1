"""Calico's selector language: canonical forms, exact errors, evaluation, and hypothesis properties."""

from __future__ import annotations

import copy
import pickle
from collections.abc import Mapping

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bgpd.selector import (
    All,
    And,
    Compare,
    CompareOp,
    Global,
    Has,
    InSet,
    Kind,
    Node,
    Not,
    Or,
    Selector,
    SelectorError,
    parse,
    tokenize,
)

# (input, canonical form)
CANONICAL = [
    ("", "all()"),
    (" \t ", "all()"),
    ("global( )", "global()"),
    ('a=="b"', 'a == "b"'),
    ("a == 'b'", 'a == "b"'),
    ("a != '\"'", "a != '\"'"),
    ('a == "it\'s"', 'a == "it\'s"'),
    ("a startswith 'x'", 'a starts with "x"'),
    ("a starts \t with 'x'", 'a starts with "x"'),
    ("a endswith'x'", 'a ends with "x"'),
    ("a notin{}", "a not in {}"),
    ("a in {'b', \"a\", 'b',}", 'a in {"a", "b"}'),
    ("a in {'\"', \"'\"}", "a in {'\"', \"'\"}"),
    ("a == '' ", 'a == ""'),
    ("has( x.y/z-_1 )", "has(x.y/z-_1)"),
    ("contains contains 'contains'", 'contains contains "contains"'),
    ("in in {'in'}", 'in in {"in"}'),
    ("a == 'b' && c == 'd'", '(a == "b" && c == "d")'),
    ("a == 'b' || c == 'd' && has(e)", '(a == "b" || (c == "d" && has(e)))'),
    ("(a == 'b' || c == 'd') && has(e)", '((a == "b" || c == "d") && has(e))'),
    ("has(a) && has(b) && has(c)", "(has(a) && has(b) && has(c))"),
    ("has(a) && (has(b) && has(c))", "(has(a) && (has(b) && has(c)))"),
    ("((has(a)))", "has(a)"),
    ("!a == 'x'", '!a == "x"'),
    ("!!has(a)", "has(a)"),
    ("! ! ! has(a)", "!has(a)"),
    ("!(has(a) && !!!has(b))", "!(has(a) && !has(b))"),
    ("all() || global()", "(all() || global())"),
]

TERM = "expected a label, has(), all(), global(), '!' or '('"

# (input, exact error text): the column is where the offending token or character starts.
ERRORS = [
    ("a", "expected an operator after label 'a', found the end of the selector at column 2"),
    ("a b", "expected an operator after label 'a' at column 3"),
    ("a inf 'x'", "expected an operator after label 'a' at column 3"),
    ("a startsx with 'x'", "expected an operator after label 'a' at column 3"),
    ("a containsx 'v'", "expected an operator after label 'a' at column 3"),
    ("a == b", "expected a string literal, found label 'b' at column 6"),
    ("'b' == a", f'{TERM}, found string "b" at column 1'),
    ("a = 'b'", "expected '==' at column 3"),
    ("has(a) & has(b)", "expected '&&' at column 8"),
    ("has(a) | has(b)", "expected '||' at column 8"),
    ("a == 'b", "unterminated string at column 6"),
    ("a == \"b'", "unterminated string at column 6"),
    ("has (a)", "expected an operator after label 'has', found '(' at column 5"),
    ("has()", "expected a label inside has() at column 5"),
    ("has( a b)", "expected ')' to close 'has(' at column 8"),
    ("all(x)", "expected ')' to close 'all(' at column 5"),
    ("global(", "expected ')' to close 'global(' at column 8"),
    ("()", f"{TERM}, found ')' at column 2"),
    ("(has(a)", "expected ')', found the end of the selector at column 8"),
    ("has(a))", "expected '&&', '||' or the end of the selector, found ')' at column 7"),
    ("has(a) has(b)", "expected '&&', '||' or the end of the selector, found 'has(b)' at column 8"),
    ("!", f"{TERM}, found the end of the selector at column 2"),
    ("has(a) &&", f"{TERM}, found the end of the selector at column 10"),
    ("a in 'b'", "expected '{', found string \"b\" at column 6"),
    ("a in {'b' 'c'}", "expected ',' or '}', found string \"c\" at column 11"),
    ("a in {,}", "expected a string literal or '}', found ',' at column 7"),
    ("a in {'b',,}", "expected a string literal or '}', found ',' at column 11"),
    ("a in {'b'", "expected ',' or '}', found the end of the selector at column 10"),
    ("a == 'b'\n", "newline is not allowed at column 9"),
    ("has(a) &&\nhas(b)", "newline is not allowed at column 10"),
    ("a == 'b' && %", "unexpected character '%' at column 13"),
    ("a" * 513 + " == 'b'", "label longer than 512 characters at column 1"),
    ("has(" + "a" * 513 + ")", "label longer than 512 characters at column 5"),
]

# (selector, labels, expected match): the missing-label column of the evaluation table.
EVALUATION = [
    ("a == 'x'", {}, False),
    ("a != 'x'", {}, True),
    ("a in {'x'}", {}, False),
    ("a not in {'x'}", {}, True),
    ("a not in {}", {"a": "x"}, True),
    ("a in {}", {"a": "x"}, False),
    ("a contains ''", {}, False),
    ("a contains ''", {"a": ""}, True),
    ("a starts with ''", {}, False),
    ("a ends with ''", {"a": "x"}, True),
    ("a starts with 'ab'", {"a": "abc"}, True),
    ("a ends with 'bc'", {"a": "abc"}, True),
    ("a contains 'B'", {"a": "abc"}, False),
    ("has(a)", {"a": ""}, True),
    ("has(a)", {"A": "x"}, False),
    ("a == ''", {"a": ""}, True),
    ("global()", {}, True),
    ("!all()", {"a": "x"}, False),
    ("a == 'x' || b == 'y' && c == 'z'", {"a": "x"}, True),
    ("(a == 'x' || b == 'y') && c == 'z'", {"a": "x"}, False),
    ("!a == 'x' && has(a)", {"a": "y"}, True),
]


@pytest.mark.parametrize(("text", "canonical"), CANONICAL)
def test_canonical_form(text: str, canonical: str) -> None:
    selector = parse(text)
    assert str(selector) == canonical
    assert str(parse(canonical)) == canonical


@pytest.mark.parametrize(("text", "message"), ERRORS)
def test_syntax_error_text_and_column(text: str, message: str) -> None:
    with pytest.raises(SelectorError) as caught:
        parse(text)
    assert str(caught.value) == message
    assert message == f"{caught.value.message} at column {caught.value.column}"


@pytest.mark.parametrize(("text", "labels", "expected"), EVALUATION)
def test_evaluation(text: str, labels: dict[str, str], expected: bool) -> None:
    assert parse(text).matches(labels) is expected


def test_longest_label_is_accepted() -> None:
    label = "a" * 512
    assert parse(f"{label} == 'x'").matches({label: "x"})


def test_tokens_carry_kind_value_and_column() -> None:
    tokens = tokenize("a notin {'x',} || !has( b )")
    assert [(t.kind, t.value, t.column) for t in tokens] == [
        (Kind.LABEL, "a", 1),
        (Kind.NOT_IN, None, 3),
        (Kind.LBRACE, None, 9),
        (Kind.STRING, "x", 10),
        (Kind.COMMA, None, 13),
        (Kind.RBRACE, None, 14),
        (Kind.OR, None, 16),
        (Kind.NOT, None, 19),
        (Kind.HAS, "b", 20),
        (Kind.EOF, None, 28),
    ]


def test_the_ast_of_a_parsed_selector() -> None:
    assert parse("!a in {'y', 'x'} || has(b) && c startswith 'p'").root == Or(
        (
            Not(InSet("a", frozenset({"x", "y"}), negated=False)),
            And((Has("b"), Compare("c", CompareOp.STARTS_WITH, "p"))),
        )
    )


def test_selectors_are_values_equal_by_canonical_form() -> None:
    first, second = parse("a in {'x','y'}"), Selector(InSet("a", frozenset({"y", "x"}), negated=False))
    assert first == second
    assert hash(first) == hash(second)
    assert len({first, second, parse("!!a in {'y', 'x', 'x'}")}) == 1
    assert first != parse("a in {'x'}")
    assert first != 'a in {"x", "y"}'
    assert repr(first) == 'Selector(\'a in {"x", "y"}\')'


def test_selectors_are_immutable_and_copy_as_values() -> None:
    selector = parse("has(a)")
    with pytest.raises(AttributeError):
        selector.root = All()
    for clone in (copy.deepcopy(selector), pickle.loads(pickle.dumps(selector))):
        assert clone == selector
        assert clone.matches({"a": "x"})


# --------------------------------------------------------------------------------- properties

LABELS = ["a", "b", "x/y.z-_1", "in", "not", "contains", "has", "all", "starts"]
# Strings have no escapes: a value holds at most one of the two quote characters.
VALUES = st.one_of(
    st.text(alphabet="ab '", max_size=3),
    st.text(alphabet='ab "', max_size=3),
)
label_names = st.sampled_from(LABELS)

atoms: st.SearchStrategy[Node] = st.one_of(
    st.just(All()),
    st.just(Global()),
    st.builds(Has, label_names),
    st.builds(Compare, label_names, st.sampled_from(list(CompareOp)), VALUES),
    st.builds(InSet, label_names, st.frozensets(VALUES, max_size=3), st.booleans()),
)


def _extend(children: st.SearchStrategy[Node]) -> st.SearchStrategy[Node]:
    groups = st.lists(children, min_size=2, max_size=3).map(tuple)
    # The parser folds `!!x` to `x`, so a Not never wraps another Not.
    negated = children.filter(lambda node: not isinstance(node, Not)).map(Not)
    return st.one_of(negated, groups.map(And), groups.map(Or))


trees = st.recursive(atoms, _extend, max_leaves=8)
label_maps = st.dictionaries(label_names, st.sampled_from(["", "a", "ab", "b'", 'a"', " "]), max_size=4)


def naive_matches(node: Node, labels: Mapping[str, str]) -> bool:
    """The evaluation table of reference §3, written out case by case."""
    if isinstance(node, All | Global):
        return True
    if isinstance(node, Has):
        return node.label in labels
    if isinstance(node, Compare):
        if node.label not in labels:
            return node.op is CompareOp.NE
        value = labels[node.label]
        return {
            CompareOp.EQ: value == node.value,
            CompareOp.NE: value != node.value,
            CompareOp.CONTAINS: value.find(node.value) >= 0,
            CompareOp.STARTS_WITH: value.find(node.value) == 0,
            CompareOp.ENDS_WITH: len(value) >= len(node.value)
            and value.rfind(node.value) == len(value) - len(node.value),
        }[node.op]
    if isinstance(node, InSet):
        if node.label not in labels:
            return node.negated
        return (labels[node.label] in node.values) != node.negated
    if isinstance(node, Not):
        return not naive_matches(node.operand, labels)
    if isinstance(node, And):
        return all(naive_matches(operand, labels) for operand in node.operands)
    return any(naive_matches(operand, labels) for operand in node.operands)


@given(trees)
def test_canonical_form_is_a_fixed_point(tree: Node) -> None:
    text = str(Selector(tree))
    reparsed = parse(text)
    assert str(reparsed) == text
    assert reparsed == Selector(tree)
    assert parse(str(reparsed)) == reparsed


_SPELLINGS = {
    CompareOp.EQ: ["==", " =="],
    CompareOp.NE: ["!=", " != "],
    CompareOp.CONTAINS: [" contains ", " contains\t"],
    CompareOp.STARTS_WITH: [" starts with ", " startswith ", " starts \t with"],
    CompareOp.ENDS_WITH: [" ends with ", " endswith ", " ends  with"],
}


def noisy_text(node: Node, data: st.DataObject) -> str:
    """Any spelling of ``node`` the parser accepts: blanks, either quote, `!!`, spare parens, set noise."""
    draw = data.draw
    blank = draw(st.sampled_from(["", " ", "\t", "  "]))

    def string(value: str) -> str:
        if '"' in value or "'" in value:
            mark = "'" if '"' in value else '"'
        else:
            mark = draw(st.sampled_from(["'", '"']))
        return f"{mark}{value}{mark}"

    match node:
        case All() | Global():
            text = f"{'all' if isinstance(node, All) else 'global'}({blank})"
        case Has(label):
            text = f"has({blank}{label}{blank})"
        case Compare(label, op, value):
            text = f"{label}{draw(st.sampled_from(_SPELLINGS[op]))}{blank}{string(value)}"
        case InSet(label, values, negated):
            items = draw(st.permutations(sorted(values) * draw(st.integers(1, 2))))
            body = ",".join(f"{blank}{string(value)}" for value in items)
            comma = "," if draw(st.booleans()) and items else ""
            word = draw(st.sampled_from([" not in", " notin", " not \t in"])) if negated else " in"
            text = f"{label}{word}{blank}{{{body}{comma}}}"
        case Not(operand):
            text = f"!{blank}{noisy_text(operand, data)}"
        case And(operands) | Or(operands):
            joiner = " && " if isinstance(node, And) else f"{blank}||{blank}"
            return "(" + joiner.join(noisy_text(operand, data) for operand in operands) + ")"
    if draw(st.booleans()):
        text = f"({blank}{text}{blank})"
    return f"!!{text}" if draw(st.booleans()) else text


@given(trees, st.data())
def test_every_spelling_parses_to_the_same_selector(tree: Node, data: st.DataObject) -> None:
    text = f" {noisy_text(tree, data)} "
    assert parse(text) == Selector(tree)
    assert str(parse(text)) == str(Selector(tree))


@given(trees, st.lists(label_maps, min_size=1, max_size=4))
def test_compiled_evaluation_agrees_with_the_naive_table(tree: Node, maps: list[dict[str, str]]) -> None:
    selector = Selector(tree)
    reparsed = parse(str(selector))
    for labels in maps:
        expected = naive_matches(tree, labels)
        assert selector.matches(labels) is expected
        assert reparsed.matches(labels) is expected


@settings(max_examples=300)
@given(st.text(alphabet="ab()!&|=\"'{},% \t\nhasnotinl", max_size=20))
def test_any_text_parses_or_raises_a_located_selector_error(text: str) -> None:
    try:
        selector = parse(text)
    except SelectorError as error:
        assert 1 <= error.column <= len(text) + 1
    else:
        assert parse(str(selector)) == selector
