"""Patterns that cost the engine too much: regular expressions, wildcards and fuzzy terms,
given as queries or inside the text of a query string."""

import re

_REPETITION = re.compile(r"\{(\d*)(?:,(\d*))?\}")


def regexp_problem(pattern, limits):
    """Why a Lucene regular expression costs too much, or None."""
    if not isinstance(pattern, str):
        return None
    if len(pattern) > limits.max_pattern_length:
        return (
            f"The regular expression is longer than {limits.max_pattern_length} characters",
            "max_pattern_length",
        )
    for match in _REPETITION.finditer(pattern):
        bound = max(int(n) for n in match.groups() if n) if any(match.groups()) else 0
        if bound > limits.max_pattern_repetition:
            return (
                f"The regular expression repeats {bound} times, more than "
                f"{limits.max_pattern_repetition}",
                "max_pattern_repetition",
            )
    if _nested_repetition(pattern):
        return (
            "The regular expression repeats a group that repeats itself, which the engine "
            "cannot match in bounded time",
            "max_pattern_repetition",
        )
    return None


def _nested_repetition(pattern):
    """Whether a quantified group holds a quantifier: ``(a+)+``, ``(a*b)*``, ``(x{2})+``."""
    groups = [False]  # per open group: does it hold a quantifier?
    i, closed = 0, None
    while i < len(pattern):
        char = pattern[i]
        if char == "\\":
            i += 2
            closed = None
            continue
        if char == "[":
            end = pattern.find("]", i + 2)
            i = len(pattern) if end < 0 else end + 1
            closed = None
            continue
        if char in "*+{":
            if closed:
                return True
            groups[-1] = True
            if char == "{":
                end = pattern.find("}", i)
                i = len(pattern) if end < 0 else end
        elif char == "(":
            groups.append(False)
        elif char == ")" and len(groups) > 1:
            inner = groups.pop()
            groups[-1] = groups[-1] or inner
            closed = inner
            i += 1
            continue
        closed = None if char != "?" else closed
        i += 1
    return False


_QUOTED = re.compile(r'"(?:[^"\\]|\\.)*"(?:~\d*)?')
_SLASHED = re.compile(r"(?<![\w\\])/((?:[^/\\]|\\.)*)/")
_FUZZY = re.compile(r"[^\s~]~")


def query_text_problems(text, syntax):
    """``(regexps, wildcards, fuzzy)`` in the text of a query string query."""
    if not isinstance(text, str):
        return [], [], False
    rest = _QUOTED.sub(" ", text)
    regexps = []
    if syntax == "query_string":
        regexps = _SLASHED.findall(rest)
        rest = _SLASHED.sub(" ", rest)
    wildcards = [term for term in rest.split() if "*" in term or "?" in term]
    return regexps, wildcards, bool(_FUZZY.search(rest))
