package e2e

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

func TestFirstPathMonolith(t *testing.T) {
	onBothEngines(t, firstPath)
}

func TestFirstPathPolylith(t *testing.T) {
	firstPath(t, startPolylith(t).server)
}

// firstPath registers, logs in, creates a room, sends messages and sees
// them in /sync, initial and incremental, through mautrix-go.
func firstPath(t *testing.T, s *server) {
	ctx := t.Context()
	cli, err := mautrix.NewClient(s.URL, "", "")
	if err != nil {
		t.Fatal(err)
	}
	versions, err := cli.Versions(ctx)
	if err != nil || len(versions.Versions) == 0 {
		t.Fatalf("Versions = %+v, %v", versions, err)
	}

	// The spec's user-interactive auth: a first request without auth gets 401 with flows and a session.
	status, body, _ := do(t, http.MethodPost, s.URL+"/_matrix/client/v3/register", "", []byte(`{"username":"alice","password":"wonderland"}`))
	var uia struct {
		Session string `json:"session"`
		Flows   []struct {
			Stages []string `json:"stages"`
		} `json:"flows"`
	}
	if err := json.Unmarshal(body, &uia); status != http.StatusUnauthorized || err != nil || uia.Session == "" ||
		len(uia.Flows) == 0 || uia.Flows[0].Stages[0] != "m.login.dummy" {
		t.Fatalf("register without auth = %d %s, want 401 with a session and the dummy flow", status, body)
	}

	avail, err := cli.RegisterAvailable(ctx, "alice")
	if err != nil || !avail.Available {
		t.Fatalf("RegisterAvailable(alice) = %+v, %v", avail, err)
	}
	reg, err := cli.RegisterDummy(ctx, &mautrix.ReqRegister[any]{Username: "alice", Password: "wonderland"})
	if err != nil {
		t.Fatalf("RegisterDummy = %v", err)
	}
	wantUser := id.UserID("@alice:" + s.ServerName)
	if reg.UserID != wantUser || reg.AccessToken == "" || reg.DeviceID == "" {
		t.Fatalf("register = %+v", reg)
	}
	if _, err := cli.RegisterAvailable(ctx, "alice"); !isErrcode(err, "M_USER_IN_USE") {
		t.Fatalf("RegisterAvailable(alice) after register = %v, want M_USER_IN_USE", err)
	}
	if _, err := cli.RegisterDummy(ctx, &mautrix.ReqRegister[any]{Username: "alice", Password: "x"}); !isErrcode(err, "M_USER_IN_USE") {
		t.Fatalf("second register = %v, want M_USER_IN_USE", err)
	}

	flows, err := cli.GetLoginFlows(ctx)
	if err != nil || !flows.HasFlow(mautrix.AuthTypePassword) {
		t.Fatalf("GetLoginFlows = %+v, %v", flows, err)
	}
	if _, err := cli.Login(ctx, &mautrix.ReqLogin{Type: mautrix.AuthTypePassword,
		Identifier: mautrix.UserIdentifier{Type: mautrix.IdentifierTypeUser, User: "alice"}, Password: "wrong"}); !isErrcode(err, "M_FORBIDDEN") {
		t.Fatalf("login with a wrong password = %v, want M_FORBIDDEN", err)
	}
	login, err := cli.Login(ctx, &mautrix.ReqLogin{Type: mautrix.AuthTypePassword,
		Identifier: mautrix.UserIdentifier{Type: mautrix.IdentifierTypeUser, User: "alice"}, Password: "wonderland", StoreCredentials: true})
	if err != nil || login.UserID != wantUser {
		t.Fatalf("Login = %+v, %v", login, err)
	}
	who, err := cli.Whoami(ctx)
	if err != nil || who.UserID != wantUser || who.DeviceID != login.DeviceID {
		t.Fatalf("Whoami = %+v, %v", who, err)
	}

	room, err := cli.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "private_chat", Name: "First room", Topic: "the first path"})
	if err != nil {
		t.Fatalf("CreateRoom = %v", err)
	}
	if !strings.HasPrefix(string(room.RoomID), "!") {
		t.Fatalf("room id %q", room.RoomID)
	}

	// Sync is eventually consistent with createRoom: the syncapi consumes the
	// roomserver's output on its own. Sync until the room's state is complete.
	state := map[string]*event.Event{}
	wantState := []string{"m.room.create|", "m.room.member|" + string(wantUser), "m.room.power_levels|",
		"m.room.join_rules|", "m.room.history_visibility|", "m.room.name|", "m.room.topic|"}
	var since string
	waitFor(t, 15*time.Second, func() error {
		resp, err := cli.SyncRequest(ctx, 1000, since, "", false, "")
		if err != nil {
			return err
		}
		since = resp.NextBatch
		if joined, ok := resp.Rooms.Join[room.RoomID]; ok {
			for _, e := range append(joined.State.Events, joined.Timeline.Events...) {
				if e.StateKey != nil {
					state[e.Type.Type+"|"+*e.StateKey] = e
				}
			}
		}
		for _, k := range wantState {
			if state[k] == nil {
				return fmt.Errorf("sync lacks state %s", k)
			}
		}
		return nil
	})
	if e := state["m.room.name|"]; e.Content.Raw["name"] != "First room" {
		t.Errorf("room name = %v", e.Content.Raw)
	}
	if e := state["m.room.create|"]; e.Content.Raw["room_version"] != "12" {
		t.Errorf("room version = %v, want 12", e.Content.Raw["room_version"])
	}
	// A fresh initial sync shows the whole room at once.
	initial, err := cli.SyncRequest(ctx, 0, "", "", false, "")
	if err != nil {
		t.Fatalf("initial sync = %v", err)
	}
	joined, ok := initial.Rooms.Join[room.RoomID]
	if !ok {
		t.Fatalf("initial sync has no joined room %s: %+v", room.RoomID, initial.Rooms)
	}
	n := 0
	for _, e := range append(joined.State.Events, joined.Timeline.Events...) {
		if e.StateKey != nil {
			n++
		}
	}
	if n < len(wantState)+1 { // + guest_access
		t.Errorf("initial sync has %d state events, want at least %d", n, len(wantState)+1)
	}

	// Incremental sync: a long poll woken by a message sent meanwhile.
	type result struct {
		resp *mautrix.RespSync
		err  error
	}
	got := make(chan result, 1)
	go func() {
		resp, err := cli.SyncRequest(ctx, 30000, initial.NextBatch, "", false, "")
		got <- result{resp, err}
	}()
	time.Sleep(100 * time.Millisecond) // let the poll start; the test is correct either way
	sent, err := cli.SendText(ctx, room.RoomID, "hello, world")
	if err != nil {
		t.Fatalf("SendText = %v", err)
	}
	var r result
	select {
	case r = <-got:
	case <-time.After(25 * time.Second):
		t.Fatal("long poll was not woken by the new message")
	}
	if r.err != nil {
		t.Fatalf("incremental sync = %v", r.err)
	}
	msgs := messages(r.resp, room.RoomID)
	if len(msgs) != 1 || msgs[0].ID != sent.EventID || msgs[0].Content.Raw["body"] != "hello, world" || msgs[0].Sender != wantUser {
		t.Fatalf("incremental sync messages = %+v, want the one sent (%s)", msgs, sent.EventID)
	}
	if txn := msgs[0].Unsigned.TransactionID; txn == "" {
		t.Errorf("the sender's own message lacks unsigned.transaction_id")
	}

	// Transaction ids: the same txn id returns the same event, and only one event is sent.
	txn := cli.TxnID()
	a, err := cli.SendMessageEvent(ctx, room.RoomID, event.EventMessage, map[string]string{"msgtype": "m.text", "body": "once"}, mautrix.ReqSendEvent{TransactionID: txn})
	if err != nil {
		t.Fatal(err)
	}
	b, err := cli.SendMessageEvent(ctx, room.RoomID, event.EventMessage, map[string]string{"msgtype": "m.text", "body": "once"}, mautrix.ReqSendEvent{TransactionID: txn})
	if err != nil || a.EventID != b.EventID {
		t.Fatalf("retried txn: %v / %v, %v", a.EventID, b.EventID, err)
	}
	var onces int
	since = r.resp.NextBatch
	waitFor(t, 10*time.Second, func() error {
		resp, err := cli.SyncRequest(ctx, 1000, since, "", false, "")
		if err != nil {
			return err
		}
		since = resp.NextBatch
		for _, m := range messages(resp, room.RoomID) {
			if m.Content.Raw["body"] == "once" {
				onces++
			}
		}
		if onces == 0 {
			return fmt.Errorf("txn message not synced yet")
		}
		return nil
	})
	if onces != 1 {
		t.Fatalf("the retried transaction produced %d events, want 1", onces)
	}

	// Shared-secret registration, then logout invalidates the token.
	admin := registerShared(t, s, "bob", "builder", true)
	bob, _ := mautrix.NewClient(s.URL, id.UserID(admin.UserID), admin.AccessToken)
	if w, err := bob.Whoami(ctx); err != nil || string(w.UserID) != admin.UserID {
		t.Fatalf("bob whoami = %+v, %v", w, err)
	}
	if _, err := cli.Logout(ctx); err != nil {
		t.Fatalf("Logout = %v", err)
	}
	if _, err := cli.Whoami(ctx); !isErrcode(err, "M_UNKNOWN_TOKEN") {
		t.Fatalf("whoami after logout = %v, want M_UNKNOWN_TOKEN", err)
	}
}

func messages(resp *mautrix.RespSync, roomID id.RoomID) []*event.Event {
	var out []*event.Event
	if jr, ok := resp.Rooms.Join[roomID]; ok {
		for _, e := range jr.Timeline.Events {
			if e.Type == event.EventMessage {
				out = append(out, e)
			}
		}
	}
	return out
}

func isErrcode(err error, code string) bool {
	var he mautrix.HTTPError
	if !asHTTPError(err, &he) || he.RespError == nil {
		return false
	}
	return he.RespError.ErrCode == code
}

type sharedReg struct {
	UserID      string `json:"user_id"`
	AccessToken string `json:"access_token"`
	DeviceID    string `json:"device_id"`
}

// registerShared uses Synapse's shared-secret registration API.
func registerShared(t testing.TB, s *server, user, password string, admin bool) sharedReg {
	t.Helper()
	status, body, _ := do(t, http.MethodGet, s.URL+"/_synapse/admin/v1/register", "", nil)
	var n struct {
		Nonce string `json:"nonce"`
	}
	if status != 200 || json.Unmarshal(body, &n) != nil || n.Nonce == "" {
		t.Fatalf("nonce: %d %s", status, body)
	}
	mac := hmac.New(sha1.New, []byte(s.Secret))
	adm := "notadmin"
	if admin {
		adm = "admin"
	}
	mac.Write([]byte(n.Nonce + "\x00" + user + "\x00" + password + "\x00" + adm))
	req, _ := json.Marshal(map[string]any{"nonce": n.Nonce, "username": user, "password": password, "admin": admin, "mac": hex.EncodeToString(mac.Sum(nil))})
	status, body, _ = do(t, http.MethodPost, s.URL+"/_synapse/admin/v1/register", "", req)
	var r sharedReg
	if status != 200 || json.Unmarshal(body, &r) != nil || r.AccessToken == "" {
		t.Fatalf("shared-secret register: %d %s", status, body)
	}
	// The nonce is single use.
	status, body, _ = do(t, http.MethodPost, s.URL+"/_synapse/admin/v1/register", "", req)
	if status != 400 {
		t.Fatalf("reused nonce: %d %s, want 400", status, body)
	}
	return r
}
