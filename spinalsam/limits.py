"""The one resource budget every entry point (upload, zip, DICOM series, bundle, ground truth,
segment call, chat) is checked against.

SpinalSAM runs as a public web service on 2 CPU cores and a few GiB of memory per process, so
every number here is chosen so that one hostile input costs well under 1 GiB of memory and a
few seconds of CPU, while a real clinical CT (512² × up to 512 slices) still opens. Numbers
are in voxels, bytes and millimetres, never in "whatever the file says".

Where each limit is enforced: `spinalsam.io` (upload, zip, DICOM series, NIfTI/MHA/NRRD, ground
truth: everything from headers, before pixels are decoded), `spinalsam.planes.display_scale`
(display grid), `spinalsam.segmenters.bounded` (pixels per segment call), `spinalsam.flags`
(comment length), `spinalsam.ui` (session lifetime), `spinalsam.guards` (jobs per session), and
the bundle validation. The README's "Security and resource limits" table explains each number;
`bench/attacks.py` measures what the attacks of issue 12 cost under this budget.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DEFAULT_BUDGET", "Budget"]


@dataclass(frozen=True)
class Budget:
    """Limits for one session's inputs and work. Frozen: shared safely by every session."""

    # Uploads: all files of one upload together, and everything an archive unpacks to.
    max_upload_bytes: int = 1 << 30
    max_decompressed_bytes: int = 1 << 30
    max_files: int = 2000  # files of one upload / entries of one zip (one DICOM file per slice)
    # Volumes: 512 × 512 × 512 voxels = 0.54 GB as float32 (+ 0.27 GB uint16 labels once
    # painted), the most one session may hold. Measured (bench/attacks.py): 512 × 512 × 640
    # peaked at +1.44 GB RSS while loading, over the 1 GB a single upload may cost.
    max_voxels: int = 512 * 512 * 512
    max_slices: int = 2000
    max_side_px: int = 4096  # longest side of one stored slice
    # Spacing outside this range is a broken or hostile header, not a CT.
    min_spacing_mm: float = 0.01
    max_spacing_mm: float = 50.0
    # What the browser gets: the displayed plane is resampled onto a grid no larger than this.
    max_display_side_px: int = 2048
    # Segmentation works on at most this many pixels per call; larger slices are segmented on
    # a bounded grid and mapped back.
    max_segment_pixels: int = 1024 * 1024
    # What one session may name and place; a saved bundle holds no more, so whatever a session
    # holds can be saved and reopened.
    max_labels: int = 1000  # label names (a spine has 26 vertebrae)
    max_prompts_per_slice: int = 500  # points and boxes on one slice
    max_saved_chat_messages: int = 400  # a bundle keeps the last ones
    max_saved_text_chars: int = 20_000  # one saved chat message or 3-D report, cut beyond
    # Text a user or a model can send.
    max_chat_chars: int = 2000
    max_llm_answer_chars: int = 64_000
    max_flag_comment_chars: int = 2000
    # Sessions: state and files are dropped this long after the browser goes away.
    session_ttl_s: int = 3600
    # One API request's body (file uploads excepted: they have `max_upload_bytes`). Gradio
    # validates all of it before any handler runs: a chat history of 200,000 messages (12 MB)
    # took 28 s and +832 MB. A long chat (its last 400 messages are kept) is well under this.
    max_request_bytes: int = 4 << 20
    # Uploads stay in Gradio's cache for a session's lifetime, with no quota per user: one
    # that would leave less free disk than this is refused, so uploads cannot fill the disk
    # that exports, bundles and unpacked archives of every session need.
    min_free_disk_bytes: int = 2 << 30
    # Queue: jobs one session may have waiting at once, so one user cannot starve the others.
    max_jobs_per_session: int = 4
    # One request at a time uses a session; the next waits this long for it, then is answered
    # "still busy" (quick clicks queue up; a click during a propagation is told to wait).
    session_busy_wait_s: float = 3.0
    # SAM: slices on each side of the one on screen embedded in the background while the user
    # looks (`spinalsam.prefetch`): 6 encoder runs per slice change at most, one at a time on
    # the model's one shared prefetch thread, and 6 x 4 MB of ViT-B embeddings in the shared,
    # byte-bounded cache.
    prefetch_radius: int = 3

    @property
    def max_dicom_items(self) -> int:
        """Sequence items one DICOM image may hold (a file, or a bundle's saved headers of one
        series): pydicom builds every item while parsing, ~700 bytes each. An enhanced CT's
        per-frame groups take ten or so per frame, compressed pixel data a few fragments."""
        return 32 * self.max_slices + 10_000


DEFAULT_BUDGET = Budget()
