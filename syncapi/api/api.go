// Package api is the contract of the syncapi: the per-user view of rooms
// served by /sync. It has no internal methods yet: it is driven by the log
// (roomserver.output, userapi.account_data, userapi.notification_counts),
// serves clients directly, and publishes the receipts it accepts
// (topics.go).
package api

// API is the syncapi internal API (empty for now; methods arrive with the
// features that need them, e.g. typing and receipts).
type API interface{}
