"""Classes of phrasing a blind corpus found the parser missing, each with new phrasings written
for these tests (none is a line of any corpus): free-text labels and naming verbs, 点 that is no
point, Chinese sequence connectors, corner-named box coordinates, decoration at message edges,
"window N level M", questions about the world rather than the mask, and typos of verbs."""

from __future__ import annotations

import pytest

from spinalsam.commands import parse_offline
from spinalsam.commands.chinese_typos import correct_chinese_verb, same_sound
from spinalsam.commands.gate import Verdict, asks_general_knowledge, classify
from spinalsam.commands.tokens import normalise
from spinalsam.ops import dump_operations

P, N = "positive", "negative"
SEG = {"op": "segment", "prompt": "auto"}


def _ops(text: str) -> list[dict]:
    return dump_operations(parse_offline(text).operations)


def _label(name: str) -> list[dict]:
    return [{"op": "set_label", "name": name}]


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("label it dural sac", "dural sac"),
        ("label this one as the left psoas", "left psoas"),
        ("please name the mask right kidney", "right kidney"),
        ("name this structure aorta", "aorta"),
        ("tag it as screw 2", "screw 2"),
        ("rename it to Lesion A please", "lesion a"),
        ("call it the conus", "conus"),
        ("label it L1 screw", "L1 screw"),
        ("命名为左肾", "左肾"),
        ("把它标成肝脏吧", "肝脏"),
        ("这个叫椎管", "椎管"),
        ("标注为骨赘", "骨赘"),
        ("set the label to epidural fat", "epidural fat"),
        ("change the name to left pedicle", "left pedicle"),
        ("名称改为椎弓根", "椎弓根"),
        ("标签设为肿瘤", "肿瘤"),
        ("给它起名叫硬膜囊", "硬膜囊"),
        ("label: spinal canal", "spinal canal"),
        ("名称：椎管", "椎管"),
    ],
)
def test_free_text_names_follow_a_naming_verb(text: str, name: str) -> None:
    assert _ops(text) == _label(name)


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("That one's T4", "T4"),
        ("this one’s L2", "L2"),
        ("that one is C3", "C3"),
        ("标为胸九", "T9"),
        ("标作L4", "L4"),
        ("记作颈六", "C6"),
        ("标成腰二", "L2"),
        ("命名成骶一", "S1"),
        ("here's L5", "L5"),
        ("标上腰四", "L4"),
    ],
)
def test_naming_verbs_and_contractions_give_canonical_levels(text: str, name: str) -> None:
    assert _ops(text) == _label(name)


@pytest.mark.parametrize(
    ("text", "expect"),
    [
        ("call it a day", []),  # an indefinite article describes, it does not name
        ("label the points", [{"op": "segment", "prompt": "points"}]),
        ("mark two points", [{"op": "add_points", "count": 2, "label": P}]),
        ("call it segment", [SEG]),  # a command word is no name
        ("标记成背景点", [{"op": "add_points", "count": 1, "label": N}]),
        ("the canal looks narrow at L3", []),  # a mention, no naming verb
        ("the label is wrong", []),  # a complaint: no verb sets the name
        ("call me later", []),  # a person, not the mask, follows the verb
        ("i named my cat Luna", []),
        ("我叫小王", []),
    ],
)
def test_a_name_never_swallows_a_command(text: str, expect: list[dict]) -> None:
    assert _ops(text) == expect


@pytest.mark.parametrize(
    ("text", "expect"),
    [
        ("点错了，撤销", [{"op": "undo"}]),
        ("刚才点歪了，撤回一下", [{"op": "undo"}]),
        ("有点问题，帮我撤销", [{"op": "undo"}]),
        ("差点忘了，导出PNG", [{"op": "export", "format": "png"}]),
        ("我有点困", []),
        ("点赞", []),
        ("往下一点", []),  # "a bit lower": no point, and no slice named
        ("加一个点", [{"op": "add_points", "count": 1, "label": P}]),
        ("加两个背景点", [{"op": "add_points", "count": 2, "label": N}]),
        ("清除所有点", [{"op": "clear", "target": "points"}]),
    ],
)
def test_chinese_dian_is_a_point_only_as_a_prompt(text: str, expect: list[dict]) -> None:
    assert _ops(text) == expect


@pytest.mark.parametrize(
    ("text", "expect"),
    [
        ("测量后保存为nifti", [{"op": "measure"}, {"op": "export", "format": "nifti"}]),
        ("分割好后传播", [SEG, {"op": "propagate"}]),
        (
            "先撤销再加一个背景点",
            [{"op": "undo"}, {"op": "add_points", "count": 1, "label": N}],
        ),
        (
            "加完三个点分割",
            [
                {"op": "add_points", "count": 3, "label": P},
                {"op": "segment", "prompt": "points"},
            ],
        ),
        ("画框后用框分割", [{"op": "add_box"}, {"op": "segment", "prompt": "box"}]),
        ("上一层之后测量一下", [{"op": "previous_image"}, {"op": "measure"}]),
        ("打开图像后跳到第10层", [{"op": "open_image"}, {"op": "goto_slice", "index": 10}]),
        ("分割后用骨窗", [SEG, {"op": "set_window", "preset": "bone"}]),
        ("往后翻两层", [{"op": "next_image"}] * 2),  # 后 inside a direction stays one
    ],
)
def test_chinese_sequence_connectors_keep_every_step_in_order(
    text: str, expect: list[dict]
) -> None:
    assert _ops(text) == expect


@pytest.mark.parametrize(
    ("text", "box"),
    [
        ("put a box with x0=12 y0=22 x1=90 y1=100", [12, 22, 90, 100]),
        ("box xmin=5, ymin=6, xmax=70, ymax=80", [5, 6, 70, 80]),
        ("画框 x1=10，y1=20，x2=110，y2=120", [10, 20, 110, 120]),
        ("add box (x1, y1, x2, y2) = (3, 4, 50, 60)", [3, 4, 50, 60]),
        ("bbox x0,y0,x1,y1: 8,9,18,29", [8, 9, 18, 29]),
        ("box x,y,w,h = 10,20,30,40", [10, 20, 40, 60]),
        ("add a box x_0 = 1 y_0 = 2 x_1 = 11 y_1 = 12", [1, 2, 11, 12]),
        ("draw rect x_min=3 y_min=4 x_max=30 y_max=40", [3, 4, 30, 40]),
        ("box: x0 10 y0 20 x1 50 y1 60", [10, 20, 50, 60]),
    ],
)
def test_boxes_with_named_corners(text: str, box: list[int]) -> None:
    assert _ops(text) == [{"op": "add_box", "box": box}]


@pytest.mark.parametrize(
    ("text", "expect"),
    [
        ("上一张！！", [{"op": "previous_image"}]),
        ("撤销吧～～", [{"op": "undo"}]),
        ("~next slice~", [{"op": "next_image"}]),
        ("segment it please 🙏", [SEG]),
        ("导出nifti ✨", [{"op": "export", "format": "nifti"}]),
        ("undo :)", [{"op": "undo"}]),
        ("^_^ 下一张", [{"op": "next_image"}]),
        ("bone window…", [{"op": "set_window", "preset": "bone"}]),
        ("下一张～然后分割", [{"op": "next_image"}, SEG]),
    ],
)
def test_decoration_does_not_turn_a_command_into_a_non_command(
    text: str, expect: list[dict]
) -> None:
    assert _ops(text) == expect


def test_code_stays_hostile_without_the_tilde_rule() -> None:
    assert classify(normalise("cat ~/.ssh/id_rsa")) == Verdict.HOSTILE
    assert _ops("open ~/.bashrc") == []


@pytest.mark.parametrize(
    ("text", "level", "width"),
    [
        ("window 350 and level 50", 50, 350),
        ("level 30, window 80", 30, 80),
        ("window: 2500 / level: 480", 480, 2500),
        ("set window to 1200 and level to -600", -600, 1200),
    ],
)
def test_a_bare_window_number_is_the_width(text: str, level: int, width: int) -> None:
    assert _ops(text) == [{"op": "set_window", "level": level, "width": width}]


def test_a_bare_window_number_alone_is_no_window() -> None:
    assert _ops("window 5") == []


@pytest.mark.parametrize(
    "text",
    [
        "what HU does healthy trabecular bone have?",
        "how big is a typical lumbar disc?",
        "what is the usual size of the spinal canal in adults?",
        "正常椎体的CT值是多少？",
        "一般脂肪的HU是多少",
        "需不需要加一个框？",
        "用不用换成骨窗",
        "该不该撤销？",
        "有没有必要再分割一次",
        "要不要我帮你分割",
        "是不是该清空了",
        "需要再加一个负样本点吗？",
        "用骨窗比较好吧？",
    ],
)
def test_questions_about_the_world_or_advice_do_nothing(text: str) -> None:
    assert _ops(text) == []


@pytest.mark.parametrize(
    ("text", "expect"),
    [
        ("how big is the mask?", [{"op": "measure"}]),
        ("what is the volume?", [{"op": "measure"}]),
        ("这个掩膜的体积是多少？", [{"op": "measure"}]),
        ("能不能帮我分割", [SEG]),  # 能不能 / 可不可以 ask the app: polite requests
        ("可不可以加两个点", [{"op": "add_points", "count": 2, "label": P}]),
    ],
)
def test_questions_about_the_mask_and_polite_requests_still_act(
    text: str, expect: list[dict]
) -> None:
    assert _ops(text) == expect


def test_general_knowledge_needs_no_pointer_to_the_screen() -> None:
    assert asks_general_knowledge(normalise("what is the normal hu of fat"))
    assert not asks_general_knowledge(normalise("what is the hu of this region"))


@pytest.mark.parametrize(
    ("text", "expect"),
    [
        ("opne a new scan", [{"op": "open_image"}]),
        ("segmnet the vertebra", [SEG]),
        ("propgate it", [{"op": "propagate"}]),
        ("go to slcie 40", [{"op": "goto_slice", "index": 40}]),
    ],
)
def test_verb_typos_are_corrected(text: str, expect: list[dict]) -> None:
    assert _ops(text) == expect


@pytest.mark.parametrize("word", ["thre", "tow", "sevn"])
def test_number_look_alikes_are_still_asked_about(word: str) -> None:
    result = parse_offline(f"add {word} points")
    assert result.operations == []
    assert "mistyped number" in result.note


def test_an_unknown_word_far_from_numbers_is_not_called_a_number() -> None:
    result = parse_offline("add qwzx points")
    assert "mistyped number" not in result.note


@pytest.mark.parametrize(
    ("text", "expect"),
    [
        ("分隔出腰椎", [SEG]),
        ("帮我传波到相邻层", [{"op": "propagate"}]),
        ("保纯为png", [{"op": "export", "format": "png"}]),
    ],
)
def test_chinese_homophone_typos_are_read_but_confirmed(text: str, expect: list[dict]) -> None:
    result = parse_offline(text)
    assert dump_operations(result.operations) == expect


def test_a_name_keeps_the_words_as_typed() -> None:
    assert _ops("label it later") == _label("later")  # no typo repair to "layer"


def test_a_homophone_guess_is_unsure() -> None:
    result = parse_offline("分隔一下")
    assert dump_operations(result.operations) == [SEG]
    assert not result.confident
    assert "分隔" in result.note


def test_a_real_word_one_character_from_a_verb_is_no_typo() -> None:
    assert not same_sound("析", "割")
    assert correct_chinese_verb("分析") is None
    assert _ops("帮我分析一下这个病人") == []
