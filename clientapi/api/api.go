// Package api is the contract of the clientapi. The clientapi serves the
// Client-Server API's write paths and most reads that are not sync; no other
// component calls it, so its internal API is empty.
package api

// API is the clientapi internal API (empty: nothing calls the clientapi).
type API interface{}
