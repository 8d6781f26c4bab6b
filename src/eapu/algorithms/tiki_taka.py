"""Tiki-Taka v2 (Gokmen 2021) and chopped TTv2 (Rasch et al. 2024) on eapu's tiles."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, cast

import torch
from torch import Tensor, nn
from torch.optim import Optimizer

from .. import validate
from ..ledger import FIELDS
from ..seam import AnalogTile
from ..tiles import Tile, siblings
from .base import (
    TileAlgorithm,
    analog_tile,
    granularity,
    line_index,
    program_with,
    pulse_train_on,
    register_algorithm,
)
from .tiki_taka_config import FAST_LR, ChoppedTTv2Config, TikiTakaConfig, config_mismatch

__all__ = ["FAST_LR", "ChoppedTTv2", "FastSlot", "TikiTakaV2"]

_W, _R = FIELDS.index("written"), FIELDS.index("reads")
_SLOT_VERSION = 2  # slot states without "version" hold H in weight units (eapu <= this issue)


def _ema(m: Tensor, values: Tensor, momentum: float) -> Tensor:
    """aihwkit's auto-scale average, one update per sample: m ← (1-τ)·m + τ·v, τ = (1-momentum)/n.

    ``n`` is the number of samples given; the first value seeds an empty average (m <= 0);
    non-positive values are skipped. Tensors throughout (a 0-d ``m``): no host round trip.
    """
    tau = (1.0 - momentum) / max(values.numel(), 1)
    v = values.double()
    pos = v > 0
    after = pos.flip(0).cumsum(0).flip(0) - pos.long()  # positive values after each one
    decay = (1 - tau) ** after.double()
    total = pos.sum()
    m = m.double()
    kept = (1 - tau) ** total.double() * m + (tau * decay * v * pos).sum()
    # An empty average starts at its first positive value, the later ones decay it.
    first = torch.argmax(pos.long())
    rest = pos & (torch.arange(v.numel(), device=v.device) > first)
    seeded = (1 - tau) ** (total - 1).clamp(min=0).double() * v[first] + (
        tau * decay * v * rest
    ).sum()
    out = torch.where(m > 0, kept, torch.where(total > 0, seeded, m))
    return out.to(torch.float64)


@dataclass
class FastSlot:
    """One analog parameter's Tiki-Taka state: its fast array and the digital state beside it.

    Tensors live on the parameter's device; ``next_line``, ``samples`` and ``due`` are host
    counters (the schedule, known without reading the device).
    """

    fast: AnalogTile  #: the fast array A
    ref: Tensor  #: A's reference subtracted from its reads (weight units)
    line_of: Tensor  #: the input line of every weight
    buffer: Tensor  #: H, in pulses of C
    chopper: Tensor  #: c_j in {±1}, one per input line (float)
    reads: Tensor  #: reads of each input line so far (int64)
    m_x: Tensor  #: running average of the largest |input| per sample (0-d, float64)
    m_d: Tensor  #: running average of the largest |error| per sample (0-d, float64)
    next_line: int = 0  #: the input line the next transfer reads
    samples: int = 0  #: samples (or steps) counted so far
    due: int = 0  #: line reads due after this step's update

    @classmethod
    def new(cls, fast: AnalogTile, ref: Tensor, line_of: Tensor, shape: Any) -> FastSlot:
        """A fresh slot: H 0, every chopper +1, no reads, empty averages."""
        on = line_of.device
        lines = int(line_of.max()) + 1
        return cls(
            fast=fast,
            ref=ref,
            line_of=line_of,
            buffer=torch.zeros(shape, dtype=torch.float32, device=on),
            chopper=torch.ones(lines, device=on),
            reads=torch.zeros(lines, dtype=torch.int64, device=on),
            m_x=torch.zeros((), dtype=torch.float64, device=on),
            m_d=torch.zeros((), dtype=torch.float64, device=on),
        )

    @property
    def lines(self) -> int:
        """The number of input lines."""
        return self.chopper.numel()


@register_algorithm(
    "ttv2",
    "Tiki-Taka v2: fast array A, digital buffer H, slow array C (Gokmen 2021)",
    options={"fast_lr": FAST_LR},
)
class TikiTakaV2(TileAlgorithm):
    """Tiki-Taka v2 (Gokmen, Front. Artif. Intell. 4, 699148, 2021), optionally chopped.

    Every analog weight W gets a fast array A, placed as an extra tile on the same crossbar
    (``<layer>.A``, programmed to its symmetry point); the layer's own tile is the slow
    array C; a digital buffer H (one float per weight, in pulses of C) sits between them::

        A ← A + c · fast_lr' · ΔW / lr        every step (ΔW = -lr·grad for SGD: the base's ΔW)
        fast_lr' = fast_lr · desired_bl · ε_A / (m_x · m_d)         (auto_scale; else fast_lr)
        after every ``transfer_every`` samples, for the next ``n_reads_per_transfer`` input
        lines j (cycling):
            v = c_j · (read(A[:, j]) - A_sp[:, j])   (a noisy forward read with input e_j,
                                                      less A's symmetry point)
            H[:, j] ← H[:, j] + v · transfer_lr · lr / g_H
            g_H = buffer_granularity · ε_A · auto_granularity / (in_lines · transfer_every)
            n = trunc(H), |n| <= transfer_pulses, where |H| >= 1
            C ← C + n pulses of ε_C
            H ← momentum · H  (forget_buffer)  or  H ← H - (1 - momentum) · n
            c_j flips (chopped: with ``chopper_probability``, or every ``chopper_every``-th
            read of line j)
        W = C + gamma · c·(A - A_sp)                (the layer's parameter; gamma 0 = TTv2)

    This is aihwkit's ``ChoppedTransferCompound`` (1.2.0), which its TTv2 presets use with
    ``in_chop_prob = 0`` and its c-TTv2 presets with 0.01 (Rasch et al., Nat. Commun. 15, 7133,
    2024); with ``n_reads_per_transfer > 1`` it is ``BufferedTransferCompound`` (Gokmen 2021).
    m_x, m_d are running averages of the largest |input| and |output error| of each sample
    of the layer (aihwkit's ``auto_scale``), ε_A and ε_C one SET pulse's step of A and C in
    weight units, and A_sp the symmetry point of A's cells
    (`eapu.seam.AnalogTile.symmetry_point`; aihwkit's ``subtract_symmetry_point`` of its ReRAM
    presets). The defaults are aihwkit 1.2.0's
    ``TTv2ReRamSBPreset`` / ``ChoppedTTv2ReRamSBPreset``: fast_lr 0.5 with auto-scaling and
    31 pulses per sample, one read per sample, transfer learning rate 1 scaled by the SGD
    learning rate, auto-granularity 1000, one pulse per transfer, buffer forgotten after a
    transfer, symmetry point subtracted; c-TTv2 switches its choppers with probability 0.01.

    ``A`` must see the layers' inputs and errors to count samples and auto-scale: call
    ``opt.watch(model)`` once after building the optimizer (``eapu run`` does). Without it,
    use ``transfer_unit="steps"`` and ``auto_scale=False``.

    Simplifications against aihwkit:
    - The rank-one stochastic pulse trains onto A (one per sample) are replaced by a write of
      the whole mini-batch's update: ``fast_scheme="pulsed"`` (default) turns each cell's
      |ΔA| into floor(|ΔA|/ε_A) + Bernoulli(frac) identical pulses (at most
      ``fast_max_pulses``, default desired_bl per sample of the step), which has the pulse
      trains' expectation; any registered scheme name instead writes ΔA with that scheme.
    - A is written once per step, before the step's transfers (aihwkit interleaves them
      sample by sample); m_x, m_d are updated with the step's samples before A is written.
    - A sample is one row of a linear layer's input, or one image of a convolution's batch
      (aihwkit counts every patch position of a convolution as a sample, so its
      convolutions transfer H·W times more often); a convolution's m_x is its input's max.
    - Reading a line reads the whole of A with the tile's read noise and keeps line j; the
      transfer read has no ADC or output noise.
    - H and the choppers are per weight / per input line of each parameter, not per array.

    The options are held as a frozen `TikiTakaConfig` (``opt.config``), saved in
    ``state_dict``: a state saved with other options is refused on load. Give them as
    keywords (``TikiTakaV2(params, lr, fast_lr=0.05)``), as a record (``config=``), or both
    (the keywords override the record's fields).

    Args:
        params: parameters or groups; tile-backed ones are analog, the rest digital.
        lr: learning rate (> 0) of the base optimizer (digital parameters, ΔW of the analog
            ones) and the scale of the transfer into H.
        config: the options as a record (default: the class's defaults, ``CONFIG()``); its
            fields are documented in `TikiTakaConfig`.
        base: the optimizer that proposes ΔW (default ``torch.optim.SGD``).
        seed: seeds the optimizer's generator (pulse rounding, chopper flips); None: drawn
            from torch's global generator.
        **kwargs: fields of the config (``fast_lr=0.05``, ...), which override ``config``'s;
            the rest are passed to ``base``.
    """

    #: The record of this class's options (`TikiTakaConfig`; subclasses their own).
    CONFIG: type[TikiTakaConfig] = TikiTakaConfig
    #: The record of one analog parameter's state (`FastSlot`; subclasses their own).
    SLOT: type[FastSlot] = FastSlot

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        lr: float = 0.01,
        *,
        config: TikiTakaConfig | None = None,
        base: type[Optimizer] = torch.optim.SGD,
        seed: int | None = None,
        **kwargs: Any,
    ) -> None:
        validate.number("lr", lr, low=0, low_open=True)
        if config is not None and type(config) is not self.CONFIG:
            raise ValueError(
                f"Invalid config: {type(config).__name__}; allowed: a {self.CONFIG.__name__}"
            )
        names = self.CONFIG.field_names()
        options = {k: kwargs.pop(k) for k in list(kwargs) if k in names}
        self.config = dataclasses.replace(config or self.CONFIG(), **options)
        if self.config.auto_scale and not issubclass(base, torch.optim.SGD):
            # Adam's ΔW/lr is ~±1 per weight, not x·d: the scale 1/(m_x·m_d) would drive A
            # to its pulse cap every step (measured: LeNet-5 at chance, 600 pulses per cell).
            raise ValueError(
                f"Invalid base: {base.__name__} with auto_scale=True; allowed: torch.optim.SGD "
                "(A's auto-scaled rate assumes ΔW = -lr·gradient, as aihwkit's AnalogSGD), or "
                "auto_scale=False"
            )
        self._seen: dict[int, list[tuple[int, Tensor, Tensor]]] = {}
        self._hooks: list[Any] = []
        super().__init__(params, base, seed=seed, defaults={}, base_kwargs=dict(lr=lr, **kwargs))

    def watch(self, model: nn.Module) -> list[Any]:
        """Observe ``model``'s analog layers: samples, max |input| and max |error| per sample.

        Hooks every module whose ``weight`` is an analog parameter of this optimizer; only
        forward passes with gradients that reach a backward are counted. Returns the hook
        handles (``remove()`` them to stop); watching the same model again replaces them.
        """
        for h in self._hooks:
            h.remove()
        self._hooks = []
        ours = {id(p) for p in self.analog_parameters()}
        for mod in model.modules():
            w = mod._parameters.get("weight")
            if w is not None and id(w) in ours:
                self._hooks.append(mod.register_forward_hook(self._make_hook(w)))
        if not self._hooks:
            raise ValueError(
                "Invalid model: none of its modules holds an analog parameter of this optimizer"
            )
        return list(self._hooks)

    def _make_hook(self, w: Tensor) -> Callable[..., None]:
        key = id(w)

        def hook(mod: nn.Module, args: Any, out: Any) -> None:
            if not (torch.is_grad_enabled() and isinstance(out, Tensor) and out.requires_grad):
                return
            x = args[0].detach()
            n = x.shape[0] if x.dim() >= 3 else x.numel() // max(x.shape[-1], 1)
            x_max = x.reshape(n, -1).abs().amax(1).float()

            def on_grad(g: Tensor) -> None:
                d_max = g.detach().reshape(n, -1).abs().amax(1).float()
                self._seen.setdefault(key, []).append((n, x_max, d_max))

            out.register_hook(on_grad)

        return hook

    def fast_tile(self, p: Tensor) -> AnalogTile:
        """The fast array A of analog parameter ``p``."""
        return self._slot(p).fast

    def buffer(self, p: Tensor) -> Tensor:
        """The digital buffer H of ``p`` (in pulses of C)."""
        return self._slot(p).buffer

    def chopper(self, p: Tensor) -> Tensor:
        """The choppers c_j ∈ {±1} of ``p``'s input lines (float tensor)."""
        return self._slot(p).chopper

    def reference(self, p: Tensor) -> Tensor:
        """A's reference (weight units) subtracted from its reads: its symmetry point, or 0."""
        return self._slot(p).ref

    def fast_rate(self, p: Tensor) -> Tensor | float:
        """The factor ΔA = fast_rate · ΔW / lr of the next write onto A (fast_lr None: ΔA = ΔW);
        a 0-d tensor when auto-scaled (from the layer's running averages)."""
        slot = self._slot(p)
        if self.config.fast_lr is None:
            return 1.0
        if not self.config.auto_scale:
            return self.config.fast_lr
        mxd = slot.m_x * slot.m_d
        scale = self.config.fast_lr * self.config.desired_bl * granularity(slot.fast)
        return torch.where(mxd > 0, scale / torch.where(mxd > 0, mxd, 1.0), scale)

    def buffer_gain(self, p: Tensor, lr: float) -> float:
        """H gained per unit of A read (weight units): transfer_lr · lr / g_H."""
        slot = self._slot(p)
        g_h = self.config.buffer_granularity * granularity(slot.fast)
        if self.config.auto_granularity > 0:
            g_h *= self.config.auto_granularity / (slot.lines * self.config.transfer_every)
        return self.config.transfer_lr * lr / g_h

    def _slot(self, p: Tensor) -> FastSlot:
        slot = self._slots.get(id(p))
        if slot is None:
            # Every analog parameter without a fast array gets one now, all placed at once.
            new = [p, *(q for q in self.analog_parameters() if id(q) not in self._slots)]
            new = list({id(q): q for q in new}.values())
            self._place_fast(new)
            for q in new:
                analog_tile(q).publish(q, self.forward_weight(q))
            slot = self._slots[id(p)]
        return slot

    def _place_fast(self, params: list[Tensor]) -> None:
        """Place the fast arrays A of ``params`` all at once (`eapu.tiles.siblings`: one
        draw, one call of the load scheme), each loaded at its cells' symmetry point (or at 0
        without ``subtract_symmetry_point``)."""
        tiles = [analog_tile(p) for p in params]
        if self.config.subtract_symmetry_point:
            # A starts at its symmetry point, a read of 0: loaded once, with it.
            points: dict[int, Tensor] = {}

            def at_symmetry_point(a: AnalogTile) -> Tensor:
                points[id(a)] = a.symmetry_point()
                return points[id(a)]

            fast = siblings(tiles, ".A", at_symmetry_point)
            refs = [points[id(f)] for f in fast]
        else:
            refs = [
                torch.zeros(t.shape, device=p.device) for p, t in zip(params, tiles, strict=True)
            ]
            fast = siblings(tiles, ".A", refs)
        for p, tile, f, ref in zip(params, tiles, fast, refs, strict=True):
            self._slots[id(p)] = self.SLOT.new(f, ref, line_index(tile).to(p.device), tile.shape)

    def _cells(self, p: Tensor) -> int:
        return int(analog_tile(p).cells) + int(self._slot(p).fast.cells)

    def forward_weight(self, p: Tensor) -> Tensor:
        """C's weight plus ``gamma`` times A's chopped reading (``gamma`` 0: C alone)."""
        slot = self._slot(p)
        w = analog_tile(p).weight()
        if self.config.gamma:
            a = slot.fast.weight() - slot.ref
            w = w + self.config.gamma * slot.chopper[slot.line_of] * a
        return w

    def _observe(self, p: Tensor, slot: FastSlot) -> int:
        """Consume what the hooks saw since the last step: the samples of this step."""
        seen = self._seen.pop(id(p), [])
        if not seen:
            if self.config.needs_watch and not self._hooks:
                raise RuntimeError(
                    "TikiTakaV2 counts samples and auto-scales A's rate from the layers' "
                    "inputs and errors: call opt.watch(model) once after building the "
                    "optimizer (or use transfer_unit='steps' and auto_scale=False)"
                )
            return 0
        if self.config.auto_scale:
            x = torch.cat([s[1] for s in seen])
            d = torch.cat([s[2] for s in seen])
            slot.m_x = _ema(slot.m_x, x, self.config.auto_momentum)
            slot.m_d = _ema(slot.m_d, d, self.config.auto_momentum)
        return sum(s[0] for s in seen)

    def _write_fast(self, fast: AnalogTile, da: Tensor, cap: int) -> Tensor:
        if self.config.fast_scheme != "pulsed":
            before = fast.write_counts().clone()
            r = program_with(fast, da, self.config.fast_scheme)
            r[_W] = ((fast.write_counts() - before) > 0).sum()
            return r
        eps = granularity(fast)
        ratio = da.abs() / eps
        whole = torch.floor(ratio)
        u = torch.rand(ratio.shape, generator=self.generator_for(ratio.device), device=ratio.device)
        n = (whole + (u < ratio - whole).to(whole.dtype)).clamp(max=cap)
        trains = (n * torch.sign(da)).to(torch.int64)
        return pulse_train_on(fast, trains, eps, "sign", flush=False)

    def _reads(
        self, p: Tensor, slot: FastSlot, n_reads: int, lr: float
    ) -> tuple[Tensor, list[Tensor]]:
        """``n_reads`` line reads of A into H, in read order: the reads' ledger row and, per
        round, the whole pulses H sends to C (written afterwards, `_after_updates`)."""
        fast: AnalogTile = slot.fast
        on = slot.buffer.device
        row = torch.zeros(len(FIELDS), dtype=torch.int64, device=on)
        lines = slot.chopper.numel()
        start = slot.next_line
        slot.next_line = (start + n_reads) % lines
        order = (start + torch.arange(n_reads, device=on)) % lines
        gain = self.buffer_gain(p, lr)
        per_read = fast.cells_per_weight
        h = slot.buffer
        trains = []
        # A is written once per step, so reads of distinct lines commute: one round per
        # repeated visit of a line (a step with more reads than lines visits some twice).
        for r in range((n_reads + lines - 1) // lines):
            idx = order[r * lines : (r + 1) * lines]
            sel = torch.zeros(lines, dtype=torch.bool, device=on)
            sel[idx] = True
            read_lines = sel[slot.line_of]
            v = (fast.read() - slot.ref) * slot.chopper[slot.line_of]
            row[_R] += read_lines.sum() * per_read
            h += torch.where(read_lines, v * gain, 0.0)
            n = torch.trunc(h).clamp(-self.config.transfer_pulses, self.config.transfer_pulses)
            n = torch.where(read_lines & (h.abs() >= 1), n, 0.0)
            trains.append(n.to(torch.int64))
            moved = n != 0
            if self.config.forget_buffer:
                h.copy_(torch.where(moved, h * self.config.momentum, h))
            else:
                h.sub_((1 - self.config.momentum) * n)
            slot.reads[idx] += 1
            if self.config.chopper_every is not None:
                flip = slot.reads[idx] % self.config.chopper_every == 0
            elif self.config.chopper_probability > 0:  # one draw per read, in read order
                draw = torch.rand(idx.numel(), generator=self.generator_for(on), device=on)
                flip = draw < self.config.chopper_probability
            else:
                continue
            slot.chopper[idx] = torch.where(flip, -slot.chopper[idx], slot.chopper[idx])
        return row, trains

    def _update(self, p: Tensor, dw: Tensor | None, group: dict[str, Any]) -> list[Tensor]:
        slot = self._slot(p)
        rows = []
        samples = self._observe(p, slot)
        if dw is not None:  # 1. the gradient goes onto A, chopped, at A's own rate
            lr = float(group["lr"])
            cvec = slot.chopper[slot.line_of]
            rate = 1.0 if self.config.fast_lr is None else self.fast_rate(p) / lr
            da = cvec * dw.detach().to(torch.float32) * rate
            cap = self.config.fast_max_pulses or self.config.desired_bl * max(
                samples if self.config.transfer_unit == "samples" else 1, 1
            )
            rows.append(self._write_fast(slot.fast, da, cap))
        # 2. transfers are due after this many samples (or steps): read after every update
        before = slot.samples
        slot.samples = before + (samples if self.config.transfer_unit == "samples" else 1)
        every = int(self.config.transfer_every)  # (a whole number: the config rounds it)
        due = slot.samples // every - before // every
        slot.due = due * self.config.n_reads_per_transfer
        return rows

    def _after_updates(self, params: list[Tensor]) -> dict[int, list[Tensor]]:
        """The transfers of the step: every parameter's reads of A first (A was written for
        all of them: the reads run their writes at once), then every write onto C (queued:
        they run together too). The reads depend on A only, never on C, so the order is the
        same physics as reading and writing one parameter after the other."""
        due = []
        for p in params:
            slot = self._slot(p)
            n_reads, slot.due = slot.due, 0
            if n_reads > 0:
                lr = float(self._group_of(p)["lr"])
                due.append((p, self._reads(p, slot, n_reads, lr)))
        out: dict[int, list[Tensor]] = {}
        for p, (row, trains) in due:
            tile = analog_tile(p)
            writes = [
                pulse_train_on(tile, n, granularity(tile), tile.scheme, flush=False) for n in trains
            ]
            out[id(p)] = [row, *writes]
        return out

    def _own_state(self) -> dict[str, Any]:
        return {**super()._own_state(), "config": self.config.to_state()}

    def _load_own_state(self, algo: dict[str, Any]) -> None:
        saved = algo.get("config")  # (absent from states saved before eapu recorded it)
        if saved is not None:
            diff = config_mismatch(saved, self.config)
            if diff is not None:
                raise ValueError(
                    f"Invalid state_dict: saved by {type(self).__name__} with other options "
                    f"({diff}); build the optimizer with the saved ones: "
                    f"config={self.CONFIG.__name__}.from_state(state['algorithm']['config'])"
                )
        super()._load_own_state(algo)

    def _slot_state(self, slot: FastSlot) -> dict[str, Any]:
        return {
            "version": _SLOT_VERSION,
            "ref": slot.ref.clone(),
            "H": slot.buffer.clone(),
            "c": slot.chopper.clone(),
            "reads": slot.reads.clone(),
            "next": int(slot.next_line),
            "samples": int(slot.samples),
            "m_x": slot.m_x.clone(),
            "m_d": slot.m_d.clone(),
        }

    def _load_slot_state(self, slot: FastSlot, state: dict[str, Any]) -> None:
        if "A" in state:  # a checkpoint from before A's cells were saved with the model,
            # written by eapu's own simulator (so its tile is one: `eapu.nn.load_legacy_state`)
            cast(Tile, slot.fast).load_state_tensors(state["A"])
        slot.chopper.copy_(state["c"])
        slot.reads.copy_(state["reads"])
        slot.next_line = int(state["next"])
        if "version" in state:
            slot.ref.copy_(state["ref"])
            slot.buffer.copy_(state["H"])
            slot.samples = int(state["samples"])
            on = slot.buffer.device
            slot.m_x = torch.as_tensor(state["m_x"], dtype=torch.float64).to(on)
            slot.m_d = torch.as_tensor(state["m_d"], dtype=torch.float64).to(on)
        else:  # an older checkpoint: H in weight units against a threshold of ε_C, no reference
            slot.ref.zero_()
            slot.buffer.copy_(state["H"] / granularity(slot.fast))
            slot.samples = 0
            slot.m_x = torch.zeros_like(slot.m_x)
            slot.m_d = torch.zeros_like(slot.m_d)


@register_algorithm(
    "cttv2", "chopped Tiki-Taka v2 (Rasch et al. 2024)", options={"fast_lr": FAST_LR}
)
class ChoppedTTv2(TikiTakaV2):
    """Chopped Tiki-Taka v2, c-TTv2 (Rasch et al., Nat. Commun. 15, 7133, 2024).

    `TikiTakaV2` with input choppers c_j ∈ {±1}: A receives c·ΔW, reads of line j are
    multiplied by c_j, and c_j flips after a read of line j with ``chopper_probability``
    (default 0.01, aihwkit 1.2.0's ``ChoppedTTv2ReRamSBPreset``) or every
    ``chopper_every``-th read. A device bias on A (an offset of its zero, asymmetric steps)
    is then written with alternating sign and averages out of H instead of being
    transferred onto C.
    """

    CONFIG = ChoppedTTv2Config

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        lr: float = 0.01,
        **kwargs: Any,
    ) -> None:
        regular = kwargs.get("chopper_every") is not None
        if regular and "chopper_probability" not in kwargs and kwargs.get("config") is None:
            kwargs["chopper_probability"] = 0.0  # regular switching asked for: no random default
        super().__init__(params, lr, **kwargs)
