"""structlog set-up: JSON lines when stdout is not a TTY (journald, CI), console on a TTY.

Every line gcd writes to stderr goes through the same renderer: gcd's own events, the stdlib
`logging` of the libraries it uses (APScheduler, urllib3, docker), warnings, and the
exception of a thread that dies (`thread_crashed`) or of the main thread (`crashed`). In JSON
mode a traceback is a field of one line (`exception`), never lines of its own. Both
paths write through one `structlog.PrintLogger` on stderr, which holds one lock per file:
lines of two threads never interleave.

The set-up waits for structlog: `configure_logging` applies it when structlog is first
imported (gcd.when_structlog_imported), so `gcd --help`, `check` and `test-pattern`, which log
nothing unless something goes wrong, start without structlog's import (bench/RESULTS.md).
A stdlib record or a warning before then imports it (`_DeferredHandler`).
"""

from __future__ import annotations

import logging
import sys
import threading
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Literal, TextIO

from gcd.lean_imports import when_imported

if TYPE_CHECKING:
    import structlog

LogFormat = Literal["auto", "json", "console"]

QUIET_LIBRARIES = {"apscheduler": logging.WARNING}
"""APScheduler logs every job run at INFO (a heartbeat every 2 s): only its warnings (missed
runs) and errors are worth a line."""


class _LineHandler(logging.Handler):
    """Writes each formatted stdlib record as one line through gcd's printer."""

    def __init__(self, printer: structlog.PrintLogger) -> None:
        super().__init__()
        self.printer = printer
        self.gcd_owned = True

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.printer.msg(self.format(record))
        except Exception:  # logging must never raise into the caller
            self.handleError(record)


class _DeferredHandler(logging.Handler):
    """Until structlog is imported: the first stdlib record imports it, which applies the
    set-up (replacing this handler by a `_LineHandler`), then goes through the new handler."""

    def __init__(self) -> None:
        super().__init__()
        self.gcd_owned = True

    def emit(self, record: logging.LogRecord) -> None:
        import structlog  # noqa: F401, PLC0415 (applies the pending set-up)

        for handler in logging.getLogger().handlers:
            if getattr(handler, "gcd_owned", False) and handler is not self:
                handler.handle(record)


@dataclass(frozen=True)
class _Settings:
    stream: TextIO
    use_json: bool
    threshold: int


_pending: list[_Settings] = []


def _log_thread_crash(args: threading.ExceptHookArgs) -> None:
    import structlog  # noqa: PLC0415

    if args.exc_type is SystemExit:
        return
    structlog.get_logger("gcd").error(
        "thread_crashed",
        thread=args.thread.name if args.thread is not None else None,
        error_type=args.exc_type.__name__,
        error=str(args.exc_value),
        exc_info=(args.exc_type, args.exc_value, args.exc_traceback),
    )


def _log_crash(
    exc_type: type[BaseException], exc: BaseException, traceback: TracebackType | None
) -> None:
    if issubclass(exc_type, KeyboardInterrupt):
        sys.__excepthook__(exc_type, exc, traceback)
        return
    import structlog  # noqa: PLC0415

    structlog.get_logger("gcd").critical(
        "crashed",
        error_type=exc_type.__name__,
        error=str(exc),
        exc_info=(exc_type, exc, traceback),
    )


def configure_logging(log_format: LogFormat = "auto", level: str = "info") -> None:
    """Log events go to stderr so that stdout carries only the command's output (table, JSON)."""
    stream = sys.stderr
    use_json = log_format == "json" or (log_format == "auto" and not stream.isatty())
    settings = _Settings(stream, use_json, logging.getLevelNamesMapping()[level.upper()])
    threading.excepthook = _log_thread_crash
    sys.excepthook = _log_crash
    _pending[:] = [settings]
    _route_stdlib_deferred(settings.threshold)
    when_imported("structlog", _apply_pending)


def _apply_pending() -> None:
    if _pending:
        _apply(_pending.pop())


def _apply(settings: _Settings) -> None:
    import structlog  # noqa: PLC0415

    stream = settings.stream
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer()
        if settings.use_json
        else structlog.dev.ConsoleRenderer(colors=stream.isatty())
    )
    printer = structlog.PrintLogger(file=stream)
    stamp = structlog.processors.TimeStamper(fmt="iso", utc=True)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            stamp,
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(settings.threshold),
        logger_factory=lambda *_args: printer,
        cache_logger_on_first_use=False,
    )
    _route_stdlib(printer, renderer, stamp, settings.threshold)


def _route_stdlib_deferred(threshold: int) -> None:
    _install_root_handler(_DeferredHandler(), threshold)


def _route_stdlib(
    printer: structlog.PrintLogger,
    renderer: structlog.typing.Processor,
    stamp: structlog.typing.Processor,
    threshold: int,
) -> None:
    import structlog  # noqa: PLC0415

    handler = _LineHandler(printer)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[
                structlog.processors.add_log_level,
                structlog.stdlib.add_logger_name,
                stamp,
            ],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                renderer,
            ],
        )
    )
    _install_root_handler(handler, threshold)


def _install_root_handler(handler: logging.Handler, threshold: int) -> None:
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "gcd_owned", False)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(threshold)
    for name, quiet in QUIET_LIBRARIES.items():
        logging.getLogger(name).setLevel(max(quiet, threshold))
    logging.captureWarnings(True)
