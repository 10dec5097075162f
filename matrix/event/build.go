package event

import (
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/axon-hs/axon/matrix"
	"github.com/axon-hs/axon/matrix/canonicaljson"
	"github.com/axon-hs/axon/matrix/signing"
)

// Proto is an event before hashing and signing.
type Proto struct {
	Type     string
	StateKey *string
	Sender   matrix.UserID
	// RoomID is empty for a room version 12 create event: its room ID is
	// derived from its own hash.
	RoomID matrix.RoomID
	// Content is marshalled with canonicaljson; nil means {}. It may be a
	// json.RawMessage.
	Content    any
	PrevEvents []matrix.EventID
	AuthEvents []matrix.EventID
	// RefHashes holds the reference hashes (sha256) of the events in
	// PrevEvents and AuthEvents. Only room versions 1 and 2 use them: their
	// references are [event ID, {"sha256": hash}] pairs (PDU schema
	// pdu_v1, event_hash.yaml: sha256 is required). An event missing here
	// is referenced with {}; see refs.
	RefHashes map[matrix.EventID][]byte
	Depth     int64
	// Redacts is placed at the top level (room versions 1 to 10) or in
	// content (11 and later), per version.
	Redacts matrix.EventID
	// Unsigned is attached after signing; nil for none.
	Unsigned any
	// OriginServerTS is in milliseconds; 0 means now.
	OriginServerTS int64
}

// Build hashes and signs p as origin with key and returns the event
// (server-server API, "Adding hashes and signatures to outgoing events"):
// the content hash goes into hashes.sha256, the redacted event is signed,
// and the signature is attached to the full event. In room versions 1 and 2
// it chooses a random event ID "$<random>:origin".
func (p Proto) Build(v *RoomVersion, origin matrix.ServerName, key signing.Key) (*PDU, error) {
	if v == nil {
		return nil, errors.New("build event: nil room version")
	}
	marshal := canonicaljson.Marshal
	if v.StrictCanonicalJSON {
		marshal = canonicaljson.MarshalStrict
	}
	content := []byte("{}")
	if p.Content != nil {
		var err error
		if content, err = marshal(p.Content); err != nil {
			return nil, fmt.Errorf("build %s event: content: %w", p.Type, err)
		}
		if content[0] != '{' {
			return nil, fmt.Errorf("build %s event: content is not an object", p.Type)
		}
	}
	if p.Redacts != "" && v.RedactsInContent {
		var err error
		if content, err = canonicaljson.Set(content, "redacts", canonicaljson.AppendString(nil, string(p.Redacts))); err != nil {
			return nil, fmt.Errorf("build %s event: %w", p.Type, err)
		}
	}
	ts := p.OriginServerTS
	if ts == 0 {
		ts = time.Now().UnixMilli()
	}
	ev := map[string]any{
		"type":             p.Type,
		"sender":           p.Sender,
		"content":          json.RawMessage(content),
		"depth":            p.Depth,
		"origin_server_ts": ts,
		"prev_events":      refs(p.PrevEvents, p.RefHashes, v),
		"auth_events":      refs(p.AuthEvents, p.RefHashes, v),
	}
	if p.StateKey != nil {
		ev["state_key"] = *p.StateKey
	}
	switch {
	case v.RoomIDFromCreate && p.Type == TypeCreate:
		if p.RoomID != "" {
			return nil, fmt.Errorf("build create event: room version %s derives the room ID; leave RoomID empty", v.ID)
		}
	default:
		ev["room_id"] = p.RoomID
	}
	if p.Redacts != "" && !v.RedactsInContent {
		ev["redacts"] = p.Redacts
	}
	if v.EventIDInJSON() {
		ev["event_id"] = "$" + randomString(18) + ":" + string(origin)
	}
	obj, err := marshal(ev)
	if err != nil {
		return nil, fmt.Errorf("build %s event: %w", p.Type, err)
	}

	hash, err := contentHashCanonical(obj)
	if err != nil {
		return nil, fmt.Errorf("build %s event: %w", p.Type, err)
	}
	hashes, _ := canonicaljson.Marshal(map[string]string{"sha256": signing.EncodeBase64(hash)})
	if obj, err = canonicaljson.Set(obj, "hashes", hashes); err != nil {
		return nil, fmt.Errorf("build %s event: %w", p.Type, err)
	}
	redacted, err := redactCanonical(obj, v)
	if err != nil {
		return nil, fmt.Errorf("build %s event: %w", p.Type, err)
	}
	sig, err := signing.SignCanonical(redacted, key)
	if err != nil {
		return nil, fmt.Errorf("build %s event: %w", p.Type, err)
	}
	if obj, err = signing.AddSignature(obj, string(origin), key.ID, sig); err != nil {
		return nil, fmt.Errorf("build %s event: %w", p.Type, err)
	}
	if p.Unsigned != nil {
		u, err := marshal(p.Unsigned)
		if err != nil {
			return nil, fmt.Errorf("build %s event: unsigned: %w", p.Type, err)
		}
		if obj, err = canonicaljson.Set(obj, "unsigned", u); err != nil {
			return nil, fmt.Errorf("build %s event: %w", p.Type, err)
		}
	}
	e, err := parse(obj, v, "")
	if err != nil {
		return nil, fmt.Errorf("build %s event: %w", p.Type, err)
	}
	return e, nil
}

// refs formats prev_events/auth_events for the version. Room versions 1
// and 2 pair each ID with {"sha256": its reference hash}. NOTSPEC: for an
// event whose hash the caller did not supply, an empty object is sent, as
// Synapse does for events it does not have (no server checks these hashes);
// the schema requires sha256.
func refs(ids []matrix.EventID, hashes map[matrix.EventID][]byte, v *RoomVersion) any {
	if v.EventIDInJSON() {
		out := make([][2]any, len(ids))
		for i, id := range ids {
			var h any = struct{}{}
			if sum, ok := hashes[id]; ok {
				h = map[string]string{"sha256": signing.EncodeBase64(sum)}
			}
			out[i] = [2]any{id, h}
		}
		return out
	}
	if ids == nil {
		return []matrix.EventID{}
	}
	return ids
}

const idAlphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"

func randomString(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+)
	for i := range b {
		b[i] = idAlphabet[int(b[i])%len(idAlphabet)]
	}
	return string(b)
}

// StateKeyTuple identifies a piece of room state.
type StateKeyTuple struct {
	Type     string
	StateKey string
}

// AuthEventsNeeded returns the state that p's auth_events must reference
// (server-server API, "Auth events selection"): the create event (except in
// room version 12, where the room ID implies it), the power levels, the
// sender's membership and, for m.room.member, the target's membership, the
// join rules for join/invite/knock, the third-party invite for an invite
// with content.third_party_invite.signed.token, and the authorising user's
// membership for a restricted join. A create event needs nothing.
//
// Content that cannot be marshalled selects what an empty content would;
// Build reports the marshalling error.
func AuthEventsNeeded(p Proto, v *RoomVersion) []StateKeyTuple {
	var content []byte
	if p.Content != nil {
		content, _ = json.Marshal(p.Content)
	}
	return authEventsNeeded(v, p.Type, p.StateKey, p.Sender, content)
}

// AuthEventsNeededFor is AuthEventsNeeded for a received event, which the
// auth rules compare with its auth_events (rule "Considering the event's
// auth_events").
func AuthEventsNeededFor(e *PDU) []StateKeyTuple {
	return authEventsNeeded(e.v, e.typ, e.stateKey, e.sender, e.content)
}

func authEventsNeeded(v *RoomVersion, typ string, stateKey *string, sender matrix.UserID, content []byte) []StateKeyTuple {
	if typ == TypeCreate {
		return nil
	}
	var out []StateKeyTuple
	add := func(t StateKeyTuple) {
		for _, o := range out {
			if o == t {
				return
			}
		}
		out = append(out, t)
	}
	if v.CreateInAuthEvents {
		add(StateKeyTuple{TypeCreate, ""})
	}
	add(StateKeyTuple{TypePowerLevels, ""})
	add(StateKeyTuple{TypeMember, string(sender)})
	if typ != TypeMember || stateKey == nil {
		return out
	}
	add(StateKeyTuple{TypeMember, *stateKey})
	var c struct {
		Membership       string `json:"membership"`
		ThirdPartyInvite *struct {
			Signed struct {
				Token *string `json:"token"`
			} `json:"signed"`
		} `json:"third_party_invite"`
		JoinAuthorisedVia *string `json:"join_authorised_via_users_server"`
	}
	// Content of the wrong shape selects only what it can: the auth rules
	// reject it later with a precise reason.
	_ = json.Unmarshal(content, &c)
	switch c.Membership {
	case "join", "invite", "knock":
		add(StateKeyTuple{TypeJoinRules, ""})
	}
	if c.Membership == "invite" && c.ThirdPartyInvite != nil && c.ThirdPartyInvite.Signed.Token != nil {
		add(StateKeyTuple{TypeThirdPartyInvite, *c.ThirdPartyInvite.Signed.Token})
	}
	if c.Membership == "join" && v.Restricted && c.JoinAuthorisedVia != nil {
		add(StateKeyTuple{TypeMember, *c.JoinAuthorisedVia})
	}
	return out
}
