package routing

import (
	"net/http"
	"strconv"

	"github.com/axon-hs/axon/internal/httputil"
	"github.com/axon-hs/axon/matrix/event"
	userapi "github.com/axon-hs/axon/userapi/api"
)

func (rt *Routes) registerCapabilities(mux *http.ServeMux) {
	mux.HandleFunc("GET "+v3+"/capabilities", rt.authed(rt.capabilities))
}

// capabilities is GET /capabilities: each flag states what this server
// really does.
func (rt *Routes) capabilities(w http.ResponseWriter, r *http.Request, dev userapi.Device) error {
	versions := map[string]string{}
	for i := 1; i <= 12; i++ {
		id := strconv.Itoa(i)
		if _, ok := event.Version(id); ok {
			versions[id] = "stable"
		}
	}
	on := map[string]bool{"enabled": true}
	off := map[string]bool{"enabled": false}
	return httputil.JSON(w, map[string]any{"capabilities": map[string]any{
		"m.change_password": on,
		"m.room_versions":   map[string]any{"default": event.DefaultRoomVersion, "available": versions},
		"m.set_displayname": on,
		"m.set_avatar_url":  on,
		"m.profile_fields":  map[string]any{"enabled": true, "allowed": settableProfileFields},
		"m.3pid_changes":    off,
		"m.get_login_token": map[string]bool{"enabled": rt.cfg.LoginTokens},
	}})
}
