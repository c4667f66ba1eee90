"""Sizing an opening order to the room the profile's limits leave, before the pre-trade checks see it.

The decision step asks `opening_quantity` how much it may open; the checks in `live/risk/checks.py` stay the
independent guard and still refuse anything that breaches. Sizing to the room left means an entry the engine
knows would breach gross exposure, the position limit or the order-notional cap is made smaller or not sent,
instead of being sent and refused on every bar (issue 9: the aggressive profile's 8 x 20 % positions cannot fit
under its 150 % gross cap).
"""

from __future__ import annotations

from decimal import Decimal

from live.instruments import ZERO, Instrument
from live.profiles import Profile

# An opening smaller than this share of a full position (the profile's `max_position_fraction` of equity) is not
# sent: it pays the spread and the commission twice, in and out, for a sliver of the exposure the signal asked for.
MIN_OPENING_FRACTION = Decimal("0.25")


def opening_quantity(
    *,
    price: Decimal,
    equity: Decimal,
    position_quantity: Decimal,
    gross_exposure: Decimal,
    profile: Profile,
    instrument: Instrument,
) -> Decimal:
    """The quantity an opening order may have at `price`: a full position, cut to the room left under the position
    limit, the order-notional cap and the gross-exposure cap (`gross_exposure` counts what is held and what is
    already committed to open), rounded down to the instrument's step. 0 when that room is below
    `MIN_OPENING_FRACTION` of a full position. The instrument's minimums are the checks' to enforce."""
    if price <= 0 or equity <= 0:
        return ZERO
    full_position = profile.max_position_fraction * equity
    room = min(
        full_position - abs(position_quantity) * price,
        profile.max_order_notional_fraction * equity,
        profile.max_gross_exposure * equity - gross_exposure,
    )
    if room < full_position * MIN_OPENING_FRACTION:
        return ZERO
    return instrument.quantity_down(room / price)
