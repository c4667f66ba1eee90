-- Quantities as the venue has them (0.0013 BTC): orders, fills and positions hold exact decimals, at the scale they
-- were written (each a whole number of its market's step). An existing database upgrades in place: every integer
-- quantity becomes the same numeric value, and the CHECKs stay as they were.
ALTER TABLE orders ALTER COLUMN quantity TYPE numeric USING quantity::numeric;
ALTER TABLE fills ALTER COLUMN quantity TYPE numeric USING quantity::numeric;
ALTER TABLE positions ALTER COLUMN quantity TYPE numeric USING quantity::numeric;
