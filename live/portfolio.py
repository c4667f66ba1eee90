"""Exact accounting: cash, signed positions at average cost, realized and unrealized P&L, high-water mark.

Money is Decimal throughout: fill prices carry 4 decimals (or the market's tick), average prices and a fill's
realized P&L are kept to 8, fees to the cent; cash is exact. Quantities are Decimal too (a venue trades 0.0013
BTC), exact: each is a whole number of its market's step.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from decimal import ROUND_HALF_EVEN, Decimal

from live.domain import Fill, Side, iso_utc

PRICE_QUANTUM = Decimal("0.0001")
AVG_QUANTUM = Decimal("0.00000001")
CENT = Decimal("0.01")
ZERO = Decimal(0)


def to_decimal(value: float) -> Decimal:
    """A float price as the decimal a human would read (shortest repr), not its binary expansion."""
    return Decimal(repr(value))


def drawdown(value: Decimal, high_water_mark: Decimal) -> Decimal:
    """Positive fraction below the high-water mark (0 at a new high)."""
    if high_water_mark <= 0 or value >= high_water_mark:
        return ZERO
    return (high_water_mark - value) / high_water_mark


@dataclass(slots=True)
class PositionState:
    quantity: Decimal = ZERO
    avg_price: Decimal = ZERO
    realized_pnl: Decimal = ZERO


class AccountingError(ValueError):
    """A fill that the book cannot take (for example one that reverses a position)."""


class Portfolio:
    """The book. Pure state; the engine feeds it fills and marks."""

    def __init__(self, *, initial_cash: Decimal) -> None:
        self.initial_cash = initial_cash
        self.cash = initial_cash
        self.positions: dict[str, PositionState] = {}
        self.marks: dict[str, Decimal] = {}
        self.high_water_mark = initial_cash
        self.realized_pnl = ZERO
        self.fees = ZERO
        self.day: date | None = None
        self.realized_pnl_today = ZERO  # gross realized minus fees, engine clock's UTC day
        self.start_of_day_value = initial_cash
        self.last_value = initial_cash

    def quantity(self, symbol: str) -> Decimal:
        position = self.positions.get(symbol)
        return position.quantity if position else ZERO

    def roll_day(self, timestamp: datetime) -> None:
        """Start a new UTC day of the engine clock: today's P&L resets, the day's loss is measured from here."""
        day = timestamp.date()
        if self.day != day:
            if self.day is not None:
                self.start_of_day_value = self.last_value
            self.day = day
            self.realized_pnl_today = ZERO

    def apply_fill(
        self,
        *,
        fill_id: str,
        order_id: str,
        timestamp: datetime,
        symbol: str,
        side: Side,
        quantity: Decimal,
        price: Decimal,
        fee: Decimal,
        signal_type: str,
    ) -> Fill:
        """Books one fill and returns it with its gross realized P&L (average cost, price only)."""
        if quantity <= 0:
            raise AccountingError(f"fill {fill_id}: quantity must be positive")
        position = self.positions.setdefault(symbol, PositionState())
        signed = quantity if side is Side.BUY else -quantity
        current = position.quantity
        realized = ZERO
        if current == 0 or (current > 0) == (signed > 0):
            total = current + signed
            position.avg_price = (
                (abs(current) * position.avg_price + quantity * price) / abs(total)
            ).quantize(AVG_QUANTUM, ROUND_HALF_EVEN)
            position.quantity = total
        else:
            if quantity > abs(current):
                raise AccountingError(
                    f"fill {fill_id}: {side} {quantity} would reverse a position of {current} {symbol}"
                )
            direction = 1 if current > 0 else -1
            # Exact with whole shares; with a fractional quantity rounded to 8 decimals, as the record keeps it.
            realized = (quantity * (price - position.avg_price) * direction).quantize(
                AVG_QUANTUM, ROUND_HALF_EVEN
            )
            position.quantity = current + signed
            position.realized_pnl += realized
            if position.quantity == 0:
                position.avg_price = ZERO
        self.cash -= signed * price + fee
        self.realized_pnl += realized
        self.fees += fee
        self.roll_day(timestamp)
        self.realized_pnl_today += realized - fee
        self.marks.setdefault(symbol, price)
        return Fill(
            id=fill_id,
            order_id=order_id,
            timestamp=timestamp,
            symbol=symbol,
            side=side,
            quantity=quantity,
            price=price,
            fee=fee,
            signal_type=signal_type,
            realized_pnl=realized,
        )

    def mark(self, symbol: str, price: Decimal) -> None:
        self.marks[symbol] = price

    def market_value(self, symbol: str) -> Decimal:
        position = self.positions.get(symbol)
        if not position or position.quantity == 0:
            return ZERO
        return position.quantity * self.marks.get(symbol, position.avg_price)

    def total_value(self) -> Decimal:
        marks = self.marks
        held = ZERO
        for symbol, position in self.positions.items():
            if position.quantity:
                held += position.quantity * marks.get(symbol, position.avg_price)
        return self.cash + held

    def gross_exposure(self) -> Decimal:
        marks = self.marks
        gross = ZERO
        for symbol, position in self.positions.items():
            if position.quantity:
                gross += abs(position.quantity * marks.get(symbol, position.avg_price))
        return gross

    def unrealized_pnl(self) -> Decimal:
        total = ZERO
        for symbol, position in self.positions.items():
            if position.quantity:
                total += position.quantity * (self.marks.get(symbol, position.avg_price) - position.avg_price)
        return total

    def update_high_water_mark(self) -> Decimal:
        """Marks the book's value; raises the high-water mark at a new high. Returns the value."""
        value = self.total_value()
        self.last_value = value
        if value > self.high_water_mark:
            self.high_water_mark = value
        return value

    def drawdown(self) -> Decimal:
        return drawdown(self.last_value, self.high_water_mark)

    def snapshot(self, timestamp: datetime | None) -> dict[str, object]:
        """The GET /portfolio shape (numbers as floats for JSON), plus timestamp and high-water mark."""
        positions = []
        for symbol in sorted(self.positions):
            position = self.positions[symbol]
            if position.quantity == 0:
                continue
            mark = self.marks.get(symbol, position.avg_price)
            positions.append(
                {
                    "symbol": symbol,
                    "quantity": float(position.quantity),
                    "avg_price": float(position.avg_price),
                    "market_price": float(mark),
                    "market_value": float(position.quantity * mark),
                    "unrealized_pnl": float(position.quantity * (mark - position.avg_price)),
                }
            )
        value = self.total_value()
        return {
            "timestamp": iso_utc(timestamp),
            "total_value": float(value),
            "cash": float(self.cash),
            "unrealized_pnl": float(self.unrealized_pnl()),
            "realized_pnl_today": float(self.realized_pnl_today),
            "realized_pnl": float(self.realized_pnl),
            "drawdown": float(drawdown(value, max(self.high_water_mark, value))),
            "high_water_mark": float(max(self.high_water_mark, value)),
            "positions": positions,
        }

    @classmethod
    def from_fills(cls, *, initial_cash: Decimal, fills: Iterable[Fill]) -> Portfolio:
        """Rebuilds the book from the recorded fills (crash recovery); realized P&L is recomputed and checked."""
        book = cls(initial_cash=initial_cash)
        for fill in fills:
            rebuilt = book.apply_fill(
                fill_id=fill.id,
                order_id=fill.order_id,
                timestamp=fill.timestamp,
                symbol=fill.symbol,
                side=fill.side,
                quantity=fill.quantity,
                price=fill.price,
                fee=fill.fee,
                signal_type=fill.signal_type,
            )
            if rebuilt.realized_pnl != fill.realized_pnl:
                raise AccountingError(
                    f"fill {fill.id}: recorded realized_pnl {fill.realized_pnl} != recomputed {rebuilt.realized_pnl}"
                )
        return book
