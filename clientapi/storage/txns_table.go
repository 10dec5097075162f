package storage

// txnsSchema is migration 1's table, no longer written or read: the
// roomserver records transaction ids with the events (roomserver_txns).
const txnsSchema = `CREATE TABLE clientapi_txns (
	user_id    TEXT NOT NULL,
	device_id  TEXT NOT NULL,
	-- The request path: the same txn id may be used on different endpoints.
	scope      TEXT NOT NULL,
	txn_id     TEXT NOT NULL,
	event_id   TEXT NOT NULL,
	created_ms BIGINT NOT NULL,
	PRIMARY KEY (user_id, device_id, scope, txn_id)
)`

const txnsIndex = `CREATE INDEX clientapi_txns_created ON clientapi_txns (created_ms)`
