package routing

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/axon-hs/axon/internal/apierr"
	"github.com/axon-hs/axon/internal/eventlog"
	"github.com/axon-hs/axon/internal/httputil"
	"github.com/axon-hs/axon/matrix"
	syncapi "github.com/axon-hs/axon/syncapi/api"
	"github.com/axon-hs/axon/syncapi/internal/streams"
	"github.com/axon-hs/axon/syncapi/storage"
	userapi "github.com/axon-hs/axon/userapi/api"
)

// Receipt types (client-server API "Receipts", "Fully read markers").
const (
	receiptRead        = "m.read"
	receiptReadPrivate = "m.read.private"
	fullyRead          = "m.fully_read"
)

// pathRoom reads and validates the {roomId} path value.
func pathRoom(r *http.Request) (string, error) {
	id := r.PathValue("roomId")
	if _, err := matrix.ParseRoomID(id); err != nil {
		return "", apierr.InvalidParam("room id %q: %v", id, err)
	}
	return id, nil
}

// requireJoined answers M_FORBIDDEN unless the user is joined to the room.
func (s *Sync) requireJoined(ctx context.Context, roomID, userID string) error {
	m, err := s.db.CurrentState.Membership(ctx, s.db.DB.Reader(), roomID, userID)
	if err != nil {
		return err
	}
	if m != join {
		return apierr.New(apierr.CodeForbidden, "you are not joined to room %s", roomID)
	}
	return nil
}

// ServeTyping is PUT /rooms/{roomId}/typing/{userId}. Errors: M_FORBIDDEN
// for another user or a room the user is not joined to, M_BAD_JSON without
// a boolean typing, M_INVALID_PARAM for a bad room id.
func (s *Sync) ServeTyping(w http.ResponseWriter, r *http.Request) error {
	dev, roomID, err := s.deviceInRoom(r)
	if err != nil {
		return err
	}
	var body struct {
		Typing  *bool  `json:"typing"`
		Timeout *int64 `json:"timeout"`
	}
	if err := httputil.DecodeJSON(r, &body); err != nil {
		return err
	}
	if body.Typing == nil {
		return apierr.BadJSON("typing is required")
	}
	if body.Timeout != nil && *body.Timeout < 0 {
		return apierr.BadJSON("timeout must not be negative")
	}
	if r.PathValue("userId") != dev.UserID {
		return apierr.New(apierr.CodeForbidden, "cannot set the typing state of another user")
	}
	if err := s.requireJoined(r.Context(), roomID, dev.UserID); err != nil {
		return err
	}
	// Without a timeout the notification lasts the longest we allow: the
	// client will send typing=false.
	timeout := 30 * time.Second
	if body.Timeout != nil {
		timeout = time.Duration(min(*body.Timeout, int64(time.Hour/time.Millisecond))) * time.Millisecond
	}
	s.typing.Set(roomID, dev.UserID, *body.Typing, timeout)
	return httputil.JSON(w, struct{}{})
}

// ServeReceipt is POST /rooms/{roomId}/receipt/{receiptType}/{eventId}.
// Errors: M_INVALID_PARAM for an unknown receipt type, a bad id or a bad
// thread_id, M_FORBIDDEN when not joined, M_NOT_FOUND for an event not in
// the room.
func (s *Sync) ServeReceipt(w http.ResponseWriter, r *http.Request) error {
	dev, roomID, err := s.deviceInRoom(r)
	if err != nil {
		return err
	}
	typ, eventID := r.PathValue("receiptType"), r.PathValue("eventId")
	switch typ {
	case receiptRead, receiptReadPrivate, fullyRead:
	default:
		return apierr.InvalidParam("receipt type %q is not m.read, m.read.private or m.fully_read", typ)
	}
	var body struct {
		ThreadID *string `json:"thread_id"`
	}
	if err := httputil.DecodeJSON(r, &body); err != nil {
		return err
	}
	threadID := ""
	if body.ThreadID != nil {
		threadID = *body.ThreadID
		if typ == fullyRead {
			return apierr.InvalidParam("thread_id does not apply to m.fully_read")
		}
		if threadID != "main" {
			if !looksLikeEventID(threadID) {
				return apierr.InvalidParam("thread_id %q is neither \"main\" nor an event id", threadID)
			}
		}
	}
	if err := s.mark(r.Context(), dev, roomID, typ, eventID, threadID); err != nil {
		return err
	}
	return httputil.JSON(w, struct{}{})
}

// ServeReadMarkers is POST /rooms/{roomId}/read_markers.
func (s *Sync) ServeReadMarkers(w http.ResponseWriter, r *http.Request) error {
	dev, roomID, err := s.deviceInRoom(r)
	if err != nil {
		return err
	}
	var body map[string]*string
	if err := httputil.DecodeJSON(r, &body); err != nil {
		return err
	}
	for _, typ := range []string{fullyRead, receiptRead, receiptReadPrivate} {
		if id := body[typ]; id != nil {
			if err := s.mark(r.Context(), dev, roomID, typ, *id, ""); err != nil {
				return err
			}
		}
	}
	return httputil.JSON(w, struct{}{})
}

// mark applies one receipt or the fully read marker after checking that
// the user is joined and the event is in the room.
func (s *Sync) mark(ctx context.Context, dev userapi.Device, roomID, typ, eventID, threadID string) error {
	if !looksLikeEventID(eventID) {
		return apierr.InvalidParam("%q is not an event id", eventID)
	}
	if err := s.requireJoined(ctx, roomID, dev.UserID); err != nil {
		return err
	}
	evs, err := s.db.Events.SelectByIDs(ctx, s.db.DB.Reader(), []string{eventID})
	if err != nil {
		return err
	}
	if len(evs) == 0 || evs[0].RoomID != roomID {
		return apierr.New(apierr.CodeNotFound, "event %s is not in room %s", eventID, roomID)
	}
	if typ == fullyRead {
		// The fully read marker is room account data, owned by the userapi; it
		// comes back to /sync through the account data topic.
		content, err := json.Marshal(map[string]string{"event_id": eventID})
		if err != nil {
			return fmt.Errorf("encode m.fully_read: %w", err)
		}
		_, err = s.userAPI.PutAccountData(ctx, userapi.PutAccountDataRequest{UserID: dev.UserID, RoomID: roomID, Type: fullyRead, Content: content})
		return err
	}
	rc := storage.Receipt{RoomID: roomID, Type: typ, UserID: dev.UserID, ThreadID: threadID, EventID: eventID, TS: s.now().UnixMilli()}
	err = s.db.InTx(ctx, func(tx *sql.Tx) error {
		var err error
		if rc.Position, err = s.db.Positions.Next(ctx, tx, streams.Receipt); err != nil {
			return err
		}
		return s.db.Receipts.Upsert(ctx, tx, rc)
	})
	if err != nil {
		return err
	}
	if typ == receiptReadPrivate {
		s.notifier.OnUsers(streams.Receipt, rc.Position, dev.UserID)
	} else {
		s.notifier.OnRoom(streams.Receipt, rc.Position, roomID, dev.UserID)
	}
	out := syncapi.OutputReceipt{RoomID: roomID, UserID: dev.UserID, Type: typ, EventID: eventID, ThreadID: threadID, TS: rc.TS}
	if _, err := eventlog.Publish(ctx, s.evlog, syncapi.ReceiptTopic, roomID, out); err != nil {
		return fmt.Errorf("publish receipt of %s in room %s: %w", dev.UserID, roomID, err)
	}
	return nil
}

// looksLikeEventID is the cheap check before a lookup: the sigil and the
// length limit. Whether the id names an event of the room is the lookup's
// answer (M_NOT_FOUND), not a syntax question.
func looksLikeEventID(s string) bool {
	return len(s) > 1 && len(s) <= matrix.MaxIDLength && s[0] == '$'
}
