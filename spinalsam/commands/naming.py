"""Free-text mask names: "label it spinal canal", "call it the dural sac", 命名为椎间盘.

Vertebra levels are read by the grammar itself (they are canonicalised: L1, T12); everything
else a user may call a mask — an organ, a lesion, "screw 2" — is free text (1–40 characters in
the protocol). A name is only taken after an explicit naming verb, so a sentence that merely
mentions anatomy never renames anything, and a "name" that holds an action or a prompt ("call
it segment", "mark it as background") is left to the rest of the grammar.
"""

from __future__ import annotations

from collections.abc import Iterable

from spinalsam.commands.lexicon import Concept
from spinalsam.commands.tokens import Kind, Token

__all__ = ["MAX_NAME_CHARS", "free_label_name"]

C = Concept
MAX_NAME_CHARS = 40
# Nouns that are also naming verbs, but only when "it/this/as" follows ("label it X"); on their
# own ("the labels", "mark two points") they mean something else.
_VERB_NOUNS = frozenset({"label", "mark", "tag", "name"})
_AFTER_VERB_NOUN = frozenset({"it", "this", "that", "as", "to"})
# "name the mask X" names it; "name the bones of the spine" asks for a list.
_MASK_NOUNS = frozenset(
    {"mask", "segmentation", "selection", "selected", "current", "structure", "region", "object"}
)
# "我叫张三", "i named my cat …": a person is named, not the mask.
_PERSONS = frozenset(
    {"i", "we", "they", "he", "she", "you", "我", "你", "他", "她", "我们", "他们"}
)
# The name as a noun, set by a verb: "set the label to X", "change the name to X", 名称改为X.
_NAME_NOUNS = frozenset({"label", "name", "名称", "名字", "标签"})
_NOUN_LINKS = frozenset({"to", "as"})
_SETTING = frozenset({C.ADD, C.SWITCH})
# Words before the naming verb that refer to what is named: "please name this mask X", 把它命名为.
_BEFORE_HEAD = frozenset({C.FILLER, C.MASK, C.NAMING, C.OFFTOPIC}) | _SETTING
# Words between the verb and the name: the thing named and the linking word ("as", 为, 成).
_LINKING = frozenset(
    {"it", "this", "that", "one", "the", "mask", "selection", "selected", "current", "as", "to"}
    | {"structure", "region", "segmentation", "object", "area"}
    | {"is", "为", "成", "作", "是", "它", "这个", "该"}
    | {"改为", "设为", "改成", "设成", "换成", "叫", "叫做"}
)
# Politeness after the name is not part of it: "name it left kidney please", "命名为肝脏吧".
_TRAILING = frozenset({"please", "pls", "plz", "thanks", "吧", "一下", "呀", "啊", "了", "哦"})
# A "name" holding one of these is a command in disguise, not a name.
_NOT_IN_NAMES = frozenset(
    {
        C.ADD, C.OPEN, C.GENERATE, C.SEGMENT, C.CLEAR, C.RESET, C.UNDO, C.REDO, C.GOTO, C.NEXT,
        C.PREV, C.EXPORT, C.MEASURE, C.PROPAGATE, C.HELP, C.NAME, C.POINT, C.BOX, C.NEGATIVE,
        C.POSITIVE, C.NEGATION, C.TIMES, C.SEPARATOR, C.GPU, C.PARAMS, C.ALIEN,
    }
)  # fmt: skip
_NOT_NAME_KINDS = frozenset({Kind.COORDS, Kind.BOX, Kind.NUMBERISH, Kind.HUGE, Kind.WINDOW_VALUES})
# "call it a day": an indefinite article describes, it does not name.
_INDEFINITE = frozenset({"a", "an"})


def free_label_name(tokens: list[Token]) -> str | None:
    """The free-text name a naming clause gives, or None when the clause names nothing."""
    head = _naming_head(tokens)
    if head is None:
        return None
    rest = tokens[head + 1 :]
    while rest and (rest[0].text in _LINKING or rest[0].concept == C.NAMING):
        rest = rest[1:]
    while rest and rest[-1].text in _TRAILING:
        rest = rest[:-1]
    if not rest or rest[0].text in _INDEFINITE:
        return None
    if any(t.kind in _NOT_NAME_KINDS or t.concept in _NOT_IN_NAMES for t in rest):
        return None
    name = _join(t.text.upper() if t.concept == C.VERTEBRA else t.as_typed for t in rest)
    return name if 1 <= len(name) <= MAX_NAME_CHARS else None


def _naming_head(tokens: list[Token]) -> int | None:
    """Index of the naming verb, when only words about the named thing come before it."""
    for i, tok in enumerate(tokens):
        follower = tokens[i + 1] if i + 1 < len(tokens) else None
        if tok.text in _NAME_NOUNS and follower is not None:
            set_before = any(t.concept in _SETTING for t in tokens[:i])
            if follower.concept == C.SWITCH or (set_before and follower.text in _NOUN_LINKS):
                return i + 1  # the name follows the linking verb or "to"
        if tok.concept == C.NAME:
            named_person = i > 0 and tokens[i - 1].text in _PERSONS
            english = tok.text.isascii()
            return None if named_person or (english and not _refers_to_mask(tokens, i)) else i
        if tok.text in _VERB_NOUNS and _refers_to_mask(tokens, i):
            return i
        if tok.text not in _NAME_NOUNS and tok.concept not in _BEFORE_HEAD:
            return None
    return None


def _refers_to_mask(tokens: list[Token], verb: int) -> bool:
    """ "label it …", "call this one …", "name the mask …", "rename to …": an English naming
    verb names the mask only when the mask (or "as"/"to") is what follows it."""
    after = tokens[verb + 1 : verb + 3]
    if not after:
        return False
    if after[0].text in _AFTER_VERB_NOUN | _MASK_NOUNS or after[0].concept in (C.NAMING, C.MASK):
        return True
    return after[0].text == "the" and len(after) > 1 and after[1].text in _MASK_NOUNS


def _join(words: Iterable[str]) -> str:
    """Words as typed: a space between Latin words, none around Chinese characters."""
    out = ""
    for word in words:
        if out and out[-1].isascii() and word[:1].isascii():
            out += " "
        out += word
    return out
