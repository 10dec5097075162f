package routing

import (
	"net/http"
	"strconv"

	"github.com/axon-hs/axon/internal/apierr"
	"github.com/axon-hs/axon/internal/httputil"
	"github.com/axon-hs/axon/matrix"
	rsapi "github.com/axon-hs/axon/roomserver/api"
	userapi "github.com/axon-hs/axon/userapi/api"
)

func (rt *Routes) registerDirectory(mux *http.ServeMux) {
	mux.HandleFunc("GET "+v3+"/directory/list/room/{roomId}", rt.a.H(rt.getVisibility))
	mux.HandleFunc("PUT "+v3+"/directory/list/room/{roomId}", rt.authed(rt.putVisibility))
	mux.HandleFunc("GET "+v3+"/publicRooms", rt.a.H(rt.publicRoomsGet))
	mux.HandleFunc("POST "+v3+"/publicRooms", rt.authed(rt.publicRoomsPost))
}

func (rt *Routes) getVisibility(w http.ResponseWriter, r *http.Request) error {
	roomID, err := pathRoomID(r)
	if err != nil {
		return err
	}
	res, err := rt.rs.QueryRoomVisibility(r.Context(), rsapi.QueryRoomVisibilityRequest{RoomID: string(roomID)})
	if err != nil {
		return err
	}
	return httputil.JSON(w, map[string]string{"visibility": res.Visibility})
}

// putVisibility is PUT /directory/list/room/{roomId}: a member with the
// power to set the room's canonical alias may publish or unpublish it (the
// spec lets servers choose; this is the rule clients expect).
func (rt *Routes) putVisibility(w http.ResponseWriter, r *http.Request, dev userapi.Device) error {
	roomID, err := pathRoomID(r)
	if err != nil {
		return err
	}
	var body struct {
		Visibility *string `json:"visibility"`
	}
	if err := httputil.DecodeJSON(r, &body); err != nil {
		return err
	}
	vis := rsapi.VisibilityPublic
	if body.Visibility != nil {
		vis = *body.Visibility
	}
	if vis != rsapi.VisibilityPublic && vis != rsapi.VisibilityPrivate {
		return apierr.InvalidParam("visibility must be public or private")
	}
	m, err := rt.rs.QueryMembership(r.Context(), rsapi.QueryMembershipRequest{RoomID: string(roomID), UserID: dev.UserID})
	if err != nil {
		return err
	}
	if !m.RoomExists {
		return apierr.NotFound("unknown room %s", roomID)
	}
	ok, err := rt.mayChangeState(r, dev.UserID, roomID, "m.room.canonical_alias")
	if err != nil {
		return err
	}
	if !ok {
		return apierr.Forbidden("you may not change the directory visibility of room %s", roomID)
	}
	if _, err := rt.rs.SetRoomVisibility(r.Context(), rsapi.SetRoomVisibilityRequest{RoomID: string(roomID), Visibility: vis}); err != nil {
		return err
	}
	return httputil.JSON(w, struct{}{})
}

// checkDirectoryServer refuses the server parameter for another server:
// its directory needs a federation request this server cannot make yet.
func (rt *Routes) checkDirectoryServer(r *http.Request) error {
	s := r.URL.Query().Get("server")
	if s == "" || s == string(rt.cfg.ServerName) {
		return nil
	}
	if _, err := matrix.ParseServerName(s); err != nil {
		return apierr.InvalidParam("invalid server name: %v", err)
	}
	return apierr.NotFound("the room directory of %s cannot be queried by this server yet", s)
}

// publicRoomsGet is GET /publicRooms (no authentication).
func (rt *Routes) publicRoomsGet(w http.ResponseWriter, r *http.Request) error {
	if err := rt.checkDirectoryServer(r); err != nil {
		return err
	}
	q := r.URL.Query()
	req := rsapi.QueryPublicRoomsRequest{Since: q.Get("since")}
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 0 {
			return apierr.InvalidParam("limit must be a non-negative integer")
		}
		req.Limit = n
	}
	return rt.publicRooms(w, r, req)
}

// publicRoomsRequest is the body of POST /publicRooms.
type publicRoomsRequest struct {
	Limit  *int    `json:"limit"`
	Since  *string `json:"since"`
	Filter *struct {
		GenericSearchTerm *string   `json:"generic_search_term"`
		RoomTypes         []*string `json:"room_types"`
	} `json:"filter"`
	IncludeAllNetworks   bool    `json:"include_all_networks"`
	ThirdPartyInstanceID *string `json:"third_party_instance_id"`
}

// publicRoomsPost is POST /publicRooms, with a filter.
func (rt *Routes) publicRoomsPost(w http.ResponseWriter, r *http.Request, _ userapi.Device) error {
	if err := rt.checkDirectoryServer(r); err != nil {
		return err
	}
	var body publicRoomsRequest
	if err := httputil.DecodeJSON(r, &body); err != nil {
		return err
	}
	if body.ThirdPartyInstanceID != nil && !body.IncludeAllNetworks {
		// No application service publishes networks here: that network's list is empty.
		return httputil.JSON(w, rsapi.QueryPublicRoomsResponse{Chunk: []rsapi.PublicRoom{}})
	}
	var req rsapi.QueryPublicRoomsRequest
	if body.Limit != nil {
		if *body.Limit < 0 {
			return apierr.InvalidParam("limit must not be negative")
		}
		req.Limit = *body.Limit
	}
	if body.Since != nil {
		req.Since = *body.Since
	}
	if f := body.Filter; f != nil {
		if f.GenericSearchTerm != nil {
			req.Filter = *f.GenericSearchTerm
		}
		for _, t := range f.RoomTypes {
			// null in room_types stands for rooms without a type.
			if t == nil {
				req.RoomTypes = append(req.RoomTypes, "")
			} else {
				req.RoomTypes = append(req.RoomTypes, *t)
			}
		}
	}
	return rt.publicRooms(w, r, req)
}

func (rt *Routes) publicRooms(w http.ResponseWriter, r *http.Request, req rsapi.QueryPublicRoomsRequest) error {
	res, err := rt.rs.QueryPublicRooms(r.Context(), req)
	if err != nil {
		return err
	}
	return httputil.JSON(w, res)
}
