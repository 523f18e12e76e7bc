"""Digit-serial arithmetic primitives: add/subtract, negate, shift, delay, and the converters.

Serial format, shared by every component here and by
:class:`hwgen.backend.serial_graph.SerialAdderGraph`: a value of word length
``W`` travels as ``D = ceil(W / d)`` digits of ``d`` bits, least significant
digit first, one digit per cycle, in ``D`` consecutive cycles, and ``first``
is high with its first digit. A new word may start in the cycle after the
previous word's last digit (full throughput) or after any number of idle
cycles; digits between words are ignored. Arithmetic is exact modulo
``2**(D*d)`` (see :mod:`hwgen.plan.bit_serial` for why the word length only has
to cover the results).

Digit width ``d`` is any positive integer: 1 (bit-serial), 2, 3, 4, ... up to
``d >= W`` (one digit per word, i.e. fully parallel with ``first`` high on
every word).

The building blocks (``_serial_sum``, ``_shifted_digit``, ``_delay_chain``)
are also used inline by the adder-graph backend, so each graph node is the
same logic as a :class:`SerialAdder` without a module per node.
"""

from __future__ import annotations

from collections.abc import Callable

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, Value, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from hwgen.backend.rom import constant_bit

__all__ = [
    "DelayLine",
    "ParallelToSerial",
    "SerialAdder",
    "SerialInputs",
    "SerialNegator",
    "SerialShifter",
    "SerialToParallel",
]


def padded_select(values: list[Value], index: Value) -> Value:
    """``values[index]``, the list padded with its last value to every index value (no incomplete
    ``case`` in the Verilog)."""
    padded = list(values) + [values[-1]] * ((1 << len(index)) - len(values))
    return Array(padded)[index]


def mux_tree(values: list[Value], index: Value) -> Value:
    """``values[index]`` as a balanced tree of 2:1 multiplexers on the bits of ``index`` (the list
    padded with its last value), which Yosys writes as continuous assignments.

    Unlike :func:`padded_select` (a ``case`` in an ``always @*`` block), Icarus evaluates it from
    time zero, so a select whose index and inputs have not changed yet reads the right value,
    not X (docs/architecture.md, "Simulator quirks").
    """
    level = list(values) + [values[-1]] * ((1 << len(index)) - len(values))
    for bit in range(len(index)):
        level = [Mux(index[bit], level[k + 1], level[k]) for k in range(0, len(level), 2)]
    return level[0]


def _check_positive(name: str, value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive integer, not {value!r}")
    return value


def _check_natural(name: str, value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"{name} must be a non-negative integer, not {value!r}")
    return value


def _delay_chain(m: Module, value: Value, cycles: int, name: str, *, reset_less: bool = True) -> list[Value]:
    """Taps ``[value, value delayed 1, ..., value delayed cycles]``.

    Reset-less registers by default, so synthesis can map the chain to SRLs;
    strobes use ``reset_less=False`` so no spurious word start leaves reset.
    """
    taps = [value]
    for k in range(1, cycles + 1):
        reg = Signal(len(value), name=f"{name}_d{k}", reset_less=reset_less)
        m.d.sync += reg.eq(taps[-1])
        taps.append(reg)
    return taps


def _serial_sum(m: Module, operands: list[tuple[Value, bool]], first: Value, name: str) -> Signal:
    """Registered digit of the sum of two or three ``(digit, negate)`` operands: the sum register.

    ``-x`` is ``~x + 1``, so each negated operand is inverted and adds one to
    the carry into the word's first digit: the carry register is loaded with
    the number of negations instead of its state when ``first`` is high. The
    carry out of a digit is at most 1 for two operands with at most one
    negated (a one-bit carry register), at most 2 otherwise (two bits).
    """
    d = len(operands[0][0])
    negations = sum(int(neg) for _, neg in operands)
    wide = len(operands) == 3 or negations == 2
    carry = Signal(2 if wide else 1, name=f"{name}_carry", reset_less=True)
    s = Signal(d, name=name, reset_less=True)
    carry_in = Mux(first, negations, carry)
    digits = [~digit if neg else digit for digit, neg in operands]
    if d == 1 and len(operands) == 3:
        # Bit-serial, three operands: the sum bit and the two carry bits are each one
        # 6-input function (three bits, the carry, the strobe), looked up in a constant:
        # three LUTs, where an adder expression makes synthesis build a carry chain.
        # Named once: the three tables read the same index (an expression would be
        # lowered, and written to the Verilog, once per table).
        index = Signal(5, name=f"{name}_index")
        m.d.comb += index.eq(Cat(*digits, carry_in[:2]))
        sums = [sum((k >> b) & 1 for b in range(3)) + (k >> 3 & 1) + 2 * (k >> 4 & 1) for k in range(32)]
        tables = [sum(((t >> bit) & 1) << k for k, t in enumerate(sums)) for bit in range(3)]
        out = [constant_bit(table, index) for table in tables]
        m.d.sync += [s.eq(out[0]), carry.eq(Cat(out[1], out[2]))]
        return s
    if len(operands) == 2 and not wide and d > 1:
        # One two-operand addition with the carry in below the least significant bit, the
        # positive operand first: synthesis then folds an inverted operand into the carry
        # chain's propagate LUTs. Written as a three-term sum, Yosys orders the terms itself
        # and puts d separate inverters on the chain's DI inputs of every subtraction
        # (Yosys: 616 INV on a 142-adder graph at d = 11, none this way; LUT count equal).
        # Bit-serial sums stay three-term: Yosys maps them to LUTs alone, this form would
        # add a carry chain.
        (pos, _), (other, _) = sorted(operands, key=lambda op: op[1])
        other_digit = ~other if negations else other
        total: Value = (Cat(Const(1, 1), pos) + Cat(carry_in[0], other_digit))[1:]
    else:
        total = carry_in
        for digit in digits:
            total = digit + total
    # One assignment: the sum is built once (two slices of one expression would each lower
    # to their own adder in the netlist and in the Verilog, doubled for synthesis to merge).
    m.d.sync += Cat(s, carry).eq(total)
    return s


def _shifted_digit(tap: Callable[[int], Value], in_word: Callable[[int], Value], digit_bits: int, shift: int) -> Value:
    """Current digit of a stream's words shifted left by ``shift`` bits (combinational).

    ``tap(j)`` is the stream's digit ``j`` cycles ago; ``in_word(j)`` is high
    when that digit belongs to the current word (no ``first`` strobe in the
    last ``j`` cycles, counting the current one). With ``shift = q*d + r``,
    the result is the top ``d - r`` bits of digit ``q`` ago above the top ``r``
    bits of digit ``q + 1`` ago; digits of an earlier word read as zero (the
    zero fill at the word start). Bits shifted past the word's end are lost.
    """
    d = digit_bits
    q, r = divmod(shift, d)

    def masked(j: int) -> Value:
        return tap(0) if j == 0 else Mux(in_word(j), tap(j), 0)

    if r == 0:
        return masked(q)
    return Cat(masked(q + 1), masked(q))[d - r : 2 * d - r]


class _WordHistory:
    """A stream's delay chain and the ``first`` strobe chain that says which taps are in the current word."""

    def __init__(self, m: Module, digit: Value, name: str, strobes: list[Value]) -> None:
        self._m, self._name, self._strobes = m, name, strobes
        self._taps = [digit]

    def tap(self, j: int) -> Value:
        while len(self._taps) <= j:
            reg = Signal(len(self._taps[0]), name=f"{self._name}_d{len(self._taps)}", reset_less=True)
            self._m.d.sync += reg.eq(self._taps[-1])
            self._taps.append(reg)
        return self._taps[j]

    def in_word(self, j: int) -> Value:
        while len(self._strobes) < j:
            reg = Signal(name=f"first_d{len(self._strobes)}")
            self._m.d.sync += reg.eq(self._strobes[-1])
            self._strobes.append(reg)
        return ~Cat(*self._strobes[:j]).any()

    def shifted(self, digit_bits: int, shift: int) -> Value:
        return _shifted_digit(self.tap, self.in_word, digit_bits, shift)


class SerialAdder(wiring.Component):
    """Digit-serial ``(+-(a << shift_a)) + (+-(b << shift_b))``, one ``d``-bit digit per cycle.

    Latency is 1 cycle: the sum digit of the operands' digit ``t`` is on ``s``
    in the cycle after they are on ``a`` and ``b`` (so ``first`` delayed by one
    cycle marks the sum's word start). The carry register is reloaded at every
    word start, so words may follow back to back or with gaps. Results are
    exact modulo ``2**(D*d)`` for words of ``D`` digits.

    Subtraction adds the inverted operand with a carry in of 1 at the first
    digit; with both operands negated the adder computes ``~a + ~b + 2``
    exactly, with a two-bit carry register (one bit otherwise).

    A left shift by ``s`` bits is a bit delay of ``s`` across digits with zero
    fill at the word start: ``ceil(s / d)`` reset-less digit registers and
    ``ceil(s / d) - 1`` strobe registers per shifted operand, no added latency.

    Parameters
    ----------
    digit_bits : int
        ``d``, bits per digit (any positive integer).
    negate_a, negate_b : bool
        Negate the operand.
    shift_a, shift_b : int
        Left shift of the operand, in bits.

    Members
    -------
    a, b : In(digit_bits)
        Operand digits, least significant first.
    first : In(1)
        High with the first digit of a word of ``a`` and ``b``.
    s : Out(digit_bits)
        Sum digits, registered (latency 1).
    """

    def __init__(
        self,
        digit_bits: int,
        negate_a: bool = False,
        negate_b: bool = False,
        *,
        shift_a: int = 0,
        shift_b: int = 0,
    ) -> None:
        self.digit_bits = _check_positive("digit_bits", digit_bits)
        self.negate_a, self.negate_b = bool(negate_a), bool(negate_b)
        self.shift_a = _check_natural("shift_a", shift_a)
        self.shift_b = _check_natural("shift_b", shift_b)
        self.latency = 1
        super().__init__({"a": In(digit_bits), "b": In(digit_bits), "first": In(1), "s": Out(digit_bits)})

    def elaborate(self, platform: object) -> Module:
        m = Module()
        strobes: list[Value] = [self.first]
        a = _WordHistory(m, self.a, "a", strobes).shifted(self.digit_bits, self.shift_a)
        b = _WordHistory(m, self.b, "b", strobes).shifted(self.digit_bits, self.shift_b)
        s = _serial_sum(m, [(a, self.negate_a), (b, self.negate_b)], self.first, "sum")
        m.d.comb += self.s.eq(s)
        return m


class SerialNegator(wiring.Component):
    """Digit-serial negation ``-x`` (``~x + 1``, carry in 1 at the word start).

    Latency is 1 cycle; exact modulo ``2**(D*d)`` (the most negative word
    maps to itself, as in two's complement).

    Parameters
    ----------
    digit_bits : int
        ``d``, bits per digit.

    Members
    -------
    i : In(digit_bits)
        Input digits, least significant first.
    first : In(1)
        High with the first digit of a word on ``i``.
    o : Out(digit_bits)
        Negated digits, registered (latency 1).
    """

    def __init__(self, digit_bits: int) -> None:
        self.digit_bits = _check_positive("digit_bits", digit_bits)
        self.latency = 1
        super().__init__({"i": In(digit_bits), "first": In(1), "o": Out(digit_bits)})

    def elaborate(self, platform: object) -> Module:
        m = Module()
        zero = Const(0, self.digit_bits)
        m.d.comb += self.o.eq(_serial_sum(m, [(self.i, True), (zero, False)], self.first, "neg"))
        return m


class SerialShifter(wiring.Component):
    """Digit-serial left shift by ``shift`` bits: a bit delay with zero fill at each word start.

    Combinational output (latency 0: digit ``t`` of the shifted word appears
    with digit ``t`` of the input word). Holds ``ceil(shift / d)`` reset-less
    digit registers and ``ceil(shift / d) - 1`` strobe registers. Bits shifted
    past the word's ``D * d`` bits are lost (exact modulo ``2**(D*d)``).

    Parameters
    ----------
    digit_bits : int
        ``d``, bits per digit.
    shift : int
        Left shift in bits (0 is a wire).

    Members
    -------
    i : In(digit_bits)
        Input digits, least significant first.
    first : In(1)
        High with the first digit of a word on ``i``.
    o : Out(digit_bits)
        Digits of the shifted word.
    """

    def __init__(self, digit_bits: int, shift: int) -> None:
        self.digit_bits = _check_positive("digit_bits", digit_bits)
        self.shift = _check_natural("shift", shift)
        self.latency = 0
        super().__init__({"i": In(digit_bits), "first": In(1), "o": Out(digit_bits)})

    def elaborate(self, platform: object) -> Module:
        m = Module()
        history = _WordHistory(m, self.i, "i", [self.first])
        m.d.comb += self.o.eq(history.shifted(self.digit_bits, self.shift))
        return m


class DelayLine(wiring.Component):
    """A ``cycles``-deep shift register of ``width`` bits, without reset so synthesis maps it to SRLs.

    Latency is ``cycles`` (0 is a wire). Its contents after reset are
    whatever was shifted in before: use it for data, not for strobes.

    Parameters
    ----------
    width : int
        Bits per stage.
    cycles : int
        Delay in cycles.

    Members
    -------
    i : In(width)
        Input.
    o : Out(width)
        ``i`` delayed by ``cycles`` cycles.
    """

    def __init__(self, width: int, cycles: int) -> None:
        self.width = _check_positive("width", width)
        self.cycles = _check_natural("cycles", cycles)
        self.latency = cycles
        super().__init__({"i": In(width), "o": Out(width)})

    def elaborate(self, platform: object) -> Module:
        m = Module()
        m.d.comb += self.o.eq(_delay_chain(m, self.i, self.cycles, "delay")[-1])
        return m


class ParallelToSerial(wiring.Component):
    """Serialise a signed value into a word of ``D = ceil(word_bits / digit_bits)`` digits.

    ``x`` is sampled when ``start`` is high and sign-extended to the word's
    ``D * d`` bits (or, if wider, taken modulo ``2**(D*d)``). Latency is 1
    cycle: the first digit is on ``o``, with ``first`` high, in the cycle after
    ``start``, and the word's digits follow in the next ``D - 1`` cycles. For
    full throughput raise ``start`` every ``D`` cycles (``start`` during a word
    abandons the rest of it and begins the new one). ``o`` is zero after the
    last digit, until the next word.

    Parameters
    ----------
    word_bits : int
        Word length ``W``.
    digit_bits : int
        ``d``, bits per digit.
    in_bits : int
        Signed width of ``x`` (default ``word_bits``).

    Members
    -------
    x : In(signed(in_bits))
        Value to serialise.
    start : In(1)
        Load ``x`` and begin a word.
    o : Out(digit_bits)
        Digits, least significant first, registered.
    first : Out(1)
        High with the first digit on ``o``.
    """

    def __init__(self, word_bits: int, digit_bits: int, *, in_bits: int | None = None) -> None:
        self.word_bits = _check_positive("word_bits", word_bits)
        self.digit_bits = _check_positive("digit_bits", digit_bits)
        self.in_bits = word_bits if in_bits is None else _check_positive("in_bits", in_bits)
        self.digits = -(-word_bits // digit_bits)
        self.latency = 1
        super().__init__({"x": In(signed(self.in_bits)), "start": In(1), "o": Out(digit_bits), "first": Out(1)})

    def elaborate(self, platform: object) -> Module:
        m = Module()
        d = self.digit_bits
        word = Signal(self.digits * d, reset_less=True)
        first = Signal()
        with m.If(self.start):
            m.d.sync += word.eq(self.x)  # a signed source is sign-extended on assignment
        with m.Else():
            m.d.sync += word.eq(word >> d)
        m.d.sync += first.eq(self.start)
        m.d.comb += [self.o.eq(word[:d]), self.first.eq(first)]
        return m


class SerialInputs(wiring.Component):
    """Serialise ``n`` signed values at once, like ``n`` :class:`ParallelToSerial`, with one digit counter.

    Same timing and format as :class:`ParallelToSerial` (latency 1; the first
    digits on ``o`` with ``first`` high in the cycle after ``start``, the rest
    in the next ``D - 1`` cycles, zero digits after the word; ``start``
    during a word begins a new one), but cheaper for a layer's inputs: each
    value is captured as it is (``in_bits`` flip-flops, not the word's ``D *
    d``), and a registered multiplexer picks its current digit, sign digits
    past the value's own bits, under one counter shared by every input. The
    digit register's clear between words maps to the flip-flops' synchronous
    reset, so it costs no logic.

    Members
    -------
    x : In(ArrayLayout(signed(in_bits), n))
        Values, sampled when ``start`` is high.
    start : In(1)
        Begin a word.
    o : Out(ArrayLayout(digit_bits, n))
        Digits, least significant first, registered.
    first : Out(1)
        High with the first digits on ``o``.
    """

    def __init__(self, n: int, word_bits: int, digit_bits: int, *, in_bits: int) -> None:
        self.n = _check_positive("n", n)
        self.word_bits = _check_positive("word_bits", word_bits)
        self.digit_bits = _check_positive("digit_bits", digit_bits)
        self.in_bits = _check_positive("in_bits", in_bits)
        self.digits = -(-word_bits // digit_bits)
        self.latency = 1
        super().__init__(
            {
                "x": In(data.ArrayLayout(signed(in_bits), n)),
                "start": In(1),
                "o": Out(data.ArrayLayout(digit_bits, n)),
                "first": Out(1),
            }
        )

    def elaborate(self, platform: object) -> Module:
        m = Module()
        d, digits = self.digit_bits, self.digits
        own = min(digits, -(-self.in_bits // d))  # digits that hold bits of x; later ones are sign digits
        # Shared: the next digit of the held words (``digits``: idle), and which one to select.
        count = Signal(range(digits + 1), init=digits)
        m.d.sync += count.eq(Mux(self.start, 1, Mux(count == digits, digits, count + 1)))
        select = Signal(range(own + 1))
        m.d.comb += select.eq(Mux(count >= own, own, count))
        busy = Signal()
        m.d.comb += busy.eq(self.start | (count != digits))
        first = Signal()
        m.d.sync += first.eq(self.start)
        m.d.comb += self.first.eq(first)
        for j in range(self.n):
            held = Signal(signed(self.in_bits), name=f"held{j}", reset_less=True)
            with m.If(self.start):
                m.d.sync += held.eq(self.x[j])
            extended = Signal(signed((own + 1) * d), name=f"extended{j}")
            m.d.comb += extended.eq(held)  # sign-extends (or, if wider, wraps to the word)
            low = Signal(signed(d), name=f"low{j}")
            m.d.comb += low.eq(self.x[j])  # the first digit comes straight from x
            digit = Signal(d, name=f"digit{j}")
            # A case over the shared index (a variable shift would be wider than the digit).
            current = padded_select([extended.word_select(k, d) for k in range(own + 1)], select)
            m.d.sync += digit.eq(Mux(busy, Mux(self.start, low, current), 0))
            m.d.comb += self.o[j].eq(digit)
        return m


class SerialToParallel(wiring.Component):
    """Collect a word of ``D = ceil(word_bits / digit_bits)`` digits into a signed ``word_bits`` value.

    Latency is ``D`` cycles from the first digit: ``valid`` is high for one
    cycle, the cycle after the word's last digit, and ``y`` then holds the
    word's low ``word_bits`` bits as a signed number. ``y`` keeps that value
    until the next word's first digit has been shifted in (through any idle
    cycles; for one cycle only at full throughput).

    Parameters
    ----------
    word_bits : int
        Word length ``W`` (width of ``y``).
    digit_bits : int
        ``d``, bits per digit.

    Members
    -------
    i : In(digit_bits)
        Digits, least significant first.
    first : In(1)
        High with the first digit of a word on ``i``.
    y : Out(signed(word_bits))
        The collected word.
    valid : Out(1)
        High in the cycle ``y`` first holds a new word.
    """

    def __init__(self, word_bits: int, digit_bits: int) -> None:
        self.word_bits = _check_positive("word_bits", word_bits)
        self.digit_bits = _check_positive("digit_bits", digit_bits)
        self.digits = -(-word_bits // digit_bits)
        self.latency = self.digits
        super().__init__({"i": In(digit_bits), "first": In(1), "y": Out(signed(word_bits)), "valid": Out(1)})

    def elaborate(self, platform: object) -> Module:
        m = Module()
        d, n = self.digit_bits, self.digits
        word = Signal(n * d, reset_less=True)
        valid = Signal()
        if n == 1:
            with m.If(self.first):
                m.d.sync += word.eq(self.i)
            m.d.sync += valid.eq(self.first)
        else:
            # count = digits of the current word taken so far; 0 when idle.
            count = Signal(range(n))
            with m.If(self.first | (count != 0)):
                m.d.sync += word.eq(Cat(word[d:], self.i))
            with m.If(self.first):
                m.d.sync += count.eq(1)
            with m.Elif(count == n - 1):
                m.d.sync += count.eq(0)
            with m.Elif(count != 0):
                m.d.sync += count.eq(count + 1)
            m.d.sync += valid.eq(~self.first & (count == n - 1))
        m.d.comb += [self.y.eq(word[: self.word_bits]), self.valid.eq(valid)]
        return m
