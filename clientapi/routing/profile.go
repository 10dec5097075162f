package routing

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strings"

	"github.com/axon-hs/axon/internal/apierr"
	"github.com/axon-hs/axon/internal/httputil"
	"github.com/axon-hs/axon/matrix"
	"github.com/axon-hs/axon/matrix/event"
	rsapi "github.com/axon-hs/axon/roomserver/api"
	userapi "github.com/axon-hs/axon/userapi/api"
)

func (rt *Routes) registerProfile(mux *http.ServeMux) {
	mux.HandleFunc("GET "+v3+"/profile/{userId}", rt.a.H(rt.getProfile))
	mux.HandleFunc("GET "+v3+"/profile/{userId}/{keyName}", rt.a.H(rt.getProfileField))
	mux.HandleFunc("PUT "+v3+"/profile/{userId}/{keyName}", rt.authed(rt.putProfileField))
	mux.HandleFunc("DELETE "+v3+"/profile/{userId}/{keyName}", rt.authed(rt.deleteProfileField))
}

// profileKey is the spec's grammar of profile field names.
var profileKey = regexp.MustCompile(`^(avatar_url|displayname|m\.tz|[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+)$`)

// settableProfileFields are the fields users may change here, as the
// m.profile_fields capability advertises: other (extended) fields are not
// stored by this server, so they are refused rather than half kept.
var settableProfileFields = []string{"displayname", "avatar_url"}

// maxProfileValue bounds one field's value; the spec bounds the whole
// profile at 64 KiB, which two fields of this size stay far below.
const maxProfileValue = 1024

// profileUser parses the {userId} path value.
func profileUser(r *http.Request) (matrix.UserID, error) {
	uid, err := matrix.ParseUserID(r.PathValue("userId"))
	if err != nil {
		return "", apierr.InvalidParam("invalid user id: %v", err)
	}
	return uid, nil
}

// profileFields is a profile as the spec's JSON object, unset fields omitted.
func profileFields(p userapi.QueryProfileResponse) map[string]any {
	out := map[string]any{}
	if p.DisplayName != "" {
		out["displayname"] = p.DisplayName
	}
	if p.AvatarURL != "" {
		out["avatar_url"] = p.AvatarURL
	}
	return out
}

// lookupProfile queries a local profile; remote users are not found until
// federation queries exist (the spec's 404 covers "does not exist").
func (rt *Routes) lookupProfile(r *http.Request, uid matrix.UserID) (userapi.QueryProfileResponse, error) {
	if uid.Server() != rt.cfg.ServerName {
		return userapi.QueryProfileResponse{}, apierr.NotFound("profile not found")
	}
	p, err := rt.users.QueryProfile(r.Context(), userapi.QueryProfileRequest{UserID: string(uid)})
	if e, ok := apierr.As(err); ok && e.Code == apierr.CodeNotFound {
		return p, apierr.NotFound("profile not found")
	}
	return p, err
}

func (rt *Routes) getProfile(w http.ResponseWriter, r *http.Request) error {
	uid, err := profileUser(r)
	if err != nil {
		return err
	}
	p, err := rt.lookupProfile(r, uid)
	if err != nil {
		return err
	}
	return httputil.JSON(w, profileFields(p))
}

func (rt *Routes) getProfileField(w http.ResponseWriter, r *http.Request) error {
	uid, err := profileUser(r)
	if err != nil {
		return err
	}
	key := r.PathValue("keyName")
	if !profileKey.MatchString(key) {
		return apierr.InvalidParam("invalid profile key %q", key)
	}
	p, err := rt.lookupProfile(r, uid)
	if err != nil {
		return err
	}
	v, ok := profileFields(p)[key]
	if !ok {
		return apierr.NotFound("no profile field %q", key)
	}
	return httputil.JSON(w, map[string]any{key: v})
}

// checkProfileWrite validates the path of a profile change by dev.
func (rt *Routes) checkProfileWrite(r *http.Request, dev userapi.Device) (string, error) {
	uid, err := profileUser(r)
	if err != nil {
		return "", err
	}
	key := r.PathValue("keyName")
	if len(key) > 255 {
		return "", apierr.New("M_KEY_TOO_LARGE", "profile key longer than 255 bytes")
	}
	if !profileKey.MatchString(key) {
		return "", apierr.InvalidParam("invalid profile key %q", key)
	}
	if string(uid) != dev.UserID {
		return "", apierr.Forbidden("cannot change another user's profile")
	}
	if key != "displayname" && key != "avatar_url" {
		return "", apierr.Forbidden("profile field %q is not supported by this server", key)
	}
	return key, nil
}

// putProfileField is PUT /profile/{userId}/{keyName}.
func (rt *Routes) putProfileField(w http.ResponseWriter, r *http.Request, dev userapi.Device) error {
	var body map[string]json.RawMessage
	if err := httputil.DecodeJSON(r, &body); err != nil {
		return err
	}
	key, err := rt.checkProfileWrite(r, dev)
	if err != nil {
		return err
	}
	raw, ok := body[key]
	if !ok {
		return apierr.New(apierr.CodeMissingParam, "missing %q in the request body", key)
	}
	var v string
	if err := json.Unmarshal(raw, &v); err != nil {
		return apierr.BadJSON("%s must be a string", key)
	}
	if len(v) > maxProfileValue {
		return apierr.New("M_PROFILE_TOO_LARGE", "%s longer than %d bytes", key, maxProfileValue)
	}
	if key == "avatar_url" && v != "" && !strings.HasPrefix(v, "mxc://") {
		return apierr.InvalidParam("avatar_url must be an mxc:// URI")
	}
	return rt.setProfileField(w, r, dev, key, v)
}

// deleteProfileField is DELETE /profile/{userId}/{keyName}: the field is
// cleared; an absent field is no error.
func (rt *Routes) deleteProfileField(w http.ResponseWriter, r *http.Request, dev userapi.Device) error {
	key, err := rt.checkProfileWrite(r, dev)
	if err != nil {
		return err
	}
	return rt.setProfileField(w, r, dev, key, "")
}

func (rt *Routes) setProfileField(w http.ResponseWriter, r *http.Request, dev userapi.Device, key, v string) error {
	req := userapi.SetProfileRequest{UserID: dev.UserID}
	if key == "displayname" {
		req.DisplayName = &v
	} else {
		req.AvatarURL = &v
	}
	res, err := rt.users.SetProfile(r.Context(), req)
	if err != nil {
		return err
	}
	if res.Changed {
		if err := rt.updateMemberships(r.Context(), dev.UserID, res.Profile); err != nil {
			return err
		}
	}
	return httputil.JSON(w, struct{}{})
}

// updateMemberships sends, in every room the user has joined, a new
// m.room.member event carrying the changed profile, as the spec asks of a
// profile change. The content of the current member event is kept except
// for displayname and avatar_url.
func (rt *Routes) updateMemberships(ctx context.Context, userID string, p userapi.QueryProfileResponse) error {
	// The profile is saved already: every room gets the change even if the
	// client leaves meanwhile (each waits its turn in its room).
	ctx = context.WithoutCancel(ctx)
	rooms, err := rt.joinedRooms(ctx, userID)
	if err != nil {
		return err
	}
	for _, roomID := range rooms {
		if err := rt.updateMembership(ctx, roomID, userID, p); err != nil {
			// One room refusing (e.g. power levels) must not stop the others.
			rt.log.WarnContext(ctx, "profile change not sent to room", "room_id", roomID, "user_id", userID, "err", err)
		}
	}
	return nil
}

func (rt *Routes) updateMembership(ctx context.Context, roomID matrix.RoomID, userID string, p userapi.QueryProfileResponse) error {
	cur, err := rt.rs.QueryCurrentState(ctx, rsapi.QueryCurrentStateRequest{
		RoomID: string(roomID), Tuples: []rsapi.StateKeyTuple{{Type: event.TypeMember, StateKey: userID}}})
	if err != nil {
		return err
	}
	if len(cur.StateEvents) != 1 {
		return nil
	}
	var ev struct {
		Content map[string]json.RawMessage `json:"content"`
	}
	if err := json.Unmarshal(cur.StateEvents[0], &ev); err != nil {
		return fmt.Errorf("parse member event of %s in %s: %w", userID, roomID, err)
	}
	var membership string
	_ = json.Unmarshal(ev.Content["membership"], &membership)
	if membership != "join" {
		return nil
	}
	content := ev.Content
	delete(content, "displayname")
	delete(content, "avatar_url")
	if p.DisplayName != "" {
		content["displayname"], _ = json.Marshal(p.DisplayName)
	}
	if p.AvatarURL != "" {
		content["avatar_url"], _ = json.Marshal(p.AvatarURL)
	}
	stateKey := userID
	_, err = rt.sendEvent(ctx, event.Proto{Type: event.TypeMember, StateKey: &stateKey,
		Sender: matrix.UserID(userID), RoomID: roomID, Content: content})
	return err
}

// joinedRooms lists the rooms userID has joined.
func (rt *Routes) joinedRooms(ctx context.Context, userID string) ([]matrix.RoomID, error) {
	res, err := rt.rs.QueryRoomsForUser(ctx, rsapi.QueryRoomsForUserRequest{UserID: userID, Membership: "join"})
	if err != nil {
		return nil, fmt.Errorf("joined rooms of %s: %w", userID, err)
	}
	out := make([]matrix.RoomID, 0, len(res.Rooms))
	for _, r := range res.Rooms {
		out = append(out, matrix.RoomID(r.RoomID))
	}
	return out, nil
}
