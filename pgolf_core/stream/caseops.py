"""CaseOps: the lossless case transform of today's top records (``lossless_caps_caseops_v1``).

Capital letters cost a tokenizer dearly ("The", "the" and "THE" are three pieces). CaseOps rewrites
each maximal run of ASCII letters in lower case and puts the case in front of it as operator
characters from the private-use area, which the CaseOps SentencePiece model reserves as pieces:

- a lower-case word is left alone;
- an all-capitals word of two letters or more becomes ALLCAPS + the word in lower case;
- a word whose first letter alone is a capital becomes TITLE + the word in lower case;
- any other mixed-case word becomes (TITLE if its first letter is a capital) + its first letter
  in lower case, then CAPNEXT before every later capital, each letter in lower case;
- an operator character that occurs in the text itself is escaped as ESC + the character.

Everything else (digits, spaces, punctuation, non-ASCII letters) is left alone, so the transform is
a bijection on strings and ``decode(encode(text)) == text``.

Scores are still bits per byte of the *original* text: each token carries the number of original
UTF-8 bytes it stands for (``original_byte_counts``: operators count 0, an escaped character its own
length, every other character its UTF-8 length; a lower-cased ASCII letter is one byte like its
capital), written as a byte sidecar beside the validation shards.
"""

from __future__ import annotations

from typing import Iterable

from ..errors import DataError

TITLE, ALLCAPS, CAPNEXT, ESC = "\ue001", "\ue002", "\ue003", "\ue004"
OPERATORS = (TITLE, ALLCAPS, CAPNEXT, ESC)
NAME = "lossless_caps_caseops_v1"


def _is_ascii_letter(ch: str) -> bool:
    return "a" <= ch <= "z" or "A" <= ch <= "Z"


def _encode_word(word: str) -> str:
    lower = word.lower()
    if word == lower:
        return word
    if len(word) >= 2 and word == word.upper():
        return ALLCAPS + lower
    head = TITLE if word[0].isupper() else ""
    if word[1:] == lower[1:]:
        return head + lower
    tail = "".join(CAPNEXT + c.lower() if c.isupper() else c for c in word[1:])
    return head + lower[0] + tail


def encode(text: str) -> str:
    """The CaseOps form of ``text`` (see the module docstring)."""
    out, i, n = [], 0, len(text)
    while i < n:
        ch = text[i]
        if ch in OPERATORS:
            out.append(ESC + ch)
            i += 1
        elif _is_ascii_letter(ch):
            j = i + 1
            while j < n and _is_ascii_letter(text[j]):
                j += 1
            out.append(_encode_word(text[i:j]))
            i = j
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def decode(text: str) -> str:
    """The original of a CaseOps string; a malformed one is a ``DataError`` naming the position."""
    out, i, n = [], 0, len(text)
    word_mode = None  # "title" or "allcaps" for the word that starts at the next letter
    allcaps = capnext = in_word = False
    while i < n:
        ch = text[i]
        if ch == ESC:
            if i + 1 >= n:
                raise DataError(f"CaseOps text: escape at the end (position {i})")
            out.append(text[i + 1])
            in_word, allcaps = _is_ascii_letter(text[i + 1]), False
            i += 2
            continue
        if ch in (TITLE, ALLCAPS):
            if word_mode or in_word or capnext:
                raise DataError(f"CaseOps text: a word operator inside a word at position {i}")
            word_mode = "title" if ch == TITLE else "allcaps"
        elif ch == CAPNEXT:
            if capnext:
                raise DataError(f"CaseOps text: two CAPNEXT operators at position {i}")
            capnext = True
        elif _is_ascii_letter(ch):
            start = not in_word
            if not start and word_mode:
                raise DataError(f"CaseOps text: a word operator inside a word at position {i}")
            if start:
                allcaps = word_mode == "allcaps"
            upper = (start and word_mode is not None) or allcaps or capnext
            out.append(ch.upper() if upper else ch)
            word_mode, capnext, in_word = None, False, True
        else:
            if word_mode or capnext:
                raise DataError(f"CaseOps text: an operator not followed by a letter at position {i}")
            out.append(ch)
            in_word = allcaps = False
        i += 1
    if word_mode or capnext:
        raise DataError("CaseOps text: an operator at the end")
    return "".join(out)


def original_byte_counts(pieces: Iterable[str]) -> list:
    """Original UTF-8 bytes each piece of a tokenized CaseOps string stands for (pieces in order:
    an escape may end one piece and its character start the next)."""
    counts, escaped = [], False
    for piece in pieces:
        n = 0
        for ch in piece:
            if escaped:
                n, escaped = n + len(ch.encode("utf-8")), False
            elif ch == ESC:
                escaped = True
            elif ch not in OPERATORS:
                n += len(ch.encode("utf-8"))
        counts.append(n)
    return counts


def encode_document(text: str, sp) -> tuple:
    """(token ids, original byte count per token) of one document under a CaseOps SentencePiece
    model; the counts come from the pieces' surfaces, the substrings of the transformed text
    SentencePiece assigns to each token."""
    proto = sp.encode(encode(text), out_type="proto")  # needs protobuf (a dependency)
    ids = [p.id for p in proto.pieces]
    return ids, original_byte_counts(p.surface for p in proto.pieces)
