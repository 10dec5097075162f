package routing

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"maps"
	"net/http"
	"slices"

	"github.com/axon-hs/axon/clientapi/internal"
	"github.com/axon-hs/axon/internal/apierr"
	"github.com/axon-hs/axon/internal/httputil"
	"github.com/axon-hs/axon/matrix"
	"github.com/axon-hs/axon/matrix/event"
	rsapi "github.com/axon-hs/axon/roomserver/api"
	userapi "github.com/axon-hs/axon/userapi/api"
)

func (rt *Routes) registerRooms(mux *http.ServeMux) {
	mux.HandleFunc("POST "+v3+"/createRoom", rt.authed(rt.createRoom))
	mux.HandleFunc("PUT "+v3+"/rooms/{roomId}/send/{eventType}/{txnId}", rt.authed(rt.send))
}

type stateEventReq struct {
	Type     string          `json:"type"`
	StateKey string          `json:"state_key"`
	Content  json.RawMessage `json:"content"`
}

type createRoomRequest struct {
	Visibility                string            `json:"visibility"`
	RoomAliasName             string            `json:"room_alias_name"`
	Name                      *string           `json:"name"`
	Topic                     *string           `json:"topic"`
	Invite                    []string          `json:"invite"`
	Invite3PID                []json.RawMessage `json:"invite_3pid"`
	RoomVersion               string            `json:"room_version"`
	CreationContent           map[string]any    `json:"creation_content"`
	InitialState              []stateEventReq   `json:"initial_state"`
	Preset                    string            `json:"preset"`
	IsDirect                  bool              `json:"is_direct"`
	PowerLevelContentOverride map[string]any    `json:"power_level_content_override"`
}

func strp(s string) *string { return &s }

// createRoom is POST /createRoom: the events of a new room, in the order the
// spec lists, built as one chain and submitted to the roomserver together.
func (rt *Routes) createRoom(w http.ResponseWriter, r *http.Request, dev userapi.Device) error {
	ctx := r.Context()
	var req createRoomRequest
	if err := httputil.DecodeJSON(r, &req); err != nil {
		return err
	}
	var alias matrix.RoomAlias
	if req.RoomAliasName != "" {
		var err error
		if alias, err = rt.newRoomAlias(ctx, req.RoomAliasName); err != nil {
			return err
		}
	}
	if len(req.Invite3PID) > 0 {
		return apierr.New(apierr.CodeUnrecognized, "third-party invites are not supported by this server yet")
	}
	if req.RoomVersion == "" {
		req.RoomVersion = event.DefaultRoomVersion
	}
	v, ok := event.Version(req.RoomVersion)
	if !ok {
		return apierr.New(apierr.CodeUnsupportedRoomVer, "room version %q is not supported", req.RoomVersion)
	}
	switch req.Visibility {
	case "", "private", "public":
	default:
		return apierr.BadJSON("visibility must be public or private")
	}
	if req.Preset == "" {
		req.Preset = "private_chat"
		if req.Visibility == "public" {
			req.Preset = "public_chat"
		}
	}
	joinRule, guestAccess := "invite", "can_join"
	switch req.Preset {
	case "private_chat", "trusted_private_chat":
	case "public_chat":
		joinRule, guestAccess = "public", "forbidden"
	default:
		return apierr.BadJSON("unknown preset %q", req.Preset)
	}
	var invitees []matrix.UserID
	for _, s := range req.Invite {
		u, err := matrix.ParseUserID(s)
		if err != nil {
			return apierr.InvalidParam("invalid user id in invite: %q", s)
		}
		// The creator is joined already: inviting them would be refused.
		if u != matrix.UserID(dev.UserID) && !slices.Contains(invitees, u) {
			invitees = append(invitees, u)
		}
	}
	for _, s := range req.InitialState {
		if s.Type == "" || len(s.Content) == 0 || s.Content[0] != '{' {
			return apierr.BadJSON("initial_state entries need a type and an object content")
		}
	}

	sender := matrix.UserID(dev.UserID)
	var roomID matrix.RoomID
	if !v.RoomIDFromCreate {
		roomID = matrix.RoomID("!" + randomID(18) + ":" + string(rt.cfg.ServerName))
	}
	chain := rt.builder.NewChain(v, roomID)

	// 1. The create event.
	create := maps.Clone(req.CreationContent)
	if create == nil {
		create = map[string]any{}
	}
	create["room_version"] = v.ID
	if v.CreateRequiresCreator {
		create["creator"] = dev.UserID
	} else {
		delete(create, "creator")
	}
	if v.PrivilegedCreators && req.Preset == "trusted_private_chat" {
		// Room v12: invitees of a trusted private chat become creators (createRoom, step 3 note).
		var extra []string
		if a, ok := create["additional_creators"].([]any); ok {
			for _, x := range a {
				if s, ok := x.(string); ok {
					extra = append(extra, s)
				}
			}
		}
		for _, u := range invitees {
			if !slices.Contains(extra, string(u)) && u != sender {
				extra = append(extra, string(u))
			}
		}
		if len(extra) > 0 {
			create["additional_creators"] = extra
		}
	}
	steps := []event.Proto{{Type: event.TypeCreate, StateKey: strp(""), Content: create}}

	// 2. The creator joins.
	profile, err := rt.users.QueryProfile(ctx, userapi.QueryProfileRequest{UserID: dev.UserID})
	if err != nil {
		return err
	}
	member := map[string]any{"membership": "join"}
	if profile.DisplayName != "" {
		member["displayname"] = profile.DisplayName
	}
	if profile.AvatarURL != "" {
		member["avatar_url"] = profile.AvatarURL
	}
	steps = append(steps, event.Proto{Type: event.TypeMember, StateKey: strp(dev.UserID), Content: member})

	// 3. Power levels.
	steps = append(steps, event.Proto{Type: event.TypePowerLevels, StateKey: strp(""),
		Content: powerLevels(v, sender, req.Preset, invitees, req.PowerLevelContentOverride)})

	// 4. The canonical alias.
	if alias != "" {
		steps = append(steps, event.Proto{Type: "m.room.canonical_alias", StateKey: strp(""), Content: map[string]string{"alias": string(alias)}})
	}

	// 5. What the preset implies, unless initial_state sets it.
	overridden := map[string]bool{}
	for _, s := range req.InitialState {
		if s.StateKey == "" {
			overridden[s.Type] = true
		}
	}
	for _, p := range []struct {
		typ, key, value string
	}{
		{event.TypeJoinRules, "join_rule", joinRule},
		{event.TypeHistoryVisibility, "history_visibility", "shared"},
		{"m.room.guest_access", "guest_access", guestAccess},
	} {
		if !overridden[p.typ] {
			steps = append(steps, event.Proto{Type: p.typ, StateKey: strp(""), Content: map[string]string{p.key: p.value}})
		}
	}
	// 6. initial_state, in order.
	for _, s := range req.InitialState {
		steps = append(steps, event.Proto{Type: s.Type, StateKey: strp(s.StateKey), Content: s.Content})
	}
	// 7. Name and topic.
	if req.Name != nil {
		steps = append(steps, event.Proto{Type: "m.room.name", StateKey: strp(""), Content: map[string]string{"name": *req.Name}})
	}
	if req.Topic != nil {
		steps = append(steps, event.Proto{Type: "m.room.topic", StateKey: strp(""), Content: topicContent(*req.Topic)})
	}
	// 8. Invites.
	for _, u := range invitees {
		c := map[string]any{"membership": "invite"}
		if req.IsDirect {
			c["is_direct"] = true
		}
		steps = append(steps, event.Proto{Type: event.TypeMember, StateKey: strp(string(u)), Content: c})
	}

	for _, p := range steps {
		p.Sender = sender
		if _, err := chain.Add(p); err != nil {
			return err
		}
	}
	if _, err := rt.rs.InputRoomEvents(ctx, chain.Input()); err != nil {
		if e, ok := apierr.As(err); ok && e.Code == apierr.CodeForbidden {
			return apierr.New(apierr.CodeInvalidRoomState, "the requested initial state is not allowed: %s", e.Msg)
		}
		return err
	}
	if err := rt.publishNewRoom(ctx, dev, chain.RoomID, alias, req.Visibility); err != nil {
		return err
	}
	return httputil.JSON(w, map[string]string{"room_id": string(chain.RoomID)})
}

// topicContent is m.room.topic content with the m.topic text block (spec 1.15).
func topicContent(topic string) map[string]any {
	return map[string]any{"topic": topic, "m.topic": map[string]any{
		"m.text": []map[string]string{{"mimetype": "text/plain", "body": topic}}}}
}

// powerLevels is the default m.room.power_levels content of a new room
// with the client's override applied on top.
func powerLevels(v *event.RoomVersion, creator matrix.UserID, preset string, invitees []matrix.UserID, override map[string]any) map[string]any {
	users := map[string]any{}
	tombstone := 100
	if v.PrivilegedCreators {
		// Creators have infinite power and must not be listed (room v12);
		// tombstones need more than state_default (createRoom step 3).
		tombstone = 150
	} else {
		users[string(creator)] = 100
		if preset == "trusted_private_chat" {
			for _, u := range invitees {
				users[string(u)] = 100
			}
		}
	}
	pl := map[string]any{
		"users":          users,
		"users_default":  0,
		"events_default": 0,
		"state_default":  50,
		"ban":            50,
		"kick":           50,
		"redact":         50,
		"invite":         0,
		"notifications":  map[string]any{"room": 50},
		"events": map[string]any{
			"m.room.name":               50,
			"m.room.power_levels":       100,
			"m.room.history_visibility": 100,
			"m.room.canonical_alias":    50,
			"m.room.avatar":             50,
			"m.room.tombstone":          tombstone,
			"m.room.server_acl":         100,
			"m.room.encryption":         100,
		},
	}
	for k, val := range override {
		pl[k] = val
	}
	return pl
}

// send is PUT /rooms/{roomId}/send/{eventType}/{txnId}. A repeated
// transaction id from the same device returns the first event's id.
func (rt *Routes) send(w http.ResponseWriter, r *http.Request, dev userapi.Device) error {
	ctx := r.Context()
	roomID, err := matrix.ParseRoomID(r.PathValue("roomId"))
	if err != nil {
		return apierr.InvalidParam("invalid room id: %v", err)
	}
	evType := r.PathValue("eventType")
	if evType == "" || len(evType) > 255 {
		return apierr.InvalidParam("invalid event type")
	}
	var content map[string]json.RawMessage
	if err := httputil.DecodeJSON(r, &content); err != nil {
		return err
	}
	txn := rsapi.TransactionID{UserID: dev.UserID, DeviceID: dev.DeviceID, Scope: "send:" + string(roomID), TransactionID: r.PathValue("txnId")}
	unlock, err := rt.startTxn(ctx, txn)
	if err != nil {
		return err
	}
	defer unlock()

	if err := rt.checkThreadRoot(ctx, roomID, content); err != nil {
		return err
	}
	e, res, err := rt.sendInRoom(ctx, event.Proto{Type: evType, Sender: matrix.UserID(dev.UserID), RoomID: roomID, Content: content}, &txn)
	if err != nil {
		return err
	}
	return httputil.JSON(w, map[string]string{"event_id": txnEvent(res, string(e.EventID()))})
}

// sendInRoom builds p on the room's head and submits it (with txn, when
// set). The sends of a room through this process take turns: two events
// built on the same head fork the room, and the next event then merges
// the forks, which costs the roomserver a read of the room and state
// resolution where an event on the cached head costs neither (under load,
// a quarter of the messages forked).
func (rt *Routes) sendInRoom(ctx context.Context, p event.Proto, txn *rsapi.TransactionID) (*event.PDU, rsapi.InputRoomEventsResponse, error) {
	unlock, err := rt.roomMu.Lock(ctx, string(p.RoomID))
	if err != nil {
		return nil, rsapi.InputRoomEventsResponse{}, err
	}
	defer unlock()
	e, v, err := rt.builder.Build(ctx, p)
	if err != nil {
		return nil, rsapi.InputRoomEventsResponse{}, err
	}
	req := internal.SingleInput(e, v)
	req.Events[0].TxnID = txn // recorded with the event by the roomserver
	res, err := rt.rs.InputRoomEvents(ctx, req)
	if err != nil {
		return nil, res, err
	}
	return e, res, nil
}

// txnEvent is the event a send made: the submitted one, or the one an
// earlier request of the same transaction made when the roomserver had
// recorded it first (a retry built before that event was stored).
func txnEvent(res rsapi.InputRoomEventsResponse, submitted string) string {
	if id, ok := res.TxnEvents[submitted]; ok {
		return id
	}
	return submitted
}

// startTxn serialises the requests of one client transaction in this
// process. Nothing is looked up first: the roomserver records the id with
// the event it accepts, before checking it, and answers a later request of
// the same transaction with the first one's event (TxnEvents), also after
// a restart or when the sender could no longer send it.
func (rt *Routes) startTxn(ctx context.Context, t rsapi.TransactionID) (unlock func(), err error) {
	return rt.txnMu.Lock(ctx, t.UserID+"\x00"+t.DeviceID+"\x00"+t.Scope+"\x00"+t.TransactionID)
}

// checkThreadRoot refuses a thread started off an event that itself relates
// to another: 400 M_UNKNOWN ("Validation of m.thread relationships"; the
// spec has no errcode for it). A root this server does not have is left to
// the clients, as the spec asks nothing there.
func (rt *Routes) checkThreadRoot(ctx context.Context, roomID matrix.RoomID, content map[string]json.RawMessage) error {
	var rel struct {
		RelType string `json:"rel_type"`
		EventID string `json:"event_id"`
	}
	if raw, ok := content["m.relates_to"]; !ok || json.Unmarshal(raw, &rel) != nil || rel.RelType != "m.thread" || rel.EventID == "" {
		return nil
	}
	found, err := rt.rs.QueryEvents(ctx, rsapi.QueryEventsRequest{RoomID: string(roomID), EventIDs: []string{rel.EventID}})
	if err != nil {
		return err
	}
	for _, raw := range found.Events {
		var root struct {
			Content struct {
				RelatesTo json.RawMessage `json:"m.relates_to"`
			} `json:"content"`
		}
		if json.Unmarshal(raw, &root) == nil && len(root.Content.RelatesTo) > 0 && string(root.Content.RelatesTo) != "null" {
			return apierr.New(apierr.CodeUnknown, "event %s relates to another event and cannot be a thread root", rel.EventID)
		}
	}
	return nil
}

func randomID(n int) string {
	const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
	b := make([]byte, n)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}
