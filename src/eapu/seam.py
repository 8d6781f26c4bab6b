"""The seam between training and hardware: what an analog weight tensor must offer.

Everything above the crossbar (the optimizers of `eapu.optim` and `eapu.algorithms`, the
analog layers of `eapu.nn`, energy accounting, retention) reaches a weight's cells only
through an `AnalogTile`. `eapu.tiles.Tile` implements it on a simulated crossbar; a driver
for a real chip implements the same protocol (its ``program`` sends pulses, its ``read``
reads the array), and nothing above has to change. A test wraps the simulator in a second
implementation that records every call and trains the paper's autoencoder to the same
result.

A ledger row (`eapu.ledger.FIELDS`) is an int64 tensor on the tile's device: written cells,
pulses, verify reads, failed cells, skipped cells, array rows written. It may be filled in
lazily (a simulator batches the writes of one optimizer step): read it after
`AnalogTile.flush` (any read of the cells flushes too).
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from torch import Tensor

__all__ = ["AnalogTile"]


@runtime_checkable
class AnalogTile(Protocol):
    """The cells behind one weight tensor, as the layers and optimizers use them.

    Weights are unitless, conductances in µS; W = Rwg·(G − G_ref) (reference column) or
    Rwg·(G⁺ − G⁻) (differential pair).
    """

    name: str
    """The layer's name (``"features.0"``); a sibling tile gets a suffix (``".A"``)."""
    shape: tuple[int, ...]
    """The weight tensor's shape."""
    transposed: bool
    """Whether the weight is a transposed convolution's (rows: input channels)."""

    @property
    def scheme(self) -> str:
        """The name of the programming scheme of updates (`eapu.programming.SCHEMES`)."""
        ...

    @property
    def rwg_per_us(self) -> float:
        """Rwg = Wmax / Gmax of the mapping (µS⁻¹)."""
        ...

    @property
    def sd_us(self) -> float:
        """SD(εcell) of a write (µS): the default EaPU threshold is this times Rwg."""
        ...

    @property
    def cells(self) -> int:
        """Cells the tile occupies: its weights' cells and the reference cells it brought."""
        ...

    @property
    def cells_per_weight(self) -> int:
        """1 (reference column) or 2 (differential pair)."""
        ...

    @property
    def pulse_step_us(self) -> float:
        """One SET pulse's mean step at the window centre (µS): the device's granularity."""
        ...

    @property
    def noisy_reads(self) -> bool:
        """Whether `read` differs from `weight` (read noise)."""
        ...

    @property
    def clipped(self) -> int:
        """Targets (at load or update) that lay beyond the device window."""
        ...

    @property
    def load_record(self) -> Tensor:
        """The ledger row of the initial load."""
        ...

    def program(self, dwn: Tensor, *, scheme: str | None = None) -> Tensor:
        """Write ΔWn (weight units; 0: the cell is not written); the ledger row."""
        ...

    def flush(self) -> None:
        """Finish the writes waiting on this tile's hardware (a simulator batches the writes
        of one step); the rows `program` returned are final after it."""
        ...

    def load(self, weight: Tensor) -> Tensor:
        """Program absolute weights (initial or pre-trained); the ledger row."""
        ...

    def weight(self) -> Tensor:
        """The weight the cells hold now (noise-free)."""
        ...

    def read(self, *, evaluation: bool = False) -> Tensor:
        """The weight as one read of every cell sees it (read noise); ``evaluation`` draws
        from the evaluation stream, so evaluating never changes what training reads."""
        ...

    def symmetry_point(self) -> Tensor:
        """Per weight, where its cells' SET and RESET steps are equal (weight units)."""
        ...

    def conductances(self) -> Tensor:
        """The weight cells' conductances (µS), shaped like the weight (a leading axis of 2
        for a differential pair)."""
        ...

    def reference_conductances(self) -> Tensor:
        """The conductance each weight is read against (µS), shaped like the weight; zeros
        for a differential pair."""
        ...

    def write_counts(self) -> Tensor:
        """Writes (updates that pulsed the cell) per weight cell since the start."""
        ...

    def sibling(self, suffix: str, weight: Tensor) -> AnalogTile:
        """A new tile of the same shape on the same hardware (Tiki-Taka's fast array A),
        named ``name + suffix`` and loaded with ``weight``."""
        ...

    def publish(self, parameter: Any, value: Tensor | None = None) -> None:
        """Copy ``value`` (default: `weight`) into the layer's parameter and remember it, so
        that a change of the parameter behind the tile's back is refused (`check`)."""
        ...

    def check(self, parameter: Any) -> None:
        """Raise `RuntimeError` if ``parameter`` changed since the last `publish`."""
        ...
