"""The one resource budget every entry point (upload, zip, DICOM series, bundle, ground truth,
segment call, chat) is checked against.

SpinalSAM runs as a public web service on 2 CPU cores and a few GiB of memory per process, so
every number here is chosen so that one hostile input costs well under 1 GiB of memory and a
few seconds of CPU, while a real clinical CT (512² × up to ~1000 slices) still opens. Numbers
are in voxels, bytes and millimetres, never in "whatever the file says".
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
    # Volumes: 512 × 512 × 640 voxels = 0.67 GB as float32, the most one session may hold.
    max_voxels: int = 512 * 512 * 640
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
    # Text a user or a model can send.
    max_chat_chars: int = 2000
    max_llm_answer_chars: int = 64_000
    max_flag_comment_chars: int = 2000
    # Sessions: state and files are dropped this long after the browser goes away.
    session_ttl_s: int = 3600
    # Queue: jobs one session may have waiting at once, so one user cannot starve the others.
    max_jobs_per_session: int = 4


DEFAULT_BUDGET = Budget()
