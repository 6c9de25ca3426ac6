"""`bsrn upscale`: images, folders and videos in, s times larger out, never a partial file."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn, TimeRemainingColumn
from rich.text import Text

from bsrn_cli.backends.memory import DEFAULT_MAX_MEMORY, format_size, parse_size, physical_memory
from bsrn_cli.cli.common import (BackendOption, DeviceOption, ModelOption, ThreadsOption, TileOption,
                                 check_run_options, console, err_console, report_error)
from bsrn_cli.errors import BsrnError, UsageProblem
from bsrn_cli.io.atomic import OutputExists, remove_stale_temporaries
from bsrn_cli.io.formats import CODECS, FORMAT_SUFFIXES, IMAGE_SUFFIXES, VIDEO_SUFFIXES, output_format

DEFAULT_SCALE = 4
MEDIA_SUFFIXES = IMAGE_SUFFIXES | VIDEO_SUFFIXES
ALPHA_MODES = ("bicubic", "model")


@dataclass
class Source:
    path: Path
    root: Path | None   # the folder given on the command line it was found in, or None
    explicit: bool      # named on the command line (never dropped as an earlier output)


@dataclass
class Job:
    source: Path
    target: Path        # a file; for --frames-only videos, the folder of frames

    @property
    def video(self) -> bool:
        return self.source.suffix.lower() in VIDEO_SUFFIXES


@dataclass
class Naming:
    scale: int | float                # the factor asked for (-s), as in the output name: _x4, _x3.5
    suffix: str | None = None        # None: _x<s>
    format: str | None = None        # png|jpg|webp|tiff; None: png for images, the input's container for videos

    def name(self, source: Path) -> str:
        tail = f"_x{self.scale:g}" if self.suffix is None else self.suffix
        if self.format is not None:
            ext = FORMAT_SUFFIXES[self.format]
        else:
            ext = source.suffix.lower() if source.suffix.lower() in VIDEO_SUFFIXES else ".png"
        return f"{source.stem}{tail}{ext}"


def resolved(path: Path) -> Path:
    """``path.resolve()``, or the absolute path when it cannot be resolved (a symbolic link
    loop, a name too long): such an entry then fails alone, when it is read."""
    try:
        return path.resolve()
    except (OSError, RuntimeError):
        return Path(os.path.abspath(path))


def _walk(folder: Path, recursive: bool, exclude: Path | None) -> tuple[list[Path], list[BsrnError]]:
    """Media files under ``folder``; a folder that cannot be listed is one problem, not the end."""
    files, problems = [], []
    try:
        entries = sorted(folder.iterdir())
    except OSError as exc:
        return [], [BsrnError(f"{folder}: cannot list this folder ({exc.strerror or exc})")]
    for entry in entries:
        if entry.name.startswith("."):
            continue
        try:
            is_folder = entry.is_dir()
        except OSError as exc:  # is_dir() swallows most errors; the rest make this entry fail alone
            problems.append(BsrnError(f"{entry}: cannot be read ({exc.strerror or exc})"))
            continue
        if is_folder:
            if recursive:
                if not entry.is_symlink() and resolved(entry) != exclude:
                    found, more = _walk(entry, recursive, exclude)
                    files += found
                    problems += more
            elif entry.suffix.lower() in MEDIA_SUFFIXES:
                problems.append(BsrnError(f"{entry}: is a folder, not an image or video"))
        elif entry.suffix.lower() in MEDIA_SUFFIXES:
            files.append(entry)
    return files, problems


def expand(inputs: list[Path], recursive: bool = False,
           exclude: Path | None = None) -> tuple[list[Source], list[BsrnError]]:
    """The files to process, and the inputs that are missing or hold nothing to process."""
    sources, problems = [], []
    for item in inputs:
        if item.is_dir():
            found, more = _walk(item, recursive, exclude)
            problems += more
            if not found and not more:
                problems.append(BsrnError(f"{item}: folder contains no images or videos"))
            sources += [Source(p, item, False) for p in found]
        elif item.exists() or item.is_symlink():
            sources.append(Source(item, None, True))
        else:
            problems.append(BsrnError(f"{item}: no such file or folder"))
    return sources, problems


def plan_jobs(inputs: list[Path], sources: list[Source], output: Path | None, naming: Naming,
              frames_only: Path | None = None, folder: bool = False) -> tuple[list[Job], int]:
    """Where each output goes, and how many found files were dropped as earlier outputs.

    Without -o: a file's output goes beside it, a folder's outputs into a sibling folder
    ``<folder>_x<s>`` keeping the tree. With -o: into it (keeping the tree) if it is, or must
    be, a folder (``folder``: it was written with a trailing separator), else to that file. A file found in a folder whose name is the output name of
    another input (``a_x4.png`` beside ``a.png``) is an earlier output, not an input.
    """
    many = len(sources) > 1 or any(i.is_dir() for i in inputs)
    as_folder = output is not None and (folder or output.is_dir() or many or output.suffix == "")
    if output is not None and as_folder and output.exists() and not output.is_dir():
        raise BsrnError(f"{output}: exists and is not a folder, but several outputs go there")

    def place(src: Source) -> Path:
        name = naming.name(src.path)
        if src.root is None:
            folder = output if as_folder else src.path.parent
        else:
            relative = src.path.parent.relative_to(src.root)
            root = resolved(src.root)
            base = output if as_folder else root.parent / f"{root.name}_x{naming.scale:g}"
            folder = base / relative
        return folder / name

    jobs = []
    for src in sources:
        if frames_only is not None and src.path.suffix.lower() in VIDEO_SUFFIXES:
            relative = src.path.parent.relative_to(src.root) if src.root is not None else Path()
            jobs.append(Job(src.path, frames_only / relative / src.path.stem))
        elif output is not None and not as_folder:
            jobs.append(Job(src.path, output))
        else:
            jobs.append(Job(src.path, place(src)))
    dropped = 0
    if naming.suffix != "":
        targets = {resolved(job.target) for job in jobs}
        kept = [(job, src) for job, src in zip(jobs, sources) if src.explicit or resolved(src.path) not in targets]
        dropped = len(jobs) - len(kept)
        jobs = [job for job, _ in kept]
    return jobs, dropped


def check_output(inputs: list[Path], output: Path | None, folder: bool) -> None:
    """Several inputs, or a folder, with -o naming a file (an image or video suffix, not an
    existing folder, no trailing separator) is a usage mistake: they cannot all go to one file."""
    if output is None or folder or output.is_dir() or output.suffix.lower() not in MEDIA_SUFFIXES:
        return
    if len(inputs) > 1 or any(item.is_dir() for item in inputs):
        what = "several inputs" if len(inputs) > 1 else f"the folder {inputs[0]}"
        raise UsageProblem("-o/--output", f"{output} names a file, but {what} give several outputs",
                           f"did you mean -o {output.with_suffix('')}{os.sep}?")


def claimed_outputs(jobs: list[Job]) -> dict[Path, Path]:
    """Each output path -> the first input (in plan order) that makes it. Two inputs that name the
    same output (``a.png`` and ``a.jpg`` -> ``a_x4.png``) cannot both have it: the later one fails,
    on every run, so a rerun that skips the existing output does not hide the clash."""
    owners: dict[Path, Path] = {}
    for job in jobs:
        if not (job.video and job.target.suffix == ""):
            owners.setdefault(resolved(job.target), job.source)
    return owners


class OutputGuard:
    """What every job's output must pass before work starts, for a local run and a Ray run alike:
    not an input, not claimed by an earlier input (:func:`claimed_outputs`), and, once per output
    folder, our temporary files of killed runs removed. ``ready`` says whether to make it (False:
    an existing output kept)."""

    def __init__(self, jobs: list[Job], overwrite: bool, frames_only: bool):
        self.inputs = {resolved(job.source) for job in jobs}  # files dropped as earlier outputs are not inputs
        self.owners = claimed_outputs(jobs)
        self.overwrite, self.frames_only = overwrite, frames_only
        self.cleaned: set[Path] = set()

    def ready(self, job: Job) -> bool:
        _check_target(job, self.inputs, self.owners)
        frames = job.video and self.frames_only  # a folder of frames: existing frames are kept one by one
        folder = job.target if frames else job.target.parent
        if folder not in self.cleaned:
            self.cleaned.add(folder)
            remove_stale_temporaries(folder)
        return frames or self.overwrite or not job.target.exists()

    def sweep(self, jobs: list[Job]) -> None:
        """After the jobs ran elsewhere (Ray workers, which may be killed mid-write and their
        job retried): remove the temporary files of these jobs' outputs whose process is gone."""
        folders: dict[Path, set[Path]] = {}
        for job in jobs:
            folders.setdefault(job.target.parent, set()).add(job.target)
        for folder, targets in folders.items():
            remove_stale_temporaries(folder, targets)


def _check_target(job: Job, inputs: set[Path], owners: dict[Path, Path]) -> None:
    target = resolved(job.target)
    if target in inputs or target == resolved(job.source):
        raise BsrnError(f"{job.source}: output {job.target} would overwrite an input; choose another -o or --suffix")
    owner = owners.get(target, job.source)
    if owner != job.source:
        raise BsrnError(f"{job.source}: output {job.target} is also the output of {owner}; "
                        "give one of them another name, or use --suffix/--format")
    if job.video:
        if job.target.suffix.lower() not in VIDEO_SUFFIXES and not job.target.is_dir() and job.target.suffix:
            raise BsrnError(f"{job.source}: a video's output must be a video ({', '.join(sorted(VIDEO_SUFFIXES))})"
                            " or a folder with --frames-only")
    else:
        output_format(job.target)


def _check_options(quality: int, fmt: str | None, alpha: str, suffix: str | None, output: Path | None) -> None:
    """Option values that cannot work: usage mistakes (exit status 2), before any work."""
    if not 1 <= quality <= 100:
        raise UsageProblem("--quality", f"{quality} is out of range: choose 1 to 100")
    if fmt is not None and fmt not in FORMAT_SUFFIXES:
        raise UsageProblem("--format", f"{fmt!r} is not an output format: choose {', '.join(FORMAT_SUFFIXES)}")
    if alpha not in ALPHA_MODES:
        raise UsageProblem("--alpha", f"{alpha!r} is not a mode: choose bicubic or model")
    if suffix is not None and ("/" in suffix or os.sep in suffix):
        raise UsageProblem("--suffix", f"{suffix!r} must not contain a path separator")
    if fmt is not None and output is not None and output.suffix and not output.is_dir() \
            and output.suffix.lower() in OUTPUT_SUFFIX_FORMATS \
            and OUTPUT_SUFFIX_FORMATS[output.suffix.lower()] != fmt:
        raise UsageProblem("--format", f"{fmt} and -o {output} disagree", "drop --format or change -o's suffix")


def _check_video_options(codec: str | None, crf: int | None) -> None:
    if codec is not None and codec not in CODECS:
        raise UsageProblem("--codec", f"{codec!r} is not a video codec: choose {', '.join(CODECS)}")
    if crf is not None and not 0 <= crf <= 51:
        raise UsageProblem("--crf", f"{crf} is out of range: choose 0 to 51 (lower is better)")


def _budget(max_memory: str) -> int:
    try:
        return parse_size(max_memory)
    except BsrnError:
        raise UsageProblem("--max-memory", f"{max_memory!r} is not a size: give one such as 2G, 512M or 1.5G") \
            from None


OUTPUT_SUFFIX_FORMATS = {".png": "png", ".jpg": "jpg", ".jpeg": "jpg", ".webp": "webp", ".tif": "tiff",
                         ".tiff": "tiff"}


MAX_FACTOR = 16


def parse_factor(text: str | None) -> int | float | None:
    """-s: an integer is the network's scale (2, 3 or 4); a fraction above 1 is Real-ESRGAN's
    outscale (the smallest scale >= it, then an exact resize)."""
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        raise UsageProblem("-s/--scale", f"{text!r} is not a number") from None
    if math.isfinite(value) and value == int(value):
        if int(value) not in (2, 3, 4):
            raise UsageProblem("-s/--scale", f"unsupported scale {int(value)}: choose 2, 3 or 4, "
                                             "or a fraction such as 3.5")
        return int(value)
    if not (math.isfinite(value) and 1 < value <= MAX_FACTOR):
        raise UsageProblem("-s/--scale", f"{text} is out of range: a fraction must be above 1 and at most "
                                         f"{MAX_FACTOR}")
    return value


def exact_size(side: int, factor: float) -> int:
    """round(side * factor), halves rounded up (12.5 -> 13)."""
    return math.floor(side * factor + 0.5)


def model_scale_for(factor: float) -> int:
    """The smallest network scale >= ``factor``, or 4 above 4."""
    return next((s for s in (2, 3, 4) if s >= factor), 4)


class RateColumn(ProgressColumn):
    """Tiles (or frames) per second."""

    def render(self, task) -> Text:
        speed = task.finished_speed or task.speed
        return Text("" if speed is None else f"{speed:.1f}/s")


def make_progress(quiet: bool) -> Progress:
    """Bars on stderr when it is a terminal (images, each image's tiles, video frames), with
    rate and ETA; nothing when piped or with --quiet."""
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), RateColumn(),
                    TimeRemainingColumn(), console=err_console, transient=True,
                    disable=quiet or not err_console.is_terminal)


class Runner:
    """Runs the jobs with one upscaler; ``notes`` (where the upscaler's ``on_retry`` writes) are
    printed after each job. With ``outscale``, each result is then resized to
    round(w * outscale) x round(h * outscale)."""

    def __init__(self, upscaler, notes: list[str], alpha: str, quality: int, overwrite: bool,
                 outscale: float | None = None, video: dict | None = None):
        self.upscaler, self.notes = upscaler, notes
        self.scale = upscaler.scale
        self.alpha, self.quality, self.overwrite = alpha, quality, overwrite
        self.outscale = outscale
        self.video_options = video or {}  # codec, crf, audio for upscale_video

    def resized(self, pixels, h: int, w: int):
        """The network's output for an h x w input, resized to the -s factor when it is a fraction."""
        from bsrn_cli.io.images import resize_exact

        if self.outscale is None:
            return pixels
        return resize_exact(pixels, (exact_size(w, self.outscale), exact_size(h, self.outscale)))

    def frame(self, pixels, source: Path):
        """One frame of the video ``source``, upscaled to the -s factor."""
        h, w = pixels.shape[:2]
        return self.resized(self.upscaler.upscale(pixels, source), h, w)

    def check_room(self, job: Job, h: int, w: int, bytes_per_sample: int, channels: int) -> None:
        needed = h * self.scale * w * self.scale * channels * bytes_per_sample
        ram = physical_memory()
        if ram is not None and needed > ram:
            raise BsrnError(f"{job.source}: the {w * self.scale}x{h * self.scale} output needs {format_size(needed)}, "
                            f"more than this machine's {format_size(ram)} of memory")

    def image(self, job: Job, on_tile=None) -> None:
        """One image; ``on_tile(done, total)`` hears about each finished tile."""
        import numpy as np

        from bsrn_cli.io.images import compose_output, load_image, save_output_atomic

        loaded = load_image(job.source)
        self.notes.extend(loaded.notes)
        h, w = loaded.rgb.shape[:2]
        self.check_room(job, h, w, loaded.rgb.itemsize, 4 if loaded.alpha is not None else 3)
        rgb = self.resized(self.upscaler.upscale(loaded.rgb, job.source, on_tile), h, w)
        alpha = None
        if loaded.alpha is not None and self.alpha == "model":
            gray = self.upscaler.upscale(np.repeat(loaded.alpha[..., None], 3, axis=2), job.source, on_tile)
            gray = self.resized(gray, h, w)
            alpha = np.rint(gray.astype(np.float32).mean(axis=2)).astype(loaded.alpha.dtype)
        save_output_atomic(compose_output(rgb, loaded, self.scale, alpha), job.target, quality=self.quality,
                           replace=self.overwrite)

    def video(self, job: Job, progress: Progress, frames_only: bool) -> None:
        from bsrn_cli.io.video import upscale_video, video_info, write_frames

        _, count = video_info(job.source)
        task = progress.add_task(job.source.name, total=count or None)
        try:
            advance = lambda n: progress.update(task, completed=n)
            frame = lambda pixels: self.frame(pixels, job.source)
            if frames_only:
                result = write_frames(job.source, job.target, frame, self.overwrite, advance)
            else:
                result = upscale_video(job.source, job.target, frame, advance, replace=self.overwrite,
                                       **self.video_options)
        finally:
            progress.remove_task(task)
        if result.note:
            self.notes.append(result.note)


def upscale_command(
    inputs: Annotated[list[Path] | None, typer.Argument(
        help="Image files, video files and/or folders.", show_default=False)] = None,
    more_inputs: Annotated[list[Path] | None, typer.Option(
        "--input", "-i", help="An input file or folder, as Real-ESRGAN takes it (repeatable; adds to INPUTS).",
        show_default=False)] = None,
    scale_text: Annotated[str | None, typer.Option(
        "--scale", "-s", metavar="<factor>", show_default="4, or the --model file's",
        help="2, 3 or 4; or a fraction such as 3.5 (the smallest scale >= it, then a Lanczos resize to "
             "the exact size).")] = None,
    output_text: Annotated[str | None, typer.Option(
        "--output", "-o", metavar="<path>", show_default=False,
        help="Output file (one input) or folder (several inputs, a folder input, or a trailing /). "
             "Default: <stem>_x<s>.png beside the input.")] = None,
    model: ModelOption = None,
    device: DeviceOption = "auto",
    backend: BackendOption = "auto",
    threads: ThreadsOption = 0,
    tile: TileOption = 256,
    tile_overlap: Annotated[int | None, typer.Option(
        help="Context pixels around each tile (default: the network's receptive radius, exact).")] = None,
    max_memory: Annotated[str, typer.Option(
        help="Memory budget for the network's working set (e.g. 2G, 512M); tiles shrink to fit.")]
    = DEFAULT_MAX_MEMORY,
    overwrite: Annotated[bool, typer.Option(
        help="Replace existing outputs (never inputs). Without it, inputs whose output exists are skipped.")] = False,
    recursive: Annotated[bool, typer.Option(
        "--recursive", "-r", help="Enter subfolders, keeping the tree under the output folder.")] = False,
    fmt: Annotated[str | None, typer.Option(
        "--format", help="Output image format: png, jpg, webp or tiff (default png, or -o's suffix).")] = None,
    quality: Annotated[int, typer.Option(help="JPEG/WebP quality of the output, 1-100.")] = 95,
    suffix: Annotated[str | None, typer.Option(
        help="Added to the input's stem to name the output (default _x<s>; may be empty).")] = None,
    alpha: Annotated[str, typer.Option(
        help="How transparency is upscaled: bicubic, or model (through the network as gray).")] = "bicubic",
    codec: Annotated[str | None, typer.Option(
        help="Video codec: h264, hevc or vp9 (default h264; vp9 for .webm).", show_default=False)] = None,
    crf: Annotated[int | None, typer.Option(
        help="Video quality, 0-51, lower is better (default 18 for h264, 22 hevc, 31 vp9).",
        show_default=False)] = None,
    audio: Annotated[bool, typer.Option(
        "--audio/--no-audio", help="Carry the videos' audio (a video whose audio cannot be carried fails); "
                                   "--no-audio writes none.")] = True,
    quiet: Annotated[bool, typer.Option(
        "--quiet", "-q", help="No summary line and no notes (errors still print).")] = False,
    frames_only: Annotated[Path | None, typer.Option(
        help="For videos: write the upscaled frames as PNGs into DIR/<video stem>/ instead of a video.")] = None,
    ray_address: Annotated[str | None, typer.Option(
        "--ray", metavar="<address>", show_default=False,
        help="Run the jobs on a Ray cluster: local (a new one on this machine), auto (the one this machine "
             "joined) or an address (HOST:6379, ray://HOST:10001). Outputs go to -o, which every machine must "
             "see. Needs bsrn[ray].")] = None,
    ray_cpus: Annotated[int, typer.Option(
        "--ray-cpus-per-worker", help="With --ray: cores (threads) each worker uses; one worker per that many "
                                      "cores of the cluster.")] = 1,
) -> None:
    """Upscale images and videos by 2, 3 or 4, or a fraction such as 3.5.

    \b
    Examples:
      bsrn upscale photo.jpg -s 4             photo_x4.png beside the input
      bsrn upscale shots/ -r -s 2 -o big/     a tree of images into big/
      bsrn upscale -i photo.jpg -s 3.5        Real-ESRGAN style: x4, then resized to x3.5
      bsrn upscale clip.mp4 -s 2              clip_x2.mp4: H.264, with the audio
      bsrn upscale shots/ -o /shared/big/ --ray auto   on the Ray cluster this machine joined
    """
    inputs = [*(inputs or []), *(more_inputs or [])]
    if not inputs:
        raise UsageProblem("INPUTS", "missing: give image files, video files or folders (or -i FILE)")
    output = Path(output_text) if output_text is not None else None
    folder = output_text is not None and output_text.endswith(("/", os.sep))
    factor = parse_factor(scale_text)
    check_output(inputs, output, folder)
    _check_options(quality, fmt, alpha, suffix, output)
    _check_video_options(codec, crf)
    check_run_options(device, backend, threads, tile, tile_overlap)
    budget = _budget(max_memory)
    if ray_address is not None:
        _check_ray_options(ray_address, ray_cpus, device, backend, frames_only)
    from bsrn_cli.backends import make_upscaler  # heavy imports only once the options are known good
    from bsrn_cli.pretrained.loader import load_model

    scale = factor if isinstance(factor, int) else None  # --model FILE: a fraction takes the file's scale
    if factor is not None and scale is None and model is None:
        scale = model_scale_for(factor)
    if scale is None and model is None:
        scale = DEFAULT_SCALE
    sources, problems = expand(inputs, recursive, output.resolve() if output is not None else None)
    for problem in problems:
        report_error(problem)
    net, _, model_source = load_model(model, scale)
    outscale = factor if isinstance(factor, float) else None
    if outscale is not None and outscale > net.scale and not quiet:
        err_console.print(f"note: x{outscale:g} is above the network's x{net.scale}: upscaled x{net.scale}, "
                          f"then resized up (interpolated, no new detail)", markup=False)
    jobs, _ = plan_jobs(inputs, sources, output, Naming(factor if outscale else net.scale, suffix, fmt),
                        frames_only, folder)
    if ray_address is not None:
        settings = {"backend": backend, "upscaler": {"tile": tile, "overlap": tile_overlap, "max_memory": budget},
                    "alpha": alpha, "quality": quality, "overwrite": overwrite, "outscale": outscale,
                    "video": {"codec": codec, "crf": crf, "audio": audio}, "cpus_per_worker": ray_cpus}
        spec = str(resolved(Path(model_source))) if Path(model_source).exists() else model_source
        _upscale_on_ray(ray_address, inputs, jobs, problems, (spec, net.scale), settings, output, folder, quiet)
        return
    notes: list[str] = []
    upscaler = make_upscaler(net, backend, device, tile=tile, overlap=tile_overlap, threads=threads,
                             max_memory=budget, on_retry=notes.append)
    runner = Runner(upscaler, notes, alpha, quality, overwrite, outscale, {"codec": codec, "crf": crf, "audio": audio})

    guard = OutputGuard(jobs, overwrite, frames_only is not None)
    written: list[Path] = []
    failed, skipped = len(problems), 0  # earlier outputs found among the inputs (dropped) are not counted
    images = [job for job in jobs if not job.video]
    with make_progress(quiet) as progress:
        task = progress.add_task("images", total=len(images), visible=len(images) > 1)
        for job in jobs:
            tiles = None
            try:
                if not guard.ready(job):
                    skipped += 1
                    continue
                if job.video:
                    runner.video(job, progress, frames_only is not None)
                else:
                    tiles = progress.add_task(job.source.name, total=None)
                    runner.image(job, lambda done, total: progress.update(tiles, completed=done, total=total))
                written.append(job.target)
            except OutputExists as exc:  # another run wrote it between our check and our write
                skipped += 1
                runner.notes.append(str(exc))
            except Exception as exc:  # one bad file: one line naming it, and the batch goes on
                failed += 1
                report_error(exc if isinstance(exc, BsrnError) else job_error(job, exc))
            finally:
                if tiles is not None:
                    progress.remove_task(tiles)
                for note in runner.notes if not quiet else ():
                    err_console.print(f"note: {note}", markup=False)
                runner.notes.clear()
                if not job.video:
                    progress.advance(task)
    if not quiet:
        console.print(summary(len(written), skipped, failed, _where(inputs, written, output, folder)),
                      highlight=False, markup=False)
    if failed:
        raise typer.Exit(1)


def _check_ray_options(address: str, cpus: int, device: str, backend: str, frames_only: Path | None) -> None:
    if not address.strip():
        raise UsageProblem("--ray", "give local, auto or the cluster's address (HOST:6379 or ray://HOST:10001)")
    if cpus < 1:
        raise UsageProblem("--ray-cpus-per-worker", "must be at least 1")
    if device == "cuda" or backend == "torch":
        raise UsageProblem("--ray", "runs the packed CPU backend on the workers", "drop --device cuda/--backend torch")
    if frames_only is not None:
        raise UsageProblem("--ray", "does not take --frames-only (one task writes one video)", "drop one of them")


def _upscale_on_ray(address: str, inputs: list[Path], jobs: list[Job], problems: list, model: tuple[str, int],
                    settings: dict, output: Path | None, folder: bool, quiet: bool) -> None:
    """The planner's jobs on a Ray cluster (bsrn_cli/cli/distributed.py): the same checks, skips,
    error lines, notes, summary and exit status as a local run."""
    from bsrn_cli.cli.distributed import connect, require_ray, run_on_ray

    ray = require_ray()
    guard = OutputGuard(jobs, settings["overwrite"], frames_only=False)
    failed, skipped, to_run, written = len(problems), 0, [], []
    for job in jobs:
        try:
            if guard.ready(job):
                to_run.append(job)
            else:
                skipped += 1
        except Exception as exc:
            failed += 1
            report_error(exc if isinstance(exc, BsrnError) else job_error(job, exc))
    if to_run:
        cpus = connect(address, ray)
        try:
            with make_progress(quiet) as progress:
                task = progress.add_task("files", total=len(to_run))

                def heard(job: Job, outcome) -> None:
                    nonlocal failed, skipped
                    if outcome.status == "done":
                        written.append(job.target)
                    elif outcome.status == "skipped":
                        skipped += 1
                    else:
                        failed += 1
                        err_console.print(f"error: {outcome.message}", markup=False)
                    notes = [*outcome.notes, *([outcome.message] if outcome.status == "skipped" else [])]
                    for note in notes if not quiet else ():
                        err_console.print(f"note: {note}", markup=False)
                    progress.advance(task)

                run_on_ray(ray, to_run, *model, dict(settings), cpus, heard)
        finally:
            ray.shutdown()
            guard.sweep(to_run)  # a worker killed mid-write leaves its temporary file
    if not quiet:
        console.print(summary(len(written), skipped, failed, _where(inputs, written, output, folder)),
                      highlight=False, markup=False)
    if failed:
        raise typer.Exit(1)


def job_error(job: Job, exc: BaseException) -> BsrnError:
    """An unexpected failure while making ``job``'s output, as one line that names the input:
    a full disk, a read-only or missing output folder, a file where a folder should be."""
    if isinstance(exc, (FileExistsError, NotADirectoryError)) and exc.filename \
            and Path(exc.filename) != job.target and not _is_temporary(exc.filename):
        return BsrnError(f"{job.source}: cannot write {job.target}: {exc.filename} is a file, not a folder")
    if isinstance(exc, OSError) and exc.strerror:
        return BsrnError(f"{job.source}: cannot write {job.target} ({exc.strerror})")
    return BsrnError(f"{job.source}: {type(exc).__name__}: {exc}" if str(exc) else f"{job.source}: "
                     f"{type(exc).__name__}")


def _is_temporary(name) -> bool:
    return Path(str(name)).name.startswith(".")


def summary(done: int, skipped: int, failed: int, where: str | None) -> str:
    """``done 1, skipped 0, failed 0: wrote a_x4.png`` (the hint when only skips happened)."""
    line = f"done {done}, skipped {skipped}, failed {failed}"
    if skipped and not done and not failed:
        line += " (existing outputs kept; --overwrite replaces them)"
    return line + (f": {where}" if where else "")


def _where(inputs: list[Path], written: list[Path], output: Path | None, folder: bool) -> str | None:
    """The output file of a single input, or the folder the outputs of many went into."""
    if not written:
        return None
    if len(inputs) == 1 and not inputs[0].is_dir() and len(written) == 1:
        return f"wrote {written[0]}"
    if output is not None and (folder or output.is_dir()):
        common = output
    else:
        common = Path(os.path.commonpath([str(path.parent) for path in written]))
    return f"wrote into {str(common).rstrip(os.sep)}{os.sep}"
