"""Calico's label-selector language: tokenizer, parser, evaluator and canonical printer.

Follows libcalico-go/lib/selector at HEAD (reference/calico-semantics.md §3). A selector is parsed once
into a small AST of frozen dataclasses, which is then compiled to nested closures: resolve matches
every selector against every node's labels, so ``matches`` must cost a few dict lookups, not a tree walk.
"""

from __future__ import annotations

import enum
import functools
import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import NoReturn, assert_never

MAX_LABEL_LENGTH = 512
_BLANKS = " \t"  # the only whitespace: a newline is a syntax error at HEAD
_LABEL = re.compile(r"[A-Za-z0-9_./-]+")


class SelectorError(ValueError):
    """A syntax error; ``column`` is the 1-based column where parsing failed."""

    def __init__(self, message: str, column: int) -> None:
        super().__init__(f"{message} at column {column}")
        self.message = message
        self.column = column


# ------------------------------------------------------------------------------------------ tokens


class Kind(enum.Enum):
    """Token kinds; the values are Calico's names for them, as the conformance tables spell them."""

    LABEL = "TokLabel"
    STRING = "TokStringLiteral"
    LBRACE = "TokLBrace"
    RBRACE = "TokRBrace"
    COMMA = "TokComma"
    EQ = "TokEq"
    NE = "TokNe"
    IN = "TokIn"
    NOT = "TokNot"
    NOT_IN = "TokNotIn"
    CONTAINS = "TokContains"
    STARTS_WITH = "TokStartsWith"
    ENDS_WITH = "TokEndsWith"
    ALL = "TokAll"
    HAS = "TokHas"
    LPAREN = "TokLParen"
    RPAREN = "TokRParen"
    AND = "TokAnd"
    OR = "TokOr"
    GLOBAL = "TokGlobal"
    EOF = "TokEOF"


@dataclass(frozen=True, slots=True)
class Token:
    kind: Kind
    value: str | None  # the label of LABEL and HAS, the content of STRING; None for the others
    column: int  # 1-based column of the token's first character


# Single characters that are a token on their own, and the two-character tokens.
_SINGLE = {"(": Kind.LPAREN, ")": Kind.RPAREN, "{": Kind.LBRACE, "}": Kind.RBRACE, ",": Kind.COMMA}
_DOUBLE = {"==": Kind.EQ, "!=": Kind.NE, "&&": Kind.AND, "||": Kind.OR}
# Operator words, tried only right after a label; the words of a pair may be separated by blanks or not.
_OPERATOR_WORDS = (
    (("contains",), Kind.CONTAINS),
    (("starts", "with"), Kind.STARTS_WITH),
    (("ends", "with"), Kind.ENDS_WITH),
    (("not", "in"), Kind.NOT_IN),
    (("in",), Kind.IN),
)
_FUNCTIONS = (("all(", Kind.ALL), ("global(", Kind.GLOBAL))


def tokenize(text: str) -> list[Token]:
    """Split ``text`` into tokens, ending with an EOF token; raise SelectorError on a lexical error."""
    tokens: list[Token] = []
    pos = _skip_blanks(text, 0)
    while pos < len(text):
        previous = tokens[-1] if tokens else None
        token, pos = _next_token(text, pos, previous)
        tokens.append(token)
        pos = _skip_blanks(text, pos)
    tokens.append(Token(Kind.EOF, None, len(text) + 1))
    return tokens


def _next_token(text: str, pos: int, previous: Token | None) -> tuple[Token, int]:
    char, column = text[pos], pos + 1
    if char == "\n":
        raise SelectorError("newline is not allowed", column)
    if char in _SINGLE:
        return Token(_SINGLE[char], None, column), pos + 1
    if text[pos : pos + 2] in _DOUBLE:
        return Token(_DOUBLE[text[pos : pos + 2]], None, column), pos + 2
    if char == "!":
        return Token(Kind.NOT, None, column), pos + 1
    if char in "=&|":
        raise SelectorError(f"expected '{char * 2}'", column)
    if char in "\"'":
        end = text.find(char, pos + 1)  # no escapes: the string runs to the next matching quote
        if end < 0:
            raise SelectorError("unterminated string", column)
        return Token(Kind.STRING, text[pos + 1 : end], column), end + 1
    if previous is not None and previous.kind is Kind.LABEL:
        return _operator(text, pos, previous.value)
    if text.startswith("has(", pos):
        return _has(text, pos)
    for spelling, kind in _FUNCTIONS:
        if text.startswith(spelling, pos):
            close = _skip_blanks(text, pos + len(spelling))
            _expect_close(text, close, spelling)
            return Token(kind, None, column), close + 1
    label, end = _label(text, pos)
    return Token(Kind.LABEL, label, column), end


def _operator(text: str, pos: int, label: str | None) -> tuple[Token, int]:
    for words, kind in _OPERATOR_WORDS:
        end = _match_words(text, pos, words)
        if end is not None:
            return Token(kind, None, pos + 1), end
    raise SelectorError(f"expected an operator after label {label!r}", pos + 1)


def _match_words(text: str, pos: int, words: tuple[str, ...]) -> int | None:
    """End of ``words`` at ``pos`` when they are there and end at a word boundary, else None."""
    for index, word in enumerate(words):
        if index:
            pos = _skip_blanks(text, pos)
        if not text.startswith(word, pos):
            return None
        pos += len(word)
    if _LABEL.match(text, pos):
        return None
    return pos


def _has(text: str, pos: int) -> tuple[Token, int]:
    start = _skip_blanks(text, pos + len("has("))
    if not _LABEL.match(text, start):
        raise SelectorError("expected a label inside has()", start + 1)
    label, end = _label(text, start)
    close = _skip_blanks(text, end)
    _expect_close(text, close, "has(")
    return Token(Kind.HAS, label, pos + 1), close + 1


def _expect_close(text: str, pos: int, opening: str) -> None:
    if not text.startswith(")", pos):
        raise SelectorError(f"expected ')' to close '{opening}'", pos + 1)


def _label(text: str, pos: int) -> tuple[str, int]:
    found = _LABEL.match(text, pos)
    if found is None:
        raise SelectorError(f"unexpected character {text[pos]!r}", pos + 1)
    if len(found[0]) > MAX_LABEL_LENGTH:
        raise SelectorError(f"label longer than {MAX_LABEL_LENGTH} characters", pos + 1)
    return found[0], found.end()


def _skip_blanks(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in _BLANKS:
        pos += 1
    return pos


# --------------------------------------------------------------------------------------------- AST


class CompareOp(enum.Enum):
    """Operators between a label and one string; the value is the canonical spelling."""

    EQ = "=="
    NE = "!="
    CONTAINS = "contains"
    STARTS_WITH = "starts with"
    ENDS_WITH = "ends with"


@dataclass(frozen=True, slots=True)
class All:
    pass


@dataclass(frozen=True, slots=True)
class Global:
    pass


@dataclass(frozen=True, slots=True)
class Has:
    label: str


@dataclass(frozen=True, slots=True)
class Compare:
    label: str
    op: CompareOp
    value: str


@dataclass(frozen=True, slots=True)
class InSet:
    label: str
    values: frozenset[str]
    negated: bool  # `not in`


@dataclass(frozen=True, slots=True)
class Not:
    operand: Node


@dataclass(frozen=True, slots=True)
class And:
    operands: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Or:
    operands: tuple[Node, ...]


Node = All | Global | Has | Compare | InSet | Not | And | Or


# ------------------------------------------------------------------------------------------ parser

_COMPARE_KINDS = {
    Kind.EQ: CompareOp.EQ,
    Kind.NE: CompareOp.NE,
    Kind.CONTAINS: CompareOp.CONTAINS,
    Kind.STARTS_WITH: CompareOp.STARTS_WITH,
    Kind.ENDS_WITH: CompareOp.ENDS_WITH,
}
_SPELLING = {
    **{kind: text for text, kind in (*_SINGLE.items(), *_DOUBLE.items())},
    Kind.NOT: "!",
    Kind.IN: "in",
    Kind.NOT_IN: "not in",
    Kind.ALL: "all()",
    Kind.GLOBAL: "global()",
    **{kind: op.value for kind, op in _COMPARE_KINDS.items()},
}


class _Parser:
    """Recursive descent over the token list; precedence from tightest: `!`, `&&`, `||`."""

    def __init__(self, tokens: list[Token]) -> None:
        self._tokens = tokens
        self._index = 0

    def parse(self) -> Node:
        if self._peek().kind is Kind.EOF:
            return All()  # an empty selector selects everything
        node = self._or()
        self._expect(Kind.EOF, "expected '&&', '||' or the end of the selector")
        return node

    def _or(self) -> Node:
        operands = [self._and()]
        while self._accept(Kind.OR):
            operands.append(self._and())
        return operands[0] if len(operands) == 1 else Or(tuple(operands))

    def _and(self) -> Node:
        operands = [self._unary()]
        while self._accept(Kind.AND):
            operands.append(self._unary())
        return operands[0] if len(operands) == 1 else And(tuple(operands))

    def _unary(self) -> Node:
        # Like Calico, a run of `!` collapses to its parity: `!!has(a)` is `has(a)`.
        negated = False
        while self._accept(Kind.NOT):
            negated = not negated
        node = self._operand()
        return Not(node) if negated else node

    def _operand(self) -> Node:
        token = self._advance()
        if token.kind is Kind.HAS and token.value is not None:
            return Has(token.value)
        if token.kind is Kind.ALL:
            return All()
        if token.kind is Kind.GLOBAL:
            return Global()
        if token.kind is Kind.LPAREN:
            node = self._or()
            self._expect(Kind.RPAREN, "expected ')'")
            return node
        if token.kind is Kind.LABEL and token.value is not None:
            return self._comparison(token.value)
        self._fail("expected a label, has(), all(), global(), '!' or '('", token)

    def _comparison(self, label: str) -> Node:
        token = self._advance()
        if token.kind in _COMPARE_KINDS:
            value = self._expect(Kind.STRING, "expected a string literal")
            return Compare(label, _COMPARE_KINDS[token.kind], value)
        if token.kind in (Kind.IN, Kind.NOT_IN):
            return InSet(label, self._set(), negated=token.kind is Kind.NOT_IN)
        self._fail(f"expected an operator after label {label!r}", token)

    def _set(self) -> frozenset[str]:
        self._expect(Kind.LBRACE, "expected '{'")
        values: list[str] = []
        while not self._accept(Kind.RBRACE):  # items may end with a comma: {"a",}
            values.append(self._expect(Kind.STRING, "expected a string literal or '}'"))
            if not self._accept(Kind.COMMA):
                self._expect(Kind.RBRACE, "expected ',' or '}'")
                break
        return frozenset(values)

    def _peek(self) -> Token:
        return self._tokens[self._index]

    def _advance(self) -> Token:
        token = self._tokens[self._index]
        if token.kind is not Kind.EOF:
            self._index += 1
        return token

    def _accept(self, kind: Kind) -> bool:
        if self._peek().kind is kind:
            self._advance()
            return True
        return False

    def _expect(self, kind: Kind, problem: str) -> str:
        """Consume a token of ``kind`` and return its value ("" when it has none)."""
        token = self._advance()
        if token.kind is not kind:
            self._fail(problem, token)
        return token.value or ""

    @staticmethod
    def _fail(problem: str, token: Token) -> NoReturn:
        raise SelectorError(f"{problem}, found {_describe(token)}", token.column)


def _describe(token: Token) -> str:
    if token.kind is Kind.EOF:
        return "the end of the selector"
    if token.kind is Kind.LABEL:
        return f"label {token.value!r}"
    if token.kind is Kind.STRING:
        return f"string {_quote(token.value or '')}"
    if token.kind is Kind.HAS:
        return f"'has({token.value})'"
    return f"'{_SPELLING[token.kind]}'"


# ----------------------------------------------------------------------------------------- printer


def _quote(value: str) -> str:
    # Strings have no escapes, so a value never holds both quote characters.
    return f"'{value}'" if '"' in value else f'"{value}"'


def format_node(node: Node) -> str:
    """Calico's canonical text (``Selector.String()``): `&&` and `||` groups are always parenthesised."""
    match node:
        case All():
            return "all()"
        case Global():
            return "global()"
        case Has(label):
            return f"has({label})"
        case Compare(label, op, value):
            return f"{label} {op.value} {_quote(value)}"
        case InSet(label, values, negated):
            items = ", ".join(_quote(value) for value in sorted(values))
            return f"{label} {'not in' if negated else 'in'} {{{items}}}"
        case Not(operand):
            return "!" + format_node(operand)
        case And(operands):
            return "(" + " && ".join(format_node(operand) for operand in operands) + ")"
        case Or(operands):
            return "(" + " || ".join(format_node(operand) for operand in operands) + ")"
        case _:
            assert_never(node)


# --------------------------------------------------------------------------------------- evaluator

Matcher = Callable[[Mapping[str, str]], bool]

# Tests on a present label's value; a missing label fails all of them.
_VALUE_TESTS: dict[CompareOp, Callable[[str, str], bool]] = {
    CompareOp.CONTAINS: operator.contains,
    CompareOp.STARTS_WITH: str.startswith,
    CompareOp.ENDS_WITH: str.endswith,
}


def _always(labels: Mapping[str, str]) -> bool:
    return True


def _compile(node: Node) -> Matcher:
    match node:
        case All() | Global():
            return _always
        case Has(label):
            return lambda labels: label in labels
        case Compare(label, op, value):
            return _compile_compare(label, op, value)
        case InSet(label, values, negated):
            # A missing label reads as None, which no set holds: `in` fails and `not in` holds.
            if negated:
                return lambda labels: labels.get(label) not in values
            return lambda labels: labels.get(label) in values
        case Not(operand):
            inner = _compile(operand)
            return lambda labels: not inner(labels)
        case And(operands):
            return functools.reduce(_both, map(_compile, operands))
        case Or(operands):
            return functools.reduce(_either, map(_compile, operands))
        case _:
            assert_never(node)


def _compile_compare(label: str, op: CompareOp, value: str) -> Matcher:
    # A missing label reads as None, which equals no string: `==` fails and `!=` holds, as in Calico.
    if op is CompareOp.EQ:
        return lambda labels: labels.get(label) == value
    if op is CompareOp.NE:
        return lambda labels: labels.get(label) != value
    test = _VALUE_TESTS[op]

    def match(labels: Mapping[str, str]) -> bool:
        actual = labels.get(label)
        return actual is not None and test(actual, value)

    return match


def _both(first: Matcher, second: Matcher) -> Matcher:
    return lambda labels: first(labels) and second(labels)


def _either(first: Matcher, second: Matcher) -> Matcher:
    return lambda labels: first(labels) or second(labels)


# ---------------------------------------------------------------------------------------- Selector


class Selector:
    """A parsed selector: an immutable, hashable value, equal to another with the same canonical form.

    A slotted class rather than a dataclass so that ``dataclasses.asdict``/``copy`` of a resource
    holding one treat it as an opaque value (it copies and pickles as its canonical text).
    """

    __slots__ = ("_matcher", "_text", "root")
    root: Node
    _text: str
    _matcher: Matcher

    def __init__(self, root: Node) -> None:
        object.__setattr__(self, "root", root)
        object.__setattr__(self, "_text", format_node(root))
        object.__setattr__(self, "_matcher", _compile(root))

    def matches(self, labels: Mapping[str, str]) -> bool:
        return self._matcher(labels)

    def __str__(self) -> str:
        return self._text

    def __repr__(self) -> str:
        return f"Selector({self._text!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Selector):
            return NotImplemented
        return self._text == other._text

    def __hash__(self) -> int:
        return hash(self._text)

    def __setattr__(self, name: str, value: object) -> NoReturn:
        raise AttributeError(f"Selector is immutable; cannot set {name!r}")

    def __delattr__(self, name: str) -> NoReturn:
        raise AttributeError(f"Selector is immutable; cannot delete {name!r}")

    def __reduce__(self) -> tuple[Callable[[str], Selector], tuple[str]]:
        return parse, (self._text,)


def parse(text: str) -> Selector:
    """Parse a selector; raise SelectorError with the 1-based column where parsing failed."""
    return _parse_cached(text)


# Resources repeat the same few selectors and a Selector is immutable, so parses are shared. (Kept
# apart from `parse` so that callers keep its typed signature.)
@functools.lru_cache(maxsize=4096)
def _parse_cached(text: str) -> Selector:
    return Selector(_Parser(tokenize(text)).parse())
