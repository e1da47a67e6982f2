-- The events feed (GET /v1/events/feed): every event in the order the
-- region committed it, with a position a consumer can keep forever.
--
-- seq is taken at INSERT, not at COMMIT, so a lower seq can become visible
-- after a higher one: "seq > last seen" would skip it. Instead each row
-- records the id of the transaction that inserted it, and the feed hands
-- out only rows whose transaction id is below the xmin of the reader's
-- snapshot. Every transaction below that xmin has ended, and every id
-- assigned later is higher, so no row can ever appear below a position
-- once it was handed out: the feed orders by (tx_id, seq) and its cursor
-- is that pair.
--
-- pg_current_xact_id() is STABLE, not volatile, so ADD COLUMN stores the
-- value once in the catalogue (a "fast default") and rewrites nothing:
-- every existing row reads the id of this migration's transaction, which
-- is higher than that of any earlier row and ends before any later one is
-- visible, and sorts among them by seq. Rows inserted afterwards get their
-- own transaction's id from the same default, so the previous build's
-- INSERT, which does not name the column, keeps working unchanged.
-- xid8 (64 bits, with the epoch) never wraps around, unlike the xmin
-- system column, and an UPDATE of a row does not change it.
ALTER TABLE events ADD COLUMN tx_id xid8 NOT NULL DEFAULT pg_current_xact_id();

-- The feed's keyset. Built while writes to events wait (a transactional
-- migration cannot build it concurrently): about a second per million rows.
CREATE INDEX events_feed ON events (tenant_id, tx_id, seq);

-- No trigger announces new rows (a NOTIFY per inserting transaction):
-- PostgreSQL serializes the commits of every transaction that notifies,
-- which cost single-row inserts at 8 clients about 6x their rate here.
-- The data plane wakes its own waiters after its commits, and looks for
-- other instances' commits with one statement per interval.
