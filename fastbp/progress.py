"""Progress on a terminal: a tqdm bar there, nothing (or plain lines) else.

:func:`progress` counts rows (or any unit) as a file is loaded or streamed:
on a terminal it draws a tqdm bar with the rate (rows/s), the bytes read so
far and, when the total is known, the ETA; off a terminal, or disabled
(``--quiet``), it draws nothing and costs one attribute test per update.
:class:`EpochProgress` is a ``callback(epoch, result)`` for
:func:`fastbp.train`: a tqdm bar on a terminal, a plain line about every 10%
of the epochs elsewhere (logs, pipes), nothing when disabled.

tqdm is imported only when a bar is drawn, so ``import fastbp`` never pays
for it.
"""

from __future__ import annotations

import sys
from typing import IO, Any

__all__ = ["EpochProgress", "Progress", "human_bytes", "is_terminal", "progress"]


def is_terminal(stream: IO[str] | None) -> bool:
    """True when stream is an open terminal (a closed or odd stream is not)."""
    try:
        return bool(stream is not None and stream.isatty())
    except (AttributeError, ValueError, OSError):  # no isatty, or closed
        return False


def human_bytes(n: float) -> str:
    """n bytes in binary units: "512 B", "1.5 KiB", "23.4 MiB", "1.02 GiB"."""
    if n < 1024:
        return f"{n:.0f} B"
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        n /= 1024
        if n < 1024 or unit == "TiB":
            break
    return f"{n:.3g} {unit}"


class Progress:
    """A count of work done (rows, batches) shown as a tqdm bar, or nothing.

    Made by :func:`progress`; use it as a context manager or call
    :meth:`close`. ``enabled`` is False when nothing is drawn, so a caller may
    skip computing what it would report.
    """

    def __init__(
        self,
        total: int | None,
        unit: str,
        desc: str | None,
        enabled: bool,
        stream: IO[str] | None,
    ) -> None:
        self.n = 0
        self.bytes = 0
        self._note = ""
        self._bar: Any = None
        stream = sys.stderr if stream is None else stream
        self.enabled = bool(enabled) and is_terminal(stream)
        if self.enabled:
            from tqdm import tqdm

            self._bar = tqdm(
                total=total,
                unit=f" {unit}",
                unit_scale=True,  # 1.23M rows, 4.56M rows/s
                desc=desc,
                file=stream,
                leave=True,
                dynamic_ncols=True,
                mininterval=0.2,
            )

    def update(self, n: int = 1, *, bytes: int = 0) -> None:
        """Count n more units done and ``bytes`` more bytes read."""
        if self._bar is None:
            return
        self.n += n
        if bytes:
            self.bytes += bytes
            self._show_postfix()
        self._bar.update(n)

    def note(self, text: str) -> None:
        """Show text after the bar (a loss, an epoch number) from now on."""
        if self._bar is not None:
            self._note = text
            self._show_postfix()

    def _show_postfix(self) -> None:
        parts = [self._note] if self._note else []
        if self.bytes:
            parts.append(f"{human_bytes(self.bytes)} read")
        # refresh=False: tqdm redraws at most every mininterval anyway.
        self._bar.set_postfix_str(", ".join(parts), refresh=False)

    def set_total(self, total: int | None) -> None:
        """Change the expected total (e.g. once a scan pass has counted rows)."""
        if self._bar is not None:
            self._bar.total = total
            self._bar.refresh()

    def close(self) -> None:
        """Finish the bar (its last state stays on screen); safe to repeat."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def progress(
    total: int | None = None,
    *,
    unit: str = "rows",
    desc: str | None = None,
    enabled: bool = True,
    stream: IO[str] | None = None,
) -> Progress:
    """A progress bar for loading or streaming, drawn only on a terminal.

    Parameters
    ----------
    total : int or None
        Units expected in all (rows x epochs when streaming several epochs);
        None when unknown: the bar then shows the count and rate, no ETA.
    unit : str
        What is counted, shown as "rows" and "rows/s".
    desc : str or None
        A label before the bar, such as "loading" or "epoch 3/10".
    enabled : bool
        False (``--quiet``) draws nothing.
    stream : text file or None
        Where to draw; default standard error. Not a terminal: nothing drawn.

    Returns
    -------
    Progress
        Call ``update(n, bytes=...)`` as work is done, and ``close()`` (or use
        it in a ``with`` block).

    Examples
    --------
    >>> with progress(total=None, desc="loading", enabled=False) as bar:
    ...     bar.update(65536, bytes=1 << 20)
    """
    return Progress(total, unit, desc, enabled, stream)


class EpochProgress:
    """``callback(epoch, result)`` for :func:`fastbp.train`: epochs done.

    On a terminal, a tqdm bar over the epochs with the last loss (and, given
    ``rows_per_epoch``, rows/s in the rate). Elsewhere, a plain line when an
    epoch crosses each tenth of ``epochs`` and at the last one::

        epoch  20/200  loss 0.0123  val_loss 0.0150  val_r2 0.9812

    Nothing at all when ``enabled`` is False. ``epoch`` counts from 1 and may
    skip values (fastbp.train reports about 20 times in all).

    Parameters
    ----------
    epochs : int
        Epochs to train, the bar's total.
    enabled : bool
        False (``--quiet``) prints nothing.
    stream : text file or None
        Default standard output.
    rows_per_epoch : int or None
        Training rows per epoch: the bar then counts rows, and shows rows/s.
    desc : str
        The bar's label.
    loss_scale : float
        Losses are shown times this (the target's units, for a target
        trained scaled).
    """

    def __init__(
        self,
        epochs: int,
        *,
        enabled: bool = True,
        stream: IO[str] | None = None,
        rows_per_epoch: int | None = None,
        desc: str = "training",
        loss_scale: float = 1.0,
    ) -> None:
        self.epochs = epochs
        self.loss_scale = loss_scale
        self.enabled = bool(enabled)
        self.stream = sys.stdout if stream is None else stream
        self.rows_per_epoch = rows_per_epoch
        self.every = max(1, epochs // 10)
        self.next_line = self.every
        self.shown = 0
        self._bar: Progress | None = None
        if self.enabled and is_terminal(self.stream):
            rows = rows_per_epoch
            self._bar = progress(
                epochs * rows if rows else epochs,
                unit="rows" if rows else "epochs",
                desc=desc,
                stream=self.stream,
            )

    def __call__(self, epoch: int, result: Any) -> None:
        if not self.enabled:
            return
        if self._bar is not None:
            done = epoch - self.shown
            self.shown = epoch
            note = f"epoch {epoch}/{self.epochs}"
            if result.final_loss is not None:
                note += f", loss {result.final_loss * self.loss_scale:.4g}"
            self._bar.note(note)
            rows = self.rows_per_epoch
            self._bar.update(done * rows if rows else done)
            return
        if epoch >= self.next_line or epoch == self.epochs:
            self.stream.write(self.line(epoch, result) + "\n")
            self.stream.flush()
            self.next_line = (epoch // self.every + 1) * self.every

    def line(self, epoch: int, result: Any) -> str:
        """The plain progress line for epoch (what fastbp train printed)."""
        text = (
            f"epoch {epoch:>{len(str(self.epochs))}}/{self.epochs}  "
            f"loss {result.final_loss * self.loss_scale:.6g}"
        )
        if result.val_loss:
            text += f"  val_loss {result.val_loss[-1] * self.loss_scale:.6g}"
            text += f"  val_{result.metric_name} {result.val_metric[-1]:.4f}"
        return text

    def close(self) -> None:
        """Finish the bar, if one is drawn; safe to repeat."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> EpochProgress:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
