// Package api is the contract of the syncapi: the per-user view of rooms
// served by /sync. It has no internal methods yet: it is driven entirely by
// the log (roomserver.output) and serves clients directly.
package api

// API is the syncapi internal API (empty for now; methods arrive with the
// features that need them, e.g. typing and receipts).
type API interface{}
