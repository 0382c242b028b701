"""The Gradio Blocks app. It only wires components to operations; the work happens elsewhere.

Every handler takes the per-browser `Session` from `gr.State`, turns what the widget says into
`spinalsam.ops` operations, applies them with `Session.apply` and returns the refreshed views,
so buttons, clicks and chat messages all go through the same operations.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import gc
import html
import inspect
import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import gradio as gr
from pydantic import ValidationError

from spinalsam import ops
from spinalsam.assets import SHOW_IMAGE_JS
from spinalsam.commands import Router
from spinalsam.commands.display import inert_block
from spinalsam.examples import EXAMPLES, example_files
from spinalsam.flags import FlagStore
from spinalsam.io import SUPPORTED_EXTENSIONS
from spinalsam.ledger import ImageLedger, default_cap_bytes
from spinalsam.limits import DEFAULT_BUDGET, Budget
from spinalsam.planes import PLANES
from spinalsam.session import Backend, Session, SessionBusy, SessionError, StepResult
from spinalsam.vertebrae import VERTEBRA_NAMES
from spinalsam.viewer import encode_view, image_panel
from spinalsam.windowing import PRESETS

__all__ = ["build_app"]

log = logging.getLogger(__name__)

AS_STORED = "as stored / default"
ACTION_MIN_PX = 100  # three action buttons a row on a 390 px phone
STATUS_LINES = 8  # longer answers (help, tables) are shown whole in the chat only
OFF_TOPIC = (
    "I can only act on the image: open, navigate, add points or boxes, segment, clear, undo, "
    "window, measure, export, propagate. Type **help** for examples."
)

INTRO = """# SpinalSAM
Interactive spine-CT segmentation: open a CT, click or drag prompts on the image, **Segment**,
or type what you want (*"add a box and generate the box mask"*, *"生成框掩码"*). Research
software: not for diagnosis."""


Files = list[str] | None
Outcome = str | StepResult | tuple[str, Files]


def _guard(action: Callable[[], Outcome]) -> tuple[str, Files]:
    """Run a user action; errors become messages and never lose the session's state.

    Returns the message and the files to offer for download, if the action made any.
    """
    try:
        out = action()
    except SessionError as exc:
        return f"⚠️ {exc}", None
    except Exception as exc:  # the server must survive anything a user can trigger
        log.exception("unexpected error in a UI action")
        return (
            f"⚠️ Something went wrong ({type(exc).__name__}). "
            "Your image, prompts and masks are kept.",
            None,
        )
    if isinstance(out, StepResult):
        message = out.message if out.ok else f"⚠️ {out.message}"
        return message, [str(f) for f in out.files] or None
    if isinstance(out, tuple):
        return out
    return out, None


def _one_at_a_time(handler: Callable[..., Any]) -> Callable[..., Any]:
    """`handler` run while holding its session's turn (`Session.acquire_turn`).

    A request that finds the session busy past the budget's wait is answered with Gradio's
    error toast (an error message for API clients) and leaves every output as it was.
    """
    if inspect.isgeneratorfunction(handler):

        @functools.wraps(handler)
        def stream(*args: Any, **kwargs: Any) -> Iterator[Any]:
            with _turn(args):
                yield from handler(*args, **kwargs)

        return stream

    @functools.wraps(handler)
    def run(*args: Any, **kwargs: Any) -> Any:
        with _turn(args):
            return handler(*args, **kwargs)

    return run


@contextlib.contextmanager
def _turn(args: tuple[Any, ...]) -> Iterator[None]:
    session = next(a for a in args if isinstance(a, Session))
    try:
        session.acquire_turn()
    except SessionBusy as exc:
        raise gr.Error(str(exc), title="Still busy") from exc
    try:
        yield
    finally:
        session.release_turn()


def _apply(session: Session, operations: list[Any]) -> tuple[str, Files]:
    results = session.apply(operations)
    files = [str(f) for r in results for f in r.files]
    text = "\n\n".join(r.message if r.ok else f"⚠️ {r.message}" for r in results)
    return text, (files or None)


def _views(session: Session, message: str) -> list[Any]:
    """[image, slider, plane, status, shown labels] for the current state; starts the slice's
    embedding."""
    if not session.has_image:
        empty = gr.CheckboxGroup(choices=[], value=[])
        return [None, gr.Slider(minimum=0, maximum=1, value=0), gr.Radio(), message, empty]
    session.prefetch()
    img = session.current
    count = session.slice_count
    h, w = session.slice_shape
    payload = encode_view(
        session.view(), (w, h), img.index, count, time.monotonic_ns(), session.has_work
    )
    return [
        payload,
        gr.Slider(minimum=0, maximum=max(count - 1, 1), value=img.index, interactive=count > 1),
        gr.Radio(value=img.plane, interactive=img.ct.is_volume),
        _status_text(session, message),
        _shown_labels(session),
    ]


def _status_text(session: Session, message: str) -> str:
    """Where the user is (file, slice, size, label, waiting clicks), then `message`: every
    answer shown in the status keeps that first line."""
    if not session.has_image:
        return message
    img = session.current
    pending = session.pending
    count = session.slice_count
    h, w = session.slice_shape
    label = session.label_set.name_of(session.active_label)
    where = f"**{img.ct.name}** · {img.plane} slice {img.index}/{count - 1} · {w}×{h} px"
    if len(session.images) > 1:
        where += f" · image {session.position + 1}/{len(session.images)}"
    where += f" · label **{label}**"
    if pending:
        what = "box corner" if pending.kind == "box" else "point"
        where += (
            f" · waiting for {pending.remaining if pending.kind != 'box' else 1} {what} click(s)"
        )
    lines = message.splitlines()
    if len(lines) > STATUS_LINES:
        message = "\n".join([*lines[:1], "_(the full answer is in the chat)_"])
    return f"{where}\n\n{message}" if message else where


def _shown_labels(session: Session) -> gr.CheckboxGroup:
    """One box per label name, ticked when shown (the list follows every change)."""
    entries = session.label_set.entries
    return gr.CheckboxGroup(
        choices=[(name, label_id) for label_id, name in entries],
        value=[i for i, _ in entries if i not in session.hidden],
    )


def _controls(session: Session) -> list[Any]:
    """Window menu, level, width, label menu and 3-D table as the session has them now, so
    they follow changes made from the chat ("window bone", "this is L1") or a bundle."""
    window = session.window
    name = session.window_name
    return [
        AS_STORED if name is None else name,
        window.level if window else gr.skip(),
        window.width if window else gr.skip(),
        session.label_set.name_of(session.active_label),
        session.volume_report or "",
    ]


def _chat_history(session: Session) -> list[dict[str, str]]:
    return [{"role": role, "content": text} for role, text in session.chat]


def _recent(history: list[dict] | None, budget: Budget) -> list[dict]:
    """The conversation the chat panel keeps: its last messages, as a saved bundle does, so a
    long session never grows the history every chat request sends past the request limit."""
    keep = budget.max_saved_chat_messages - 2  # room for the next question and its answer
    return list(history or [])[-keep:]


def _chat_pairs(history: list[dict] | None) -> tuple[tuple[str, str], ...]:
    """The chatbot's messages as (role, text), as bundles keep them."""
    pairs = []
    for message in history or []:
        role = message.get("role")
        content = message.get("content")
        if role not in ("user", "assistant") or (message.get("metadata") or {}).get("title"):
            continue  # the model's "Thinking…" notes are not part of the conversation
        pairs.append((role, _text_of(content)))
    return tuple(pairs)


def _text_of(content: Any) -> str:
    """A chat message's text: Gradio 6 sends [{"type": "text", "text": …}, …] (files as
    {"type": "file", …}, which are not kept)."""
    if isinstance(content, str):
        return content
    items = content if isinstance(content, list) else [content]
    return "\n".join(
        str(item.get("text", "")) for item in items if isinstance(item, dict) and "text" in item
    )


def _badge(backend: Backend, router: Router) -> str:
    """A small backend badge; the details open on demand."""
    info = backend.info
    parser = _parser_description(router)
    reason = f"<p>{html.escape(info.reason)}</p>" if info.reason else ""
    return (
        f"<details><summary>⚙ {html.escape(info.name)}</summary><div class='ssam-details'>"
        f"<p>{html.escape(info.description)}</p>{reason}"
        f"<p>Command parser: {html.escape(parser)}</p></div></details>"
    )


def _parser_description(router: Router) -> str:
    if router.llm is None:
        return "offline (EN/中文). Set DEEPSEEK_API_KEY to add DeepSeek-R1 for free-form requests."
    return f"offline first, then DeepSeek-R1 ({router.llm.config.model}) when unsure."


def _event_op(data: Any) -> ops.ClickImage | ops.DrawBox:
    """The panel's event payload as an operation; anything else is refused (it is input)."""
    if not isinstance(data, dict):
        raise SessionError("That click could not be read.")
    try:
        if data.get("kind") == "box":
            return ops.DrawBox(x0=data["x"], y0=data["y"], x1=data["x1"], y1=data["y1"])
        return ops.ClickImage(x=data["x"], y=data["y"], mode=data.get("kind", "positive"))
    except (ValidationError, KeyError) as exc:
        raise SessionError("That click lies outside the image or could not be read.") from exc


def _end_session(s: Session) -> None:
    """Free a session's files and memory: Gradio calls this when its state expires or is deleted.

    After the session's arrays are gone, glibc keeps freed heap pages unless asked to return
    them; malloc_trim makes RSS go back to the baseline instead of staying at its peak.
    """
    s.close()
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):  # not glibc: nothing to trim
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def build_app(
    backend: Backend,
    router: Router,
    flag_dir: Path,
    budget: Budget = DEFAULT_BUDGET,
    ledger: ImageLedger | None = None,
) -> gr.Blocks:
    """The whole UI around one shared backend (model) and command router.

    Sessions end `budget.session_ttl_s` after their last change (API clients have no heartbeat,
    so this is what frees them) or as soon as the browser tab closes (`demo.unload`); Gradio's
    cache of uploaded and generated files is swept on the same schedule (`delete_cache`). All
    sessions' images together stay under the `ledger`'s cap (half the machine's memory unless
    given).
    """
    flags = FlagStore(flag_dir, budget)
    ttl = budget.session_ttl_s
    shared = ledger or ImageLedger(default_cap_bytes())
    # fill_width: Gradio's default caps the app at 1536 px, which leaves the image ~800 px
    # wide on a 2560 screen; app.css bounds the image column by the window's height instead.
    with gr.Blocks(title="SpinalSAM", delete_cache=(min(ttl, 600), ttl), fill_width=True) as demo:
        session = gr.State(
            lambda: Session(backend, budget=budget, ledger=shared),
            time_to_live=ttl,
            delete_callback=_end_session,
        )
        with gr.Row(equal_height=False):
            gr.Markdown(INTRO, elem_id="title")
            gr.HTML(_badge(backend, router), elem_id="backend-badge", js_on_load=None)
        with gr.Row():
            with gr.Column(scale=3, min_width=320, elem_id="image-column"):
                image = image_panel()
                status = gr.Markdown("Open a CT file to start.", elem_id="status")
                # min_width: Gradio's 160 px default puts one button a row on a phone.
                action = functools.partial(gr.Button, min_width=ACTION_MIN_PX)
                with gr.Row():
                    seg_btn = action("Segment", variant="primary", elem_id="segment")
                    seg_points = action("Point mask", elem_id="segment-points")
                    seg_box = action("Box mask", elem_id="segment-box")
                    undo_btn = action("Undo", elem_id="undo")
                    clear_btn = action("Clear", elem_id="clear")
                with gr.Row():
                    propagate_btn = action("Propagate through volume", elem_id="propagate")
                    cancel_btn = gr.Button("Stop", size="sm", min_width=60)
                    measure_btn = action("Measure", elem_id="measure")
                    png_btn = action("Export PNG", elem_id="export-png")
                    nifti_btn = action("Export NIfTI", elem_id="export-nifti")
                    all_btn = action("Export all (zip)", elem_id="export-all")
                download = gr.File(
                    label="Download",
                    interactive=False,
                    file_count="multiple",
                    height=90,
                    elem_id="download",
                )
            with gr.Column(scale=1, min_width=260, elem_id="controls-column"):
                files = gr.File(
                    label="CT file(s)",
                    file_count="multiple",
                    file_types=sorted(SUPPORTED_EXTENSIONS),
                    type="filepath",
                    elem_id="upload",
                    height=120,
                )
                with gr.Row():
                    example = gr.Dropdown(
                        list(EXAMPLES),
                        elem_id="example",
                        value=next(iter(EXAMPLES)),
                        label="Example",
                        scale=3,
                    )
                    load_example = gr.Button("Load", scale=1, min_width=80, elem_id="load-example")
                plane = gr.Radio(
                    list(PLANES), value="axial", label="Plane", interactive=False, elem_id="plane"
                )
                slider = gr.Slider(
                    0,
                    1,
                    value=0,
                    step=1,
                    label="Slice (wheel, ↑/↓)",
                    interactive=False,
                    elem_id="slice",
                )
                with gr.Row():
                    prev_btn = gr.Button("◀ Prev", size="sm", elem_id="prev-slice")
                    next_btn = gr.Button("Next ▶", size="sm", elem_id="next-slice")
                window = gr.Dropdown(
                    [AS_STORED, *PRESETS, "custom"],
                    value=AS_STORED,
                    label="Window",
                    elem_id="window",
                )
                with gr.Row():
                    level = gr.Number(400, label="Level (HU)", precision=0, elem_id="level")
                    width = gr.Number(1800, label="Width (HU)", precision=0, elem_id="width")
                label_name = gr.Dropdown(
                    ["vertebra", *VERTEBRA_NAMES],
                    value="vertebra",
                    allow_custom_value=True,
                    label="Label of the selected mask",
                    elem_id="label-name",
                )
                shown = gr.CheckboxGroup(
                    [],
                    label="Shown labels (hidden ones are left out of exports and measurements)",
                    elem_id="shown-labels",
                )
            with gr.Column(scale=1, min_width=280, elem_id="chat-column"):
                chatbot = gr.Chatbot(label="Assistant", height=420, elem_id="chat")
                chat_in = gr.Textbox(
                    placeholder="e.g. add two negative points · 生成框掩码 · help",
                    show_label=False,
                    elem_id="chat-input",
                )
                with gr.Row(visible=False) as confirm_row:  # "Did you mean …?" / destructive ops
                    confirm_btn = gr.Button("Confirm", variant="primary", elem_id="chat-confirm")
                    cancel_chat_btn = gr.Button("Cancel", elem_id="chat-cancel")
                pending_ops = gr.State(None)  # operations waiting for that one click
        with gr.Accordion("3-D measurements", open=False):
            measure3d_btn = gr.Button("Measure all labels (3-D)")
            seg_btn_dicom = gr.Button("Export DICOM-SEG", elem_id="export-dicom-seg")
            measurements_md = gr.Markdown()
            with gr.Row():
                histogram = gr.Plot(label="HU histogram per label")
                surface = gr.Model3D(label="3-D surface of the labels")
        with gr.Accordion("Compare with ground truth", open=False):
            gt_files = gr.File(
                label="Ground-truth mask / label map", file_count="multiple", type="filepath"
            )
            metrics_md = gr.Markdown()
        with gr.Accordion("Share: flag a result, save or reopen a session", open=False):
            with gr.Row():
                rating = gr.Radio(
                    ["good", "needs correction", "wrong"], value="good", label="Result"
                )
                comment = gr.Textbox(label="Comment")
                flag_btn = gr.Button("Flag for review")
            with gr.Row():
                save_btn = gr.Button("Save session bundle", elem_id="save-session")
                bundle_in = gr.File(
                    label="Open a session bundle (.npz)",
                    file_types=[".npz"],
                    type="filepath",
                    elem_id="open-session",
                )

        view_out = [session, image, slider, plane, status, shown]
        control_out = [window, level, width, label_name, measurements_md]

        def sync_controls(s: Session) -> list[Any]:
            return _controls(s)

        def run_ops(*operations: Any) -> Callable[..., list[Any]]:
            @_one_at_a_time
            def handler(s: Session):
                msg, out_files = _guard(lambda: _apply(s, list(operations)))
                return [s, *_views(s, msg), out_files]

            return handler

        @_one_at_a_time
        def act(s: Session, operation: Callable[[], Any]) -> list[Any]:
            """Apply the operation a widget's value describes; bad values become messages."""

            def run() -> tuple[str, Files]:
                try:
                    op = operation()
                except ValidationError as exc:
                    raise SessionError(
                        f"That value is not allowed ({exc.errors()[0]['msg']})."
                    ) from exc
                return _apply(s, [op])

            msg, _ = _guard(run)
            return [s, *_views(s, msg)]

        def on_upload(paths: list[str] | None, s: Session):
            # The upload box is emptied after each upload, so a refused file never blocks
            # the next one (and old uploads do not pile up in the list).
            return [*act(s, lambda: ops.OpenFiles(paths=tuple(paths or ()))), None]

        def on_example(name: str, s: Session):
            def load() -> ops.OpenFiles:
                if name not in EXAMPLES:
                    raise SessionError("Pick one of the listed examples.")
                return ops.OpenFiles(paths=tuple(str(p) for p in example_files(name, s.workdir)))

            return act(s, load)

        def on_prompt(s: Session, evt: gr.EventData):
            return act(s, lambda: _event_op(evt._data))

        def on_step(s: Session, evt: gr.EventData):
            data = evt._data if isinstance(evt._data, dict) else {}
            return act(s, lambda: ops.GotoSlice(index=data.get("index", -1)))

        def on_slider(index: float, s: Session):
            return act(s, lambda: ops.GotoSlice(index=int(index)))

        def on_plane(p: str, s: Session):
            return act(s, lambda: ops.SetPlane(plane=p))

        def on_window(name: str, lvl: float | None, wid: float | None, s: Session):
            def window_op() -> Any:
                if name == "custom":
                    return ops.SetCustomWindow(level=lvl or 0, width=wid or 0)
                if name == AS_STORED:
                    return ops.ResetWindow()
                return ops.SetWindow(preset=name)

            return act(s, window_op)

        @_one_at_a_time
        def on_chat(
            text: str, history: list[dict], s: Session, pending: Any
        ) -> Iterator[list[Any]]:
            if not text.strip():  # a stray Enter: nothing to say, no empty bubbles
                yield ["", history, s, *_views(s, ""), None, gr.skip(), pending, gr.skip()]
                return
            limit = budget.max_chat_chars  # a longer message is refused; its echo is cut
            shown = text if len(text) <= limit else f"{text[:limit]} …"
            history = [*_recent(history, budget), {"role": "user", "content": shown}]
            result, thinking = None, ""
            stream = router.stream(text, image_size=_size(s), masks_elsewhere=_masks_elsewhere(s))
            for item in stream:
                if isinstance(item, str):  # the LLM's reasoning, streamed while it thinks
                    thinking += item
                    reply = {
                        "role": "assistant",
                        "content": inert_block(thinking),  # never rendered as Markdown/HTML
                        "metadata": {"title": "Thinking…"},
                    }
                    yield [gr.skip(), [*history, reply], *[gr.skip()] * 10]
                else:
                    result = item
            assert result is not None
            note = f"\n\n_{result.note}_" if result.note else ""
            if result.confirm:  # unsure or destructive: one click applies, nothing runs before
                answer = f"**{result.confirm}**{note}\n\n<sub>parser: {result.parser}</sub>"
                history = [*history, {"role": "assistant", "content": answer}]
                ops_out = result.operations
                yield [
                    "",
                    history,
                    s,
                    *_views(s, ""),
                    None,
                    gr.skip(),
                    ops_out,
                    gr.Row(visible=True),
                ]
                return
            if result.operations:
                text_out, file = _guard(lambda: _apply(s, result.operations))
            else:
                text_out, file = OFF_TOPIC, None
            answer = f"{text_out}{note}\n\n<sub>parser: {result.parser}</sub>"
            yield [
                "",
                [*history, {"role": "assistant", "content": answer}],
                s,
                *_views(s, text_out),
                file,
                s.label_set.name_of(s.active_label),  # "this is L1" also shows in the dropdown
                None,
                gr.Row(visible=False),
            ]

        @_one_at_a_time
        def on_chat_confirm(history: list[dict], s: Session, pending: Any) -> list[Any]:
            if not pending:
                return [history, s, *_views(s, ""), None, gr.skip(), None, gr.Row(visible=False)]
            text_out, file = _guard(lambda: _apply(s, list(pending)))
            history = [*_recent(history, budget), {"role": "assistant", "content": text_out}]
            label = s.label_set.name_of(s.active_label)
            return [history, s, *_views(s, text_out), file, label, None, gr.Row(visible=False)]

        def on_chat_cancel(history: list[dict]) -> list[Any]:
            reply = {"role": "assistant", "content": "Cancelled: nothing was changed."}
            return [[*_recent(history, budget), reply], None, gr.Row(visible=False)]

        @_one_at_a_time
        def on_propagate(s: Session, progress=gr.Progress()):  # noqa: B008 — Gradio's idiom
            def report(done: int, total: int) -> None:
                progress((done, total), desc="Propagating", unit="slices")

            msg, _ = _guard(lambda: s.propagate(on_progress=report))
            return [s, *_views(s, msg)]

        def on_label(name: str, s: Session):
            return act(s, lambda: ops.SetLabel(name=name))

        def on_shown(ids: list[int] | None, s: Session):
            return act(s, lambda: ops.ShowLabels(ids=tuple(ids or ())))

        @_one_at_a_time
        def on_measure3d(s: Session):
            msg, _ = _guard(lambda: _apply(s, [ops.MeasureVolume()]))
            if msg.startswith("⚠️"):
                return msg, None, None
            figure, mesh = s.volume_figures()
            return msg, figure, str(mesh) if mesh else None

        @_one_at_a_time
        def on_dicom_seg(s: Session):
            msg, out_files = _guard(lambda: _apply(s, [ops.ExportDicomSeg()]))
            return _status_text(s, msg), out_files

        @_one_at_a_time
        def on_gt(paths: list[str] | None, s: Session):
            return _guard(lambda: _apply(s, [ops.Compare(paths=tuple(paths or ()))]))[0]

        @_one_at_a_time
        def on_flag(rate: str, note: str | None, s: Session):
            note = note or ""  # an API client may send null for an empty comment

            def flag() -> str:
                limit = budget.max_flag_comment_chars
                record, mask = s.flag_record(rate, note[:limit])  # raises when no image is open
                saved = flags.add(rate, note, record, mask.read_bytes() if mask else None)
                cut = (
                    f" Your comment was cut to its first {limit} characters."
                    if saved.truncated
                    else ""
                )
                if mask is None:
                    return f"Flagged for review, without a mask: this slice shows none.{cut}"
                return (
                    "Thanks — the result was flagged for review with its prompts, mask and "
                    f"metrics.{cut}"
                )

            return _status_text(s, _guard(flag)[0])

        @_one_at_a_time
        def on_save(s: Session, history: list[dict] | None):
            msg, out_files = _guard(lambda: _apply(s, [ops.SaveSession(chat=_chat_pairs(history))]))
            return _status_text(s, msg), out_files

        @_one_at_a_time
        def on_bundle(path: str | None, history: list[dict] | None, s: Session):
            msg, _ = _guard(
                lambda: _apply(s, [ops.OpenBundle(path=path)]) if path else "No bundle uploaded."
            )
            reopened = msg.startswith("Reopened")
            return [*[s, *_views(s, msg)], _chat_history(s) if reopened else history]

        files.upload(on_upload, [files, session], [*view_out, files], api_name="open_files").then(
            sync_controls, [session], control_out, api_visibility="private"
        )
        load_example.click(on_example, [example, session], view_out, api_name="load_example").then(
            sync_controls, [session], control_out, api_visibility="private"
        )
        # Every click counts, even one made while the previous answer is still on its way.
        image.prompt(
            on_prompt, [session], view_out, api_visibility="private", trigger_mode="multiple"
        )
        image.step(
            on_step, [session], view_out, api_visibility="private", trigger_mode="always_last"
        )
        slider.release(on_slider, [slider, session], view_out, api_name="goto_slice")
        plane.input(on_plane, [plane, session], view_out, api_name="set_plane")
        window_inputs = [window, level, width, session]
        window.input(on_window, window_inputs, view_out, api_name="set_window")
        level.submit(on_window, window_inputs, view_out, api_visibility="private")
        width.submit(on_window, window_inputs, view_out, api_visibility="private")
        for button, operation, name in [
            (seg_btn, ops.Segment(prompt="auto"), "segment"),
            (seg_points, ops.Segment(prompt="points"), "segment_points"),
            (seg_box, ops.Segment(prompt="box"), "segment_box"),
            (undo_btn, ops.Undo(), "undo"),
            (clear_btn, ops.Clear(target="all"), "clear"),
            (prev_btn, ops.PreviousImage(), "previous_image"),
            (next_btn, ops.NextImage(), "next_image"),
            (measure_btn, ops.Measure(), "measure"),
            (png_btn, ops.Export(format="png"), "export_png"),
            (nifti_btn, ops.Export(format="nifti"), "export_nifti"),
            (all_btn, ops.ExportAll(), "export_all"),
        ]:
            button.click(
                run_ops(operation), [session], [*view_out, download], api_name=name
            ).then(  # Undo may bring back a replaced image with its own window and labels
                sync_controls, [session], control_out, api_visibility="private"
            )
        chat_in.submit(
            on_chat,
            [chat_in, chatbot, session, pending_ops],
            [chat_in, chatbot, *view_out, download, label_name, pending_ops, confirm_row],
            api_name="chat",
        ).then(sync_controls, [session], control_out, api_visibility="private").then(
            None, js=SHOW_IMAGE_JS
        )
        confirm_btn.click(
            on_chat_confirm,
            [chatbot, session, pending_ops],
            [chatbot, *view_out, download, label_name, pending_ops, confirm_row],
            api_name="chat_confirm",
        ).then(sync_controls, [session], control_out, api_visibility="private").then(
            None, js=SHOW_IMAGE_JS
        )
        cancel_chat_btn.click(
            on_chat_cancel, [chatbot], [chatbot, pending_ops, confirm_row], api_name="chat_cancel"
        )
        propagate_btn.click(on_propagate, [session], view_out, api_name="propagate")
        cancel_btn.click(
            lambda s: _status_text(s, s.cancel_propagation()),
            [session],
            status,
            queue=False,
            api_name="cancel",
        )
        label_name.input(on_label, [label_name, session], view_out, api_name="set_label")
        shown.input(on_shown, [shown, session], view_out, api_name="show_labels")
        measure3d_btn.click(
            on_measure3d, [session], [measurements_md, histogram, surface], api_name="measure_3d"
        )
        seg_btn_dicom.click(
            on_dicom_seg, [session], [status, download], api_name="export_dicom_seg"
        )
        gt_files.upload(on_gt, [gt_files, session], metrics_md, api_name="compare")
        flag_btn.click(on_flag, [rating, comment, session], status, api_name="flag")
        save_btn.click(on_save, [session, chatbot], [status, download], api_name="save_session")
        bundle_in.upload(
            on_bundle, [bundle_in, chatbot, session], [*view_out, chatbot], api_name="open_session"
        ).then(sync_controls, [session], control_out, api_visibility="private")

        def on_unload(request: gr.Request) -> None:
            """The tab closed: free the session now, not when Gradio's one-hour grace ends."""
            demo.state_holder.delete_state(request.session_hash)

        demo.unload(on_unload)
    return demo


def _masks_elsewhere(s: Session) -> bool:
    """Whether masks exist beyond the current slice (propagation would overwrite them)."""
    if not s.has_image:
        return False
    shown = s.shown_labels()
    return int((shown != 0).sum()) > int((s.label_slice() != 0).sum())


def _size(s: Session) -> tuple[int, int] | None:
    """(width, height) of the slice's pixel grid: the frame chat coordinates are given in."""
    if not s.has_image:
        return None
    h, w = s.slice_shape
    return (w, h)
