-- An order cancelled before its OrderCreated reached this service (a cancel of a pending order overtakes it):
-- its reservation is written as 'cancelled' at the cancel, so the late OrderCreated finds it decided and takes
-- nothing.
-- contract: the status check is widened, never narrowed; the code before never reads a 'cancelled'
-- row differently from a 'released' one (neither is 'reserved').
ALTER TABLE reservations DROP CONSTRAINT IF EXISTS reservations_status_check;
ALTER TABLE reservations ADD CONSTRAINT reservations_status_check
    CHECK (status IN ('reserved', 'released', 'rejected', 'cancelled'));
