package httputil

import (
	"strings"
	"testing"
)

// TestGuestAllowed: the routes of the spec's guest access module are
// allowed under every version prefix, routes off the list (or with
// another method) are not, whatever their suffix.
func TestGuestAllowed(t *testing.T) {
	allowed := []string{
		"GET /sync", "GET /rooms/{roomId}/messages", "GET /rooms/{roomId}/context/{eventId}",
		"GET /rooms/{roomId}/event/{eventId}", "GET /rooms/{roomId}/state", "GET /rooms/{roomId}/state/{eventType}",
		"GET /rooms/{roomId}/state/{eventType}/{stateKey...}", "GET /rooms/{roomId}/members",
		"GET /rooms/{roomId}/initialSync", "POST /rooms/{roomId}/join", "POST /join/{roomIdOrAlias}",
		"POST /rooms/{roomId}/leave", "PUT /rooms/{roomId}/send/{eventType}/{txnId}",
		"PUT /rooms/{roomId}/state/{eventType}/{stateKey...}", "PUT /sendToDevice/{eventType}/{txnId}",
		"PUT /profile/{userId}/{keyName}", "GET /devices", "GET /devices/{deviceId}", "PUT /devices/{deviceId}",
		"GET /account/whoami", "POST /keys/upload", "POST /keys/query", "POST /keys/claim",
	}
	for _, route := range allowed {
		for _, version := range []string{"v3", "r0", "v1"} {
			method, path, _ := strings.Cut(route, " ")
			pattern := method + " /_matrix/client/" + version + path
			if !GuestAllowed(pattern) {
				t.Errorf("GuestAllowed(%q) = false, want true", pattern)
			}
		}
	}
	for _, pattern := range []string{
		"POST /_matrix/client/v3/sync", // the method counts
		"DELETE /_matrix/client/v3/devices/{deviceId}",
		"PUT /_matrix/client/v3/rooms/{roomId}/typing/{userId}",
		"POST /_matrix/client/v3/rooms/{roomId}/receipt/{receiptType}/{eventId}",
		"POST /_matrix/client/v3/rooms/{roomId}/read_markers",
		"PUT /_matrix/client/v3/presence/{userId}/status",
		"GET /_matrix/client/v3/presence/{userId}/status",
		"POST /_matrix/client/v3/search",
		"GET /_matrix/client/v1/rooms/{roomId}/relations/{eventId}",
		"GET /_matrix/client/v1/rooms/{roomId}/threads",
		"GET /_matrix/client/v1/rooms/{roomId}/timestamp_to_event",
		"POST /_matrix/client/v3/createRoom",
		"GET /_matrix/client/v3/capabilities",
		"POST /_matrix/client/v1/login/get_token",
		"GET /_matrix/client/v3/user/{userId}/filter/{filterId}/sync", // a suffix is not the route
		"GET /_matrix/client/sync",                                    // no version
		"GET /_synapse/admin/v1/sync",
		"/_matrix/client/v3/sync", // no method
		"",
	} {
		if GuestAllowed(pattern) {
			t.Errorf("GuestAllowed(%q) = true, want false", pattern)
		}
	}
}
