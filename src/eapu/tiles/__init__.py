"""Crossbar tiles: the conductances behind one weight tensor, their mapping and placement.

A `Crossbar` places the weight matrices of a network densely onto fixed-size arrays (32×32
by default) and owns what layers share: the reference column of each array, the device
model, the programming scheme and the generators of the device's randomness. It holds every
cell of its tiles in flat tensors (its buffers: conductances, gate levels, write counts, the
device-to-device draw), so that the whole crossbar follows ``model.to(device)`` and is saved
with ``model.state_dict()`` (`eapu.nn.convert` makes it a submodule of the first analog
layer). A `Tile` is one weight tensor's view of those cells; it implements the seam the
optimizers and layers use (`eapu.seam.AnalogTile`: ``program``, ``weight``, ``read`` ...).

Mappings (Liu et al. 2025, Methods):
- ``reference_column``: W = Rwg · (G − G_ref), one trainable cell per weight and one fixed
  reference cell per used row of each array, shared by every block in that array
  (the paper's autoencoder: 135 weights -> 162 cells).
- ``differential``: W = Rwg · (G⁺ − G⁻), two cells per weight, a change split between them.

Operating range (Eq. 1, Rwg = Wmax / Gmax): the crossbar holds weights up to ``w_max`` in
magnitude, so its cells work in a conductance range of Gmax = w_max / Rwg above and below the
reference (``reference_column``: [g_ref − Gmax, g_ref + Gmax], the reference at
``g_min_us + Gmax`` by default) or between ``g_min_us`` and ``g_min_us + Gmax``
(``differential``). A larger Rwg therefore means smaller conductances (cheaper reads). An Rwg
whose range the device's window cannot hold is refused; a target outside the device window is
counted (``Tile.clipped``), never clipped without a record.

A weight tensor is laid out as a matrix whose rows are the crossbar's inputs (fan-in:
``in_channels·kh·kw`` for a convolution, ``in_features`` for a linear layer, ``in_channels``
for a transposed convolution, whose kernel positions are outputs) and whose columns are its
outputs.

The package's rooms: `placement` (arrays, blocks, operating range), `crossbar`, `tile`.
"""

from __future__ import annotations

from .crossbar import Crossbar, characterized_sd
from .placement import MAPPINGS, Block, Placement, matrix_shape, operating_range
from .tile import Tile, siblings

__all__ = [
    "MAPPINGS",
    "Block",
    "Crossbar",
    "Placement",
    "Tile",
    "characterized_sd",
    "matrix_shape",
    "operating_range",
    "siblings",
]
