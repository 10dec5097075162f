package routing

import (
	"encoding/json"
	"net/http"

	"github.com/axon-hs/axon/internal/apierr"
	"github.com/axon-hs/axon/internal/httputil"
	userapi "github.com/axon-hs/axon/userapi/api"
)

func (rt *Routes) registerFilters(mux *http.ServeMux) {
	mux.HandleFunc("POST "+v3+"/user/{userId}/filter", rt.authed(rt.createFilter))
	mux.HandleFunc("GET "+v3+"/user/{userId}/filter/{filterId}", rt.authed(rt.getFilter))
}

// The filter types below only check the shape of an uploaded filter (the
// spec's Filter schema): a field of the wrong type is M_BAD_JSON. The filter
// is stored as uploaded; the syncapi interprets it.
type eventFilter struct {
	Limit      *int     `json:"limit"`
	NotSenders []string `json:"not_senders"`
	NotTypes   []string `json:"not_types"`
	Senders    []string `json:"senders"`
	Types      []string `json:"types"`
}

type roomEventFilter struct {
	eventFilter
	LazyLoadMembers         *bool    `json:"lazy_load_members"`
	IncludeRedundantMembers *bool    `json:"include_redundant_members"`
	NotRooms                []string `json:"not_rooms"`
	Rooms                   []string `json:"rooms"`
	ContainsURL             *bool    `json:"contains_url"`
	UnreadThreadNotifs      *bool    `json:"unread_thread_notifications"`
}

type roomFilter struct {
	AccountData  *roomEventFilter `json:"account_data"`
	Ephemeral    *roomEventFilter `json:"ephemeral"`
	IncludeLeave *bool            `json:"include_leave"`
	NotRooms     []string         `json:"not_rooms"`
	Rooms        []string         `json:"rooms"`
	State        *roomEventFilter `json:"state"`
	Timeline     *roomEventFilter `json:"timeline"`
}

type filterShape struct {
	AccountData *eventFilter `json:"account_data"`
	EventFields []string     `json:"event_fields"`
	EventFormat *string      `json:"event_format"`
	Presence    *eventFilter `json:"presence"`
	Room        *roomFilter  `json:"room"`
}

// checkFilter validates a filter's shape and values.
func checkFilter(raw json.RawMessage) error {
	var f filterShape
	if err := httputil.Unmarshal(raw, &f); err != nil {
		return err
	}
	if f.EventFormat != nil && *f.EventFormat != "client" && *f.EventFormat != "federation" {
		return apierr.BadJSON(`event_format must be "client" or "federation"`)
	}
	limits := []*eventFilter{f.AccountData, f.Presence}
	if f.Room != nil {
		for _, rf := range []*roomEventFilter{f.Room.AccountData, f.Room.Ephemeral, f.Room.State, f.Room.Timeline} {
			if rf != nil {
				limits = append(limits, &rf.eventFilter)
			}
		}
	}
	for _, ef := range limits {
		if ef != nil && ef.Limit != nil && *ef.Limit < 1 {
			return apierr.BadJSON("limit must be at least 1")
		}
	}
	return nil
}

func (rt *Routes) createFilter(w http.ResponseWriter, r *http.Request, dev userapi.Device) error {
	raw, err := decodeObject(r)
	if err != nil {
		return err
	}
	if err := checkFilter(raw); err != nil {
		return err
	}
	if r.PathValue("userId") != dev.UserID {
		return apierr.Forbidden("cannot create filters for another user")
	}
	res, err := rt.users.CreateFilter(r.Context(), userapi.CreateFilterRequest{UserID: dev.UserID, Filter: raw})
	if err != nil {
		return err
	}
	return httputil.JSON(w, map[string]string{"filter_id": res.FilterID})
}

func (rt *Routes) getFilter(w http.ResponseWriter, r *http.Request, dev userapi.Device) error {
	if r.PathValue("userId") != dev.UserID {
		return apierr.Forbidden("cannot read another user's filters")
	}
	res, err := rt.users.QueryFilter(r.Context(), userapi.QueryFilterRequest{UserID: dev.UserID, FilterID: r.PathValue("filterId")})
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json")
	_, err = w.Write(res.Filter)
	return err
}
