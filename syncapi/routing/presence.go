package routing

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/axon-hs/axon/internal/apierr"
	"github.com/axon-hs/axon/internal/httputil"
	"github.com/axon-hs/axon/matrix"
	"github.com/axon-hs/axon/syncapi/internal/streams"
	"github.com/axon-hs/axon/syncapi/storage"
)

// Presence states (client-server API "Presence").
const (
	presenceOnline      = "online"
	presenceOffline     = "offline"
	presenceUnavailable = "unavailable"
	// maxStatusMsg bounds a status message.
	maxStatusMsg = 1024
	// activeWindow is how recent an activity must be for currently_active.
	activeWindowMs = 5 * 60 * 1000
)

// presenceContent is the content of an m.presence event and the body of
// GET /presence/{userId}/status.
type presenceContent struct {
	Presence        string  `json:"presence"`
	LastActiveAgo   *int64  `json:"last_active_ago,omitempty"`
	StatusMsg       *string `json:"status_msg,omitempty"`
	CurrentlyActive *bool   `json:"currently_active,omitempty"`
}

func (s *Sync) contentOf(p storage.Presence) presenceContent {
	return presenceFor(p, s.now().UnixMilli())
}

// ServeGetPresence is GET /presence/{userId}/status. Errors: M_INVALID_PARAM
// for a bad user id, M_FORBIDDEN for a user who shares no room with the
// requester, M_NOT_FOUND when the user never set a presence.
func (s *Sync) ServeGetPresence(w http.ResponseWriter, r *http.Request) error {
	dev, err := s.device(r)
	if err != nil {
		return err
	}
	userID := r.PathValue("userId")
	if _, err := matrix.ParseUserID(userID); err != nil {
		return apierr.InvalidParam("user id %q: %v", userID, err)
	}
	if userID != dev.UserID && !s.notifier.SharesRoom(userID, dev.UserID) {
		return apierr.New(apierr.CodeForbidden, "you share no room with %s", userID)
	}
	p, ok, err := s.db.Presence.Get(r.Context(), s.db.DB.Reader(), userID)
	if err != nil {
		return err
	}
	if !ok {
		if userID == dev.UserID {
			return httputil.JSON(w, presenceContent{Presence: presenceOffline})
		}
		return apierr.New(apierr.CodeNotFound, "no presence for %s", userID)
	}
	return httputil.JSON(w, s.contentOf(p))
}

// ServePutPresence is PUT /presence/{userId}/status. Errors: M_FORBIDDEN
// for another user, M_BAD_JSON for a missing or unknown presence or a
// status message that is not a string.
func (s *Sync) ServePutPresence(w http.ResponseWriter, r *http.Request) error {
	dev, err := s.device(r)
	if err != nil {
		return err
	}
	userID := r.PathValue("userId")
	if _, err := matrix.ParseUserID(userID); err != nil {
		return apierr.InvalidParam("user id %q: %v", userID, err)
	}
	var body struct {
		Presence  string          `json:"presence"`
		StatusMsg json.RawMessage `json:"status_msg"`
	}
	if err := httputil.DecodeJSON(r, &body); err != nil {
		return err
	}
	switch body.Presence {
	case presenceOnline, presenceOffline, presenceUnavailable:
	default:
		return apierr.BadJSON("presence must be online, offline or unavailable")
	}
	var msg *string
	if len(body.StatusMsg) > 0 && string(body.StatusMsg) != "null" {
		var m string
		if err := json.Unmarshal(body.StatusMsg, &m); err != nil {
			return apierr.BadJSON("status_msg must be a string")
		}
		if len(m) > maxStatusMsg {
			return apierr.BadJSON("status_msg is longer than %d bytes", maxStatusMsg)
		}
		msg = &m
	}
	if userID != dev.UserID {
		return apierr.New(apierr.CodeForbidden, "cannot set the presence of another user")
	}
	if err := s.storePresence(r.Context(), userID, body.Presence, msg, true); err != nil {
		return err
	}
	return httputil.JSON(w, struct{}{})
}

// setPresence applies /sync's set_presence: online and unavailable are
// stored when they change the user's presence (so a syncing client does not
// wake its room mates on every poll); offline means "do not mark online".
func (s *Sync) setPresence(ctx context.Context, userID, presence string) error {
	if presence == "" || presence == presenceOffline {
		return nil
	}
	return s.storePresence(ctx, userID, presence, nil, false)
}

// storePresence writes a presence; explicit is a PUT (status message
// replaced, always stored) rather than a sync (status message kept, stored
// only on change).
func (s *Sync) storePresence(ctx context.Context, userID, presence string, msg *string, explicit bool) error {
	var pos streams.Position
	err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		pos = 0
		old, ok, err := s.db.Presence.Get(ctx, tx, userID)
		if err != nil {
			return err
		}
		if !explicit {
			if ok && old.Presence == presence {
				return nil
			}
			msg = old.StatusMsg
		}
		if pos, err = s.db.Positions.Next(ctx, tx, streams.Presence); err != nil {
			return err
		}
		return s.db.Presence.Upsert(ctx, tx, storage.Presence{UserID: userID, Presence: presence, StatusMsg: msg,
			LastActiveTS: s.now().UnixMilli(), Position: pos})
	})
	if err != nil {
		return fmt.Errorf("store presence of %s: %w", userID, err)
	}
	if pos > 0 {
		s.notifier.OnPresence(pos, userID)
	}
	return nil
}
