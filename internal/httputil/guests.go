package httputil

import "strings"

// guestRoutes are the authenticated client routes a guest may use: the
// spec's guest access module lists them ("Client behaviour"), keyed by
// method and mux pattern after /_matrix/client/<version>. POST
// /join/{roomIdOrAlias} is the same action as POST /rooms/{roomId}/join
// and is allowed with it (as Synapse does). The clientapi and the syncapi
// both gate on this one table, so a route moving between them keeps its
// answer. Finer rules (only the display name of a profile, only rooms
// whose guest_access is can_join) are the serving component's.
var guestRoutes = map[string]bool{
	"GET /sync":                                           true,
	"GET /events":                                         true, // room previews; not served
	"GET /rooms/{roomId}/state":                           true,
	"GET /rooms/{roomId}/context/{eventId}":               true,
	"GET /rooms/{roomId}/event/{eventId}":                 true,
	"GET /rooms/{roomId}/state/{eventType}":               true,
	"GET /rooms/{roomId}/state/{eventType}/{stateKey...}": true,
	"GET /rooms/{roomId}/messages":                        true,
	"GET /rooms/{roomId}/members":                         true,
	"GET /rooms/{roomId}/initialSync":                     true,
	"POST /rooms/{roomId}/join":                           true,
	"POST /join/{roomIdOrAlias}":                          true,
	"POST /rooms/{roomId}/leave":                          true,
	"PUT /rooms/{roomId}/send/{eventType}/{txnId}":        true,
	"PUT /rooms/{roomId}/state/{eventType}":               true,
	"PUT /rooms/{roomId}/state/{eventType}/{stateKey...}": true,
	"PUT /sendToDevice/{eventType}/{txnId}":               true,
	"PUT /profile/{userId}/{keyName}":                     true,
	"DELETE /profile/{userId}/{keyName}":                  true,
	"GET /devices":                                        true,
	"GET /devices/{deviceId}":                             true,
	"PUT /devices/{deviceId}":                             true,
	"GET /account/whoami":                                 true,
	"POST /keys/upload":                                   true,
	"POST /keys/query":                                    true,
	"POST /keys/claim":                                    true,
}

// GuestRoute is the route of a request matched to the mux pattern (as
// http.Request.Pattern holds it) the way the guest list keys it: the
// method and the pattern without /_matrix/client/<version>, so
// "GET /_matrix/client/v3/sync" is "GET /sync". It is "" for a pattern
// without a method or outside the client API.
func GuestRoute(pattern string) string {
	method, path, ok := strings.Cut(pattern, " ")
	if !ok {
		return ""
	}
	rest, ok := strings.CutPrefix(path, "/_matrix/client/")
	if !ok {
		return ""
	}
	if i := strings.IndexByte(rest, '/'); i >= 0 {
		return method + " " + rest[i:]
	}
	return ""
}

// GuestAllowed reports whether a guest may use the route of this mux
// pattern. Routes not on the guest list answer 403
// M_GUEST_ACCESS_FORBIDDEN.
func GuestAllowed(pattern string) bool {
	return guestRoutes[GuestRoute(pattern)]
}
