"""What the chat panel shows for `help`: every operation with an example in English and 中文.

A plain table below both `commands` (which answers `help`) and `session` (which shows a compact
version when an image opens), so the session never imports the chat package.
"""

from __future__ import annotations

__all__ = ["HELP_EXAMPLES", "HELP_TEXT"]

# (operation, English example, Chinese example, what it does); the tests check that the offline
# parser understands every example, so the help never advertises a phrasing that fails.
HELP_EXAMPLES: tuple[tuple[str, str, str, str], ...] = (
    ("open_image", "open an image", "打开图片", "choose and load a CT image or volume"),
    ("next_image", "next slice", "下一张", "show the next image or slice"),
    ("previous_image", "previous image", "上一张", "show the previous image or slice"),
    ("goto_slice", "go to slice 40", "跳到第40张", "jump to a slice of the volume"),
    ("add_points", "add three points", "添加三个坐标点", "wait for that many clicks"),
    (
        "add_points",
        "add a negative point at (120, 240)",
        "添加一个负样本点",
        "negative = background / exclude / 背景",
    ),
    ("add_box", "add a box", "添加坐标框", "draw a box prompt (or give `box 10 20 300 310`)"),
    ("segment", "generate point mask", "生成点掩码", "segment from the points"),
    ("segment", "generate box mask", "生成框掩码", "segment from the box"),
    ("segment", "segment it", "分割", "segment from whatever prompts exist"),
    ("clear", "clear points", "清除坐标点", "clear points, boxes, masks or everything"),
    ("undo", "undo", "撤销", "undo the last prompt or operation"),
    ("set_window", "use the bone window", "切换到骨窗", "bone, soft tissue, spine, lung, brain"),
    ("measure", "measure the mask", "测量", "area / volume and HU statistics"),
    ("propagate", "propagate the mask", "传播", "carry the mask through neighbouring slices"),
    ("set_label", "this is L1", "标记为腰1", "name the vertebra new masks belong to"),
    ("export", "export the mask as nifti", "导出为png", "download the mask as PNG or NIfTI"),
    ("check_gpu", "check GPU status", "GPU状态", "report the compute device"),
    (
        "check_parameters",
        "verify parameter matching",
        "验证参数",
        "check that the loaded weights match the model",
    ),
    ("help", "what can you do?", "帮助", "show this list"),
)


def _build() -> str:
    rows = "\n".join(f"| `{op}` | {en} | {zh} | {what} |" for op, en, zh, what in HELP_EXAMPLES)
    return (
        "**What I can do / 我能做什么**\n\n"
        "| operation | example | 示例 | what it does |\n|---|---|---|---|\n"
        f"{rows}\n\n"
        "Combine steps with *and / then / 然后*: `add a box then generate box mask`, "
        "`添加坐标框然后生成框掩码`. Numbers may be digits, words or 中文数字 (三, 两, 十五)."
    )


HELP_TEXT = _build()
