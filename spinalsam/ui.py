"""The Gradio Blocks app. It only wires components to the session; the work happens elsewhere.

Every handler takes the per-browser `Session` from `gr.State` and returns the refreshed views,
so buttons, clicks and chat messages all go through `Session.apply` with the same operations.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import gradio as gr
from gradio_image_annotation import image_annotator

from spinalsam import ops
from spinalsam.bundle import load_bundle, save_bundle
from spinalsam.commands import Router
from spinalsam.commands.vertebrae import VERTEBRA_NAMES
from spinalsam.examples import EXAMPLES, example_files
from spinalsam.flags import FlagStore
from spinalsam.io import SUPPORTED_EXTENSIONS
from spinalsam.limits import DEFAULT_BUDGET, Budget
from spinalsam.planes import PLANES
from spinalsam.session import Backend, Session, SessionError, StepResult
from spinalsam.windowing import PRESETS

__all__ = ["build_app"]

log = logging.getLogger(__name__)

CLICK_MODES = {"Positive point": "positive", "Negative point": "negative", "Box (2 clicks)": "box"}
AS_STORED = "as stored / default"
OFF_TOPIC = (
    "I can only act on the image: open, navigate, add points or boxes, segment, clear, undo, "
    "window, measure, export, propagate. Type **help** for examples."
)

INTRO = """# SpinalSAM — interactive spine-CT segmentation
Upload a CT (DICOM, DICOM series or .zip, NIfTI, PNG/JPG) or pick an example, click points or
two box corners on the image, then **Segment** — or just type what you want in the chat
(*"add a box and generate the box mask"*, *"生成框掩码"*, *"go to slice 40 and segment"*).
Research software: not for diagnosis."""


Outcome = str | StepResult | tuple[str, Path | None]


def _guard(action: Callable[[], Outcome]) -> tuple[str, str | None]:
    """Run a user action; errors become messages and never lose the session's state.

    Returns the message and the path of a file to offer for download, if the action made one.
    """
    try:
        out = action()
    except SessionError as exc:
        return f"⚠️ {exc}", None
    except Exception as exc:  # the server must survive anything a user can trigger
        log.exception("unexpected error in a UI action")
        return (
            f"⚠️ Something went wrong ({type(exc).__name__}: {exc}). "
            "Your image, prompts and masks are kept.",
            None,
        )
    if isinstance(out, StepResult):
        message, file = (out.message if out.ok else f"⚠️ {out.message}"), out.file
    elif isinstance(out, tuple):
        message, file = out
    else:
        message, file = out, None
    return message, (str(file) if file else None)


def _apply(session: Session, operations: list[ops.Operation]) -> tuple[str, Path | None]:
    results = session.apply(operations)
    files = [r.file for r in results if r.file]
    text = "\n\n".join(r.message if r.ok else f"⚠️ {r.message}" for r in results)
    return text, (files[-1] if files else None)


def _views(session: Session, message: str) -> list[Any]:
    """[image, slider, plane, status] for the current state; starts the slice's embedding."""
    if not session.has_image:
        return [None, gr.Slider(minimum=0, maximum=1, value=0), gr.Radio(), message]
    session.prefetch()
    img = session.current
    pending = session.pending
    count = session.slice_count
    where = f"**{img.ct.name}** · {img.plane} slice {img.index}/{count - 1}"
    if len(session.images) > 1:
        where += f" · image {session.position + 1}/{len(session.images)}"
    if pending:
        what = "box corner" if pending.kind == "box" else "point"
        where += (
            f" · waiting for {pending.remaining if pending.kind != 'box' else 1} {what} click(s)"
        )
    return [
        session.view(),
        gr.Slider(minimum=0, maximum=max(count - 1, 1), value=img.index, interactive=count > 1),
        gr.Radio(value=img.plane, interactive=img.ct.is_volume),
        f"{where}\n\n{message}" if message else where,
    ]


def _parser_description(router: Router) -> str:
    if router.llm is None:
        return "offline (EN/中文). Set DEEPSEEK_API_KEY to add DeepSeek-R1 for free-form requests."
    return f"offline first, then DeepSeek-R1 (`{router.llm.config.model}`) when unsure."


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
    backend: Backend, router: Router, flag_dir: Path, budget: Budget = DEFAULT_BUDGET
) -> gr.Blocks:
    """The whole UI around one shared backend (model) and command router.

    Sessions end `budget.session_ttl_s` after their last change (API clients have no heartbeat,
    so this is what frees them) or as soon as the browser tab closes (`demo.unload`); Gradio's
    cache of uploaded and generated files is swept on the same schedule (`delete_cache`).
    """
    flags = FlagStore(flag_dir, budget)
    ttl = budget.session_ttl_s
    with gr.Blocks(title="SpinalSAM", delete_cache=(min(ttl, 600), ttl)) as demo:
        session = gr.State(lambda: Session(backend), time_to_live=ttl, delete_callback=_end_session)
        gr.Markdown(INTRO)
        gr.Markdown(
            f"**Segmentation backend:** {backend.info.name} — {backend.info.description}"
            + (f"\n\n{backend.info.reason}" if backend.info.reason else ""),
            elem_id="backend-status",
        )
        with gr.Row():
            with gr.Column(scale=1, min_width=260):
                files = gr.File(
                    label="CT file(s)",
                    file_count="multiple",
                    file_types=sorted(SUPPORTED_EXTENSIONS),
                    type="filepath",
                    elem_id="upload",
                )
                with gr.Row():
                    example = gr.Dropdown(
                        list(EXAMPLES),
                        elem_id="example",
                        value=next(iter(EXAMPLES)),
                        label="Example",
                        scale=3,
                    )
                    load_example = gr.Button("Load", scale=1, elem_id="load-example")
                plane = gr.Radio(
                    list(PLANES), value="axial", label="Plane", interactive=False, elem_id="plane"
                )
                slider = gr.Slider(
                    0, 1, value=0, step=1, label="Slice (↑/↓ keys)", interactive=False
                )
                with gr.Row():
                    prev_btn = gr.Button("◀ Prev", size="sm", elem_id="prev-slice")
                    next_btn = gr.Button("Next ▶", size="sm", elem_id="next-slice")
                window = gr.Dropdown(
                    [AS_STORED, *PRESETS, "custom"], value=AS_STORED, label="Window"
                )
                with gr.Row():
                    level = gr.Number(400, label="Level (HU)", precision=0)
                    width = gr.Number(1800, label="Width (HU)", precision=0)
                mode = gr.Radio(
                    list(CLICK_MODES),
                    value="Positive point",
                    label="Click adds",
                    elem_id="click-mode",
                )
            with gr.Column(scale=2, min_width=400):
                with gr.Tabs():
                    with gr.Tab("Click"):
                        image = gr.Image(
                            label="Click to add prompts",
                            type="numpy",
                            interactive=False,
                            format="png",
                            height=560,
                            elem_id="ct-image",
                        )
                    with gr.Tab("Draw boxes") as draw_tab:
                        drawer = image_annotator(
                            label_list=["object"],
                            image_type="numpy",
                            sources=None,
                            show_share_button=False,
                            elem_id="box-drawer",
                        )
                        use_boxes = gr.Button("Segment the drawn boxes")
                status = gr.Markdown("Open a CT file to start.", elem_id="status")
                with gr.Row():
                    seg_btn = gr.Button("Segment", variant="primary", elem_id="segment")
                    seg_points = gr.Button("Point mask")
                    seg_box = gr.Button("Box mask")
                    undo_btn = gr.Button("Undo", elem_id="undo")
                    clear_btn = gr.Button("Clear", elem_id="clear")
                with gr.Row():
                    propagate_btn = gr.Button("Propagate through volume", elem_id="propagate")
                    cancel_btn = gr.Button("Stop", size="sm", min_width=60)
                    measure_btn = gr.Button("Measure")
                    png_btn = gr.Button("Export PNG")
                    nifti_btn = gr.Button("Export NIfTI", elem_id="export-nifti")
                download = gr.File(label="Download", interactive=False, elem_id="download")
            with gr.Column(scale=1, min_width=300):
                chatbot = gr.Chatbot(label="Assistant", height=420, elem_id="chat")
                chat_in = gr.Textbox(
                    placeholder="e.g. add two negative points · 生成框掩码 · help",
                    show_label=False,
                    elem_id="chat-input",
                )
                gr.Markdown(f"Command parser: {_parser_description(router)}")
        with gr.Accordion("Vertebra labels, 3-D measurements and DICOM-SEG", open=False):
            with gr.Row():
                label_name = gr.Dropdown(
                    ["vertebra", *VERTEBRA_NAMES],
                    value="vertebra",
                    allow_custom_value=True,
                    label="Label new masks as",
                    scale=1,
                    elem_id="label-name",
                )
                measure3d_btn = gr.Button("Measure all labels (3-D)", scale=1)
                seg_btn_dicom = gr.Button("Export DICOM-SEG", scale=1)
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
                save_btn = gr.Button("Save session bundle")
                bundle_in = gr.File(
                    label="Open a session bundle (.npz)", file_types=[".npz"], type="filepath"
                )

        view_out = [session, image, slider, plane, status]

        def on_upload(paths: list[str] | None, s: Session):
            msg, _ = _guard(lambda: s.open_files(paths or []))
            return [s, *_views(s, msg)]

        def on_example(name: str, s: Session):
            msg, _ = _guard(lambda: s.open_files(example_files(name, s.workdir)))
            return [s, *_views(s, msg)]

        def on_click(s: Session, click_mode: str, evt: gr.SelectData):
            x, y = (int(v) for v in evt.index)
            msg, _ = _guard(lambda: s.click(x, y, CLICK_MODES.get(click_mode, "positive")))
            return [s, *_views(s, msg)]

        def run_ops(*operations: ops.Operation) -> Callable[..., list[Any]]:
            def handler(s: Session):
                msg, file = _guard(lambda: _apply(s, list(operations)))
                return [s, *_views(s, msg), file]

            return handler

        def on_slider(index: float, s: Session):
            msg, _ = _guard(lambda: s.apply([ops.GotoSlice(index=int(index))])[0])
            return [s, *_views(s, msg)]

        def on_plane(p: str, s: Session):
            msg, _ = _guard(lambda: s.set_plane(p))  # type: ignore[arg-type]
            return [s, *_views(s, msg)]

        def on_window(name: str, lvl: float, wid: float, s: Session):
            def act() -> str | StepResult:
                if name == "custom":
                    return s.set_custom_window(float(lvl), float(wid))
                if name == AS_STORED:
                    s.window = None
                    return "Default window."
                return s.apply([ops.SetWindow(preset=name)])[0]  # type: ignore[arg-type]

            msg, _ = _guard(act)
            return [s, *_views(s, msg)]

        def on_chat(text: str, history: list[dict], s: Session) -> Iterator[list[Any]]:
            history = [*history, {"role": "user", "content": text}]
            if not text.strip():
                yield ["", history, s, *_views(s, ""), None, gr.skip()]
                return
            result = None
            for item in router.stream(text, image_size=_size(s)):
                if isinstance(item, str):  # the LLM's reasoning, streamed while it thinks
                    reply = {
                        "role": "assistant",
                        "content": item,
                        "metadata": {"title": "Thinking…"},
                    }
                    yield [gr.skip(), [*history, reply], *[gr.skip()] * 7]
                else:
                    result = item
            assert result is not None
            if result.operations:
                text_out, file = _guard(lambda: _apply(s, result.operations))
            else:
                text_out, file = OFF_TOPIC, None
            note = f"\n\n_{result.note}_" if result.note else ""
            answer = f"{text_out}{note}\n\n<sub>parser: {result.parser}</sub>"
            yield [
                "",
                [*history, {"role": "assistant", "content": answer}],
                s,
                *_views(s, text_out),
                file,
                s.label_set.name_of(s.active_label),  # "this is L1" also shows in the dropdown
            ]

        def on_draw_tab(s: Session):
            if not s.has_image:
                return None
            boxes = [
                {"xmin": x0, "ymin": y0, "xmax": x1, "ymax": y1, "label": "object"}
                for x0, y0, x1, y1 in s.prompts.scaled(*s.display_scale).boxes
            ]
            return {"image": s.view(), "boxes": boxes}

        def on_drawn(drawn: dict | None, s: Session):
            def act() -> str:
                boxes = [
                    (b["xmin"], b["ymin"], b["xmax"], b["ymax"])
                    for b in (drawn or {}).get("boxes", [])
                ]
                if not boxes:
                    raise SessionError("Draw at least one box first.")
                msg = s.set_boxes(boxes)
                return f"{msg} {s.segment('box')}"

            msg, _ = _guard(act)
            return [s, *_views(s, msg)]

        def on_propagate(s: Session, progress=gr.Progress()):  # noqa: B008 — Gradio's idiom
            def report(done: int, total: int) -> None:
                progress((done, total), desc="Propagating", unit="slices")

            msg, _ = _guard(lambda: s.propagate(on_progress=report))
            return [s, *_views(s, msg)]

        def on_label(name: str, s: Session):
            return _guard(lambda: s.set_active_label(name))[0]

        def on_measure3d(s: Session):
            try:
                table, figure, mesh = s.measure_volume()
            except SessionError as exc:
                return f"⚠️ {exc}", None, None
            return table, figure, str(mesh) if mesh else None

        def on_dicom_seg(s: Session):
            return _guard(lambda: ("DICOM-SEG written: download it below.", s.export_dicom_seg()))

        def on_gt(paths: list[str] | None, s: Session):
            msg, _ = _guard(lambda: s.compare(paths or []))
            return msg

        def on_flag(rate: str, note: str, s: Session):
            def act() -> str:
                limit = budget.max_flag_comment_chars
                record = s.flag_record(rate, note[:limit])  # raises when no image is open
                mask = s.apply([ops.Export(format="png")])[0].file
                saved = flags.add(rate, note, record, Path(mask).read_bytes() if mask else None)
                cut = (
                    f" Your comment was cut to its first {limit} characters."
                    if saved.truncated
                    else ""
                )
                return (
                    "Thanks — the result was flagged for review with its prompts, mask and "
                    f"metrics.{cut}"
                )

            msg, _ = _guard(act)
            return msg

        def on_save(s: Session):
            return _guard(lambda: ("Session saved: download it below.", save_bundle(s, s.workdir)))

        def on_bundle(path: str | None, s: Session):
            msg, _ = _guard(lambda: load_bundle(s, Path(path)) if path else "No bundle uploaded.")
            return [s, *_views(s, msg)]

        files.upload(on_upload, [files, session], view_out, api_name="open_files")
        load_example.click(on_example, [example, session], view_out, api_name="load_example")
        image.select(on_click, [session, mode], view_out, api_visibility="private")
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
        ]:
            button.click(run_ops(operation), [session], [*view_out, download], api_name=name)
        chat_in.submit(
            on_chat,
            [chat_in, chatbot, session],
            [chat_in, chatbot, *view_out, download, label_name],
            api_name="chat",
        )
        draw_tab.select(on_draw_tab, [session], drawer, api_visibility="private")
        use_boxes.click(on_drawn, [drawer, session], view_out, api_visibility="private")
        propagate_btn.click(on_propagate, [session], view_out, api_name="propagate")
        cancel_btn.click(
            lambda s: s.cancel_propagation(), [session], status, queue=False, api_name="cancel"
        )
        label_name.input(on_label, [label_name, session], status, api_name="set_label")
        measure3d_btn.click(
            on_measure3d, [session], [measurements_md, histogram, surface], api_name="measure_3d"
        )
        seg_btn_dicom.click(
            on_dicom_seg, [session], [status, download], api_name="export_dicom_seg"
        )
        gt_files.upload(on_gt, [gt_files, session], metrics_md, api_name="compare")
        flag_btn.click(on_flag, [rating, comment, session], status, api_name="flag")
        save_btn.click(on_save, [session], [status, download], api_name="save_session")
        bundle_in.upload(on_bundle, [bundle_in, session], view_out, api_name="open_session")

        def on_unload(request: gr.Request) -> None:
            """The tab closed: free the session now, not when Gradio's one-hour grace ends."""
            demo.state_holder.delete_state(request.session_hash)

        demo.unload(on_unload)
    return demo


def _size(s: Session) -> tuple[int, int] | None:
    if not s.has_image:
        return None
    h, w = s.display_shape
    return (w, h)
