package routing

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"

	"github.com/axon-hs/axon/internal/apierr"
	"github.com/axon-hs/axon/internal/httputil"
	"github.com/axon-hs/axon/matrix"
	rsapi "github.com/axon-hs/axon/roomserver/api"
	userapi "github.com/axon-hs/axon/userapi/api"
)

// guestRoutes are the authenticated routes a guest may use: the spec's
// guest access module lists them ("Client behaviour"), by method and path
// after /_matrix/client/<version>. POST /join/{roomIdOrAlias} is the same
// action as POST /rooms/{roomId}/join and is allowed with it (as Synapse
// does). /sync and /events are the syncapi's.
var guestRoutes = map[string]bool{
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

// guestRoute is the route of r as guestRoutes keys it: the method and the
// mux pattern without the /_matrix/client/<version> prefix.
func guestRoute(r *http.Request) string {
	method, path, ok := strings.Cut(r.Pattern, " ")
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

// guestGate refuses a guest what the guest access module does not allow:
// routes outside the list, profile fields but the display name, and joins
// of rooms whose m.room.guest_access is not can_join.
func (rt *Routes) guestGate(r *http.Request, dev userapi.Device) error {
	if dev.AccountType != userapi.AccountGuest {
		return nil
	}
	route := guestRoute(r)
	if !guestRoutes[route] {
		return apierr.New(apierr.CodeGuestAccessForbided, "guests cannot use this endpoint")
	}
	switch route {
	case "PUT /profile/{userId}/{keyName}", "DELETE /profile/{userId}/{keyName}":
		if r.PathValue("keyName") != "displayname" {
			return apierr.New(apierr.CodeGuestAccessForbided, "guests may only change their display name")
		}
	case "POST /rooms/{roomId}/join", "POST /join/{roomIdOrAlias}":
		s := r.PathValue("roomId")
		if s == "" {
			s = r.PathValue("roomIdOrAlias")
		}
		roomID, err := rt.resolveRoom(r.Context(), s)
		if err != nil {
			return err
		}
		return rt.guestsCanJoin(r.Context(), roomID)
	}
	return nil
}

// guestsCanJoin is the spec's rule: guests join only rooms whose
// m.room.guest_access state has guest_access can_join.
func (rt *Routes) guestsCanJoin(ctx context.Context, roomID matrix.RoomID) error {
	cur, err := rt.rs.QueryCurrentState(ctx, rsapi.QueryCurrentStateRequest{
		RoomID: string(roomID), Tuples: []rsapi.StateKeyTuple{{Type: "m.room.guest_access", StateKey: ""}}})
	if err != nil {
		return err
	}
	for _, raw := range cur.StateEvents {
		var ev struct {
			Content struct {
				GuestAccess any `json:"guest_access"`
			} `json:"content"`
		}
		if json.Unmarshal(raw, &ev) == nil && ev.Content.GuestAccess == "can_join" {
			return nil
		}
	}
	return apierr.New(apierr.CodeGuestAccessForbided, "guests cannot join this room")
}

// registerGuest is POST /register?kind=guest: an account of kind guest,
// with a random localpart and no password, logged in at once, without
// user-interactive auth.
func (rt *Routes) registerGuest(w http.ResponseWriter, r *http.Request) error {
	if !rt.cfg.GuestAccess {
		return apierr.New(apierr.CodeGuestAccessForbided, "guest access is disabled on this server")
	}
	var req registerRequest
	if err := httputil.DecodeJSON(r, &req); err != nil {
		return err
	}
	acc, err := rt.users.CreateAccount(r.Context(), userapi.CreateAccountRequest{Localpart: randomLocalpart(), AccountType: userapi.AccountGuest})
	if err != nil {
		return err
	}
	// The spec: every field but initial_device_display_name is ignored, and
	// the server picks the device id. (A guest has no password, so this
	// device is its only way in.)
	return rt.registered(w, r, acc.UserID, registerRequest{InitialDeviceDisplayName: req.InitialDeviceDisplayName})
}
