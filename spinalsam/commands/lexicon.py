"""The vocabulary of the offline parser: every word or phrase it knows, mapped to a concept.

The grammar in offline.py reasons only about concepts (ADD, POINT, NEG, …), never about raw
words, so a new synonym or a new language is one more entry here and no new rule. Entries are
grouped by concept (concept → words) because that is how one reviews synonyms; the lookup
tables are the inversion of these groups.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = [
    "CHINESE",
    "ENGLISH_PHRASES",
    "ENGLISH_WORDS",
    "FUZZY_CANDIDATES",
    "MAX_CHINESE_LEN",
    "MAX_PHRASE_WORDS",
    "Concept",
]


class Concept(StrEnum):
    """What a word contributes to the meaning of a clause."""

    # actions
    ADD = "add"  # add / place / draw a prompt
    SELECT = "select"  # select / choose: an image (open) or a prompt (add)
    OPEN = "open"
    GENERATE = "generate"  # generate / create / run: a mask, or a prompt when no mask is named
    SEGMENT = "segment"
    CLEAR = "clear"
    RESET = "reset"  # clear without an object: everything
    UNDO = "undo"
    REDO = "redo"
    GOTO = "goto"
    SHOW = "show"
    NEXT = "next"
    PREV = "prev"
    CHECK = "check"
    SWITCH = "switch"  # use / switch to / set (a window preset)
    EXPORT = "export"
    MEASURE = "measure"
    PROPAGATE = "propagate"
    HELP = "help"
    NAME = "name"  # call / rename / 命名: give the current object a name (with a VERTEBRA)
    # objects
    POINT = "point"
    BOX = "box"
    MASK = "mask"
    IMAGE = "image"
    VOLUME = "volume"  # volume / area / size: a measurement, unless an action says otherwise
    SLICE = "slice"
    WINDOW = "window"
    GPU = "gpu"
    PARAMS = "params"
    ALL = "all"
    LAST = "last"
    FIRST = "first"  # the first slice: index 0
    VERTEBRA = "vertebra"  # a vertebra level: L1, T12, 腰1, 第一腰椎
    # patient / case / study / series: another one is another image to open, never a slice step
    CASE = "case"
    # modifiers and values
    NEGATIVE = "negative"
    POSITIVE = "positive"
    ORDINAL = "ordinal"  # 第 N
    BONE = "bone"
    SOFT_TISSUE = "soft_tissue"
    SPINE = "spine"
    LUNG = "lung"
    BRAIN = "brain"
    PNG = "png"
    NIFTI = "nifti"
    DICOM_SEG = "dicom_seg"
    OTHER_FORMAT = "other_format"  # a format the app cannot write
    NEGATION = "negation"  # "don't", 不要: never act on a negated request
    TIMES = "times"  # "3 times", 三次: turns the number before it into a repetition
    UP = "up"  # a direction: with a slice move, up = previous, down = next
    DOWN = "down"
    NAMING = "naming"  # "this is", "it's", 这是: a cue that a vertebra name follows
    # 后 / 完 after a step ("分割后导出", "画完框生成"): that step is complete, a new one follows
    AFTER = "after"
    # a slip described ("one point too many", 点错了, 多点了): what went wrong, not a request
    SLIP = "slip"
    # a correction mid-message ("no wait", 不对): withdraws the step just said; what follows
    # replaces it ("add a point, no wait, a box" is one box)
    CORRECTION = "correction"
    ALIEN = "alien"  # a subject the app has nothing to do with (poem, diagnosis, database)
    # words that carry no action
    FILLER = "filler"
    OFFTOPIC = "offtopic"
    SEPARATOR = "separator"


C = Concept

# Words separated by spaces.
_ENGLISH_GROUPS: dict[Concept, str] = {
    C.ADD: "add place put insert mark draw sketch plant set",
    C.SELECT: "select choose pick",
    C.OPEN: "open load upload import browse read loaded",
    C.GENERATE: (
        "generate create make produce compute run predict get build perform execute infer apply do "
        "rerun"
    ),
    C.SEGMENT: "segment segmentation segmenting seg delineate contour",
    C.CLEAR: (
        "clear remove delete erase wipe discard clean empty cancel eliminate purge nuke zap scrap "
        "trash ditch clr del"
    ),
    C.RESET: "reset restart",
    C.UNDO: "undo revert oops",
    C.REDO: "redo reapply",
    C.GOTO: "go goto jump navigate move skip scroll turn",
    C.SHOW: "show display view see",
    C.NEXT: "next nxt nex forward forwards advance subsequent ahead",
    C.PREV: "previous prev prv back backward backwards prior preceding",
    # Along the body axis: toward the head is up (previous), toward the feet down (next).
    C.UP: "up upward upwards cranial cranially superior superiorly rostral",
    C.DOWN: "down downward downwards caudal caudally inferior inferiorly feet foot",
    C.CHECK: (
        "check verify validate confirm inspect test status report match matching matches "
        "consistent available info information which"
    ),
    C.SWITCH: "use switch change toggle apply adjust",
    C.EXPORT: "export save download store write output",
    C.MEASURE: (
        "measure measurement measurements statistics stats hu quantify metrics metric calculate "
        "dimensions diameter quantification average avg median density attenuation"
    ),
    C.PROPAGATE: "propagate propagation spread extend track carry copy",
    C.HELP: "help commands usage manual instructions guide capabilities tutorial",
    C.NAME: "call called rename renamed named tag tagged labelled labeled",
    C.POINT: (
        "point points pt pts dot dots click clicks seed seeds marker markers landmark landmarks "
        "pin pins coordinate coordinates tap taps spot spots"
    ),
    C.BOX: "box boxes bbox bboxes rectangle rectangles rect rects square roi",
    C.MASK: "mask masks result results prediction predictions label labels outline masking",
    C.IMAGE: (
        "image images picture pictures pic pics photo scan scans file files ct dataset img dicom"
    ),
    C.VOLUME: "volume volumes stack area areas size",
    C.CASE: "patient patients case cases study studies series exam exams examination subject",
    C.SLICE: "slice slices layer layers frame frames section sections page index",
    C.WINDOW: "window windows windowing preset contrast level wl ww",
    C.GPU: "gpu gpus cuda device graphics vram cpu accelerator nvidia hardware card",
    C.PARAMS: (
        "parameter parameters params param weight weights checkpoint checkpoints ckpt adapter lora "
        "hash hashes checksum checksums"
    ),
    C.ALL: "all everything data anything entire whole every both",
    C.LAST: "last latest recent",
    C.FIRST: "first",
    C.NEGATIVE: "negative negatives background exclude exclusion excluding neg outside exclusive",
    C.POSITIVE: "positive positives foreground include inclusion including pos inside object",
    C.BONE: "bone bones bony skeletal osseous",
    C.SOFT_TISSUE: "soft tissue mediastinum mediastinal abdomen abdominal",
    C.SPINE: "spine spinal",
    C.LUNG: "lung lungs pulmonary chest",
    C.BRAIN: "brain head neuro",
    C.PNG: "png",
    C.NIFTI: "nifti nii gz nifty",
    C.DICOM_SEG: "dicomseg",
    C.OTHER_FORMAT: "stl obj jpg jpeg tiff tif bmp gif pdf csv nrrd mha mhd",
    C.NEGATION: "don't dont never not nothing without shouldn't mustn't stop except besides",
    C.TIMES: "times time",
    C.NAMING: "it's its this's that's",
    C.SLIP: (
        "mistake mistakes mistaken mistakenly accidentally accidental accident wrong wrongly "
        "misclick misclicked misclicks erroneous erroneously"
    ),
    C.ALIEN: (
        "poem poems story essay song lyrics recipe diagnose diagnosis diagnosed treat treatment "
        "prognosis explain explanation mean means meaning define definition database sql table "
        "tables password passwords passwd etc rm sudo shell script instructions instruction "
        "admin jailbreak dan hack hacked malware virus bitcoin email send sent pacs"
    ),
    C.FILLER: (
        "toward towards alright allright yeah yep yup hmm hm um uh oh well prompt prompts the to "
        "of on in at from into onto with by for as my me i you we it its "
        "this that these those them current currently new now please pls plz kindly could can "
        "would will just like "
        "want wanna need let's lets some more is are be does did was there here out around over "
        "again quickly yes sure ok okay vertebra vertebrae vertebral body bodies lumbar thoracic "
        "cervical sacral disc discs pedicle pedicles canal cord lesion tumor tumour fracture "
        "region structure target i'd i'm what what's am should must shall model models mode loaded "
        "correctly correct properly fine ready own way through throughout neighbouring neighboring "
        "adjacent nearby neighbor neighbour other rest too well right left center centre middle "
        "top bottom corner corners end start starting across within between where how hey dear "
        "assistant bot sam spinalsam tool app system ahead function used format file type "
        "formatted step action operation change changes thing things stuff any so if possible "
        "quick fast mine our your their tools shown onscreen screen selected given same time once "
        "using number num"
    ),
    C.OFFTOPIC: (
        "hello hi hallo howdy greetings thanks thank thx ty cheers bye goodbye weather joke jokes "
        "funny lol cool great nice awesome poem story news sing song recipe football today "
        "tomorrow morning evening night name who love meaning life president capital stock price "
        "movie music game play chat tell why sky blue rain sunny temperature lunch dinner coffee "
        "up sup weekend yesterday good afternoon old age"
    ),
    C.SEPARATOR: "and then also afterwards after plus finally",
}

# Multi-word entries that mean something their single words do not, separated by |.
_ENGLISH_PHRASE_GROUPS: dict[Concept, str] = {
    C.RESET: "start over|start again|from scratch|start fresh|begin again|clean slate",
    C.BOX: "bounding box|bounding boxes|bound box|region of interest",
    C.SOFT_TISSUE: "soft tissue|soft tissues",
    C.GPU: "graphics card|video card|compute device",
    C.HELP: (
        "what can you do|what can i do|what can i say|what do you do|how does this work|"
        "how do i use|how to use|what commands|list commands|show commands|what are you able|"
        "how do you work|what can i type|what do i type|what can i ask|what commands are there|"
        "show me what you can do|help me"
    ),
    C.UNDO: (
        "take back|step back|one step back|undo that|go back one step|go back a step|"
        "ctrl z|control z|cmd z|command z"
    ),
    # Restoring is redoing: "put back what I undid", "bring back the point" (cf. 恢复).
    C.REDO: (
        "ctrl y|control y|cmd y|ctrl shift z|cmd shift z|redo that|do it again|do that again|"
        "put back|bring back|put it back|bring it back"
    ),
    C.DICOM_SEG: "dicom seg|dicom segmentation|dcm seg",
    # Sent to the user is a download; "send" alone (to PACS, to a colleague) stays alien.
    C.EXPORT: "send me|send it to me|send them to me|send to me|send this to me",
    C.NAMING: (
        "this is|this one is|that is|it is|this one|this vertebra is|this level is|that one is|"
        "that one|here is"
    ),
    C.NEXT: "skip ahead|move on",
    C.OPEN: "pull up|bring in|bring up|load up|open up",
    C.OFFTOPIC: (
        "how are you|who are you|good morning|good night|good evening|what time is it|"
        "what is your name|for your help|for the help|for helping"
    ),
    C.NEGATION: "do not|no need",
    C.CORRECTION: "no wait|wait no|no no|i mean|i meant|scratch that|or rather",
    C.SLIP: "too many|one too many|by mistake|by accident|in error",
    C.FILLER: "go ahead|go on|let's go|right now",
    C.SEPARATOR: "and then|after that|once done|when done|followed by|as well as",
    C.PREV: "go back|scroll up|page up|move up|go up|one back|back up|scroll back",
    C.NEXT: "scroll down|page down|move down|go down|go forward|one forward",
    C.CLEAR: "get rid of|throw away|take away|take off",
    C.MEASURE: "how big|how large|hounsfield units",
}

# Chinese words separated by spaces (matched longest-first inside unspaced text).
_CHINESE_GROUPS: dict[Concept, str] = {
    C.ADD: "添加 增加 加上 加 放置 放 标注 标记 点击 画 绘制 插入 打 新增 添 加个 设置",
    C.SELECT: "选择 选取 选 挑选",
    C.OPEN: "打开 开启 载入 加载 导入 读取 上传 读入 浏览",
    C.GENERATE: "生成 创建 产生 运行 执行 进行 做 计算 得到 获取 预测 推理 跑 出",
    C.SEGMENT: "分割 切割 勾画 勾勒",
    C.CLEAR: "清空 清除 删除 移除 去掉 去除 清理 删掉 擦除 清掉 清 删 取消",
    C.RESET: "重置 重新开始 从头开始 重来 复位 重新来过 重新来 从头来过",
    C.UNDO: "撤销 撤回 撤消 回退 取消上一步 上一步 后悔 撤",
    C.REDO: "重做 恢复 取消撤销 撤销撤销 反撤销 还原撤销",
    C.TIMES: "次 遍 回 步",
    C.UP: "往上 向上 上",
    C.DOWN: "往下 向下 下",
    C.NAMING: "这是 这个是 这一个是 它是 此为 这块是 这节是 这一节是 这一节 这节 这块",
    C.GOTO: "跳到 跳转到 跳转 转到 切换到 前往 到 去 定位到 翻到 切到",
    C.SHOW: "显示 查看 看 展示",
    C.NEXT: (
        "下一张 下一个 下一页 下一层 下一帧 下一幅 下张 后一张 后一个 后一 下一 往后 向后 下翻 "
        "往下翻 向下翻 往后翻 向后翻 前进 向前进"
    ),
    C.PREV: (
        "上一张 上一个 上一页 上一层 上一帧 上一幅 上张 前一张 前一个 前一 上一 往前 向前 上翻 "
        "返回 往上翻 向上翻 往前翻 向前翻 后退 退后 倒退 往回翻 往回 回翻"
    ),
    C.CHECK: "检查 验证 检测 核对 确认 校验 状态 匹配 一致 情况 可用 是否 信息 测试",
    C.SWITCH: "切换 使用 用 改成 改为 调成 调到 换成 设为 应用 换",
    C.EXPORT: "导出 保存 下载 存储 另存为 存为 输出 存",
    C.MEASURE: "测量 统计 量化 指标 直径 测 平均 平均值 均值",
    C.PROPAGATE: "传播 传递 扩散 延伸 扩展 推广 传到 蔓延",
    C.NAME: (
        "命名 命名为 命名成 记为 记作 记成 标为 标成 标作 标记为 标记成 标注为 标注成 叫做 叫作 叫 "
        "名为 称为 标签 改名为 重命名为 重命名 改名 起名 取名 起名为 取名为 标 标上"
    ),
    C.HELP: (
        "帮助 怎么使用 如何用 使用方法 你能做什么 能干什么 你会什么 会做什么 能干嘛 "
        "有哪些功能 能做什么 可以做什么 怎么用 如何使用 使用说明 说明 功能 指令 命令 教程 用法"
    ),
    C.POINT: "坐标点 提示点 点 标记点 种子点 点位 坐标",
    C.BOX: "坐标框 边界框 矩形框 矩形 分割框 包围盒 框 选框 方框 检测框",
    C.MASK: "掩码 掩膜 蒙版 遮罩 分割结果 结果 掩模",
    C.IMAGE: "图片 图像 影像 图 片子 文件 扫描 照片 数据集",
    C.VOLUME: "体数据 三维 面积 体积 大小 尺寸",
    C.CASE: "病人 患者 病例 病号 案例 受检者",
    C.SLICE: "张 层 切片 帧 幅 页",
    C.WINDOW: "窗 窗口 窗宽窗位 窗位 窗宽",
    C.GPU: "显卡 显存 设备 计算设备",
    C.PARAMS: "参数 权重 模型参数 检查点 适配器 哈希",
    C.ALL: "数据 全部 所有 一切 全都 都 所有的",
    C.LAST: "最后 最近 刚才 刚刚",
    C.NEGATIVE: "负样本 背景 负 排除 反向 负向 阴性",
    C.POSITIVE: "正样本 前景 正 正向 阳性 目标",
    C.ORDINAL: "第",
    C.BONE: "骨窗 骨 骨骼 骨骼窗",
    C.SOFT_TISSUE: "软组织窗 软组织 纵隔窗 纵隔 腹部窗",
    C.SPINE: "脊柱窗 脊柱 脊椎窗",
    C.LUNG: "肺窗 肺",
    C.BRAIN: "脑窗 脑 头窗",
    C.NIFTI: "三维文件",
    C.CORRECTION: "不对 不对不对 说错了 我说错了 哦不 不不 我是说",
    # 点 in a slip of the mouse ("点错了") is no point; 多…了 is one too many ("多点了一个").
    C.SLIP: (
        "点错 点歪 点偏 点击错 弄错 搞错 错 加错 画错 标错 放错 打错 多了 多点了 多加了 多画了 "
        "多标了 多打了 多放了 多余 不小心 误点 误加 误 手滑"
    ),
    # The app sends nothing anywhere: a transfer to PACS or a person is not an export.
    C.ALIEN: (
        "规则 数据库 系统提示 提示词 密码 治疗 诊断 解释 意思 笑话 故事 诗 发送 发到 发给 传给 推送"
    ),
    # 再 after a negation is "any more" ("不要再加点了"), not the "then" that separates steps.
    C.NEGATION: (
        "不要 别 不用 无需 不必 不 勿 除了 不要再 别再 不用再 不再 不必再 无需再 没必要 没有必要 "
        "不需要 不必要 无须 甭"
    ),
    C.FILLER: (
        "能不能 可不可以 是不是 要不要 会不会 请 帮我 帮 我 一下 麻烦 你 您 的 了 吧 呢 吗 把 将 "
        "在 上 给 个 些 这 这个 那个 当前 现在 能 可以 能否 想 要 需要 一些 里 中 内 为 成 格式 "
        "椎体 椎骨 腰椎 胸椎 颈椎 部位 区域 用户 谢 呀 啊 哦 好 们 模型 已 已经 是 否 有 没有 对 "
        "所 相邻 邻近 整个 全 中的 位置 处 处的 下 从 向 至 于 以 再次 一次 周围 附近 出来 起来 "
        "好的 通过 根据 基于 开始 左上角 右下角 左下角 右上角 左上 右下 左下 右上 角 顶点 起点 "
        "终点 左 右 先 它 连 "
        # 点 inside an adverb ("有点", "差点") is no point.
        "有点 差点 快点 早点 一点 一点点 一点儿 点儿 点赞"
    ),
    C.OFFTOPIC: (
        "你好 的帮助 你的帮助 帮忙 您好 天气 笑话 谢谢 再见 早上好 晚上好 你是谁 名字 "
        "哈哈 讲个 故事 唱歌 感谢 多谢 晚安 吃饭 新闻 心情 嗨 哈喽 今天 明天 昨天 星期 几点 周末"
    ),
    C.AFTER: "后 完",
    C.SEPARATOR: (
        "然后 并且 并 再 接着 之后 随后 和 以及 同时 还有 还要 最后再 完了 完成后 后再 与 及"
    ),
}


def _invert(groups: dict[Concept, str], sep: str = " ") -> dict[str, Concept]:
    table: dict[str, Concept] = {}
    for concept, words in groups.items():
        for word in words.split(sep):
            table.setdefault(word, concept)  # first group wins: the more specific meaning
    return table


ENGLISH_WORDS: dict[str, Concept] = _invert(_ENGLISH_GROUPS)
ENGLISH_PHRASES: dict[tuple[str, ...], Concept] = {
    tuple(phrase.split()): concept
    for phrase, concept in _invert(_ENGLISH_PHRASE_GROUPS, sep="|").items()
}
CHINESE: dict[str, Concept] = _invert(_CHINESE_GROUPS)

MAX_PHRASE_WORDS = max(len(words) for words in ENGLISH_PHRASES)
MAX_CHINESE_LEN = max(len(word) for word in CHINESE)

# Words a typo may be corrected to: the vocabulary, long enough that one changed letter still
# identifies them. Never number words: a typo must not invent a count ("height" is no "eight").
FUZZY_CANDIDATES: tuple[str, ...] = tuple(
    sorted(word for word in ENGLISH_WORDS if len(word) >= 4 and word.isalpha())
)
