package routing

import (
	"encoding/json"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/axon-hs/axon/syncapi/storage"
	userapi "github.com/axon-hs/axon/userapi/api"
)

func TestClientEvent(t *testing.T) {
	const pdu = `{"type":"m.room.name","sender":"@a:x","room_id":"!r:x","state_key":"","content":{"name":"n"},
		"origin_server_ts":1000,"depth":4,"origin":"x","hashes":{"sha256":"h"},"signatures":{"x":{"ed25519:1":"s"}},
		"auth_events":["$a"],"prev_events":["$p"],"prev_state":[],
		"unsigned":{"age_ts":5,"age":1,"transaction_id":"forged","invite_room_state":[]}}`
	e := storage.Event{EventID: "$ev", Type: "m.room.name", JSON: []byte(pdu), ReplacesEventID: "$old",
		Txn: storage.TxnID{UserID: "@a:x", DeviceID: "D1", TxnID: "t1"}}
	now := time.UnixMilli(3000)
	tests := []struct {
		name         string
		dev          userapi.Device
		wantTxn      string
		prevContent  json.RawMessage
		wantUnsigned []string
	}{
		{name: "sending device", dev: userapi.Device{UserID: "@a:x", DeviceID: "D1"}, wantTxn: "t1",
			prevContent: json.RawMessage(`{"name":"old"}`), wantUnsigned: []string{"age", "invite_room_state", "prev_content", "replaces_state", "transaction_id"}},
		{name: "other device of the sender", dev: userapi.Device{UserID: "@a:x", DeviceID: "D2"},
			wantUnsigned: []string{"age", "invite_room_state", "replaces_state"}},
		{name: "other user same device id", dev: userapi.Device{UserID: "@b:x", DeviceID: "D1"},
			wantUnsigned: []string{"age", "invite_room_state", "replaces_state"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			raw, err := clientEvent(e, tc.dev, tc.prevContent, now)
			if err != nil {
				t.Fatal(err)
			}
			var got map[string]json.RawMessage
			if err := json.Unmarshal(raw, &got); err != nil {
				t.Fatal(err)
			}
			keys := slices.Sorted(maps.Keys(got))
			want := []string{"content", "event_id", "origin_server_ts", "sender", "state_key", "type", "unsigned"}
			if !slices.Equal(keys, want) {
				t.Fatalf("keys = %v, want %v", keys, want)
			}
			if string(got["event_id"]) != `"$ev"` {
				t.Fatalf("event_id = %s", got["event_id"])
			}
			var u map[string]json.RawMessage
			if err := json.Unmarshal(got["unsigned"], &u); err != nil {
				t.Fatal(err)
			}
			if k := slices.Sorted(maps.Keys(u)); !slices.Equal(k, tc.wantUnsigned) {
				t.Fatalf("unsigned keys = %v, want %v", k, tc.wantUnsigned)
			}
			if string(u["age"]) != "2000" {
				t.Fatalf("age = %s, want 2000", u["age"])
			}
			if tc.wantTxn != "" && string(u["transaction_id"]) != `"`+tc.wantTxn+`"` {
				t.Fatalf("transaction_id = %s, want %q", u["transaction_id"], tc.wantTxn)
			}
		})
	}
}

func TestClientEventRedactsKept(t *testing.T) {
	e := storage.Event{EventID: "$r", JSON: []byte(`{"type":"m.room.redaction","sender":"@a:x","redacts":"$t","content":{},"origin_server_ts":1}`)}
	raw, err := clientEvent(e, userapi.Device{}, nil, time.UnixMilli(1))
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]json.RawMessage
	if err := json.Unmarshal(raw, &got); err != nil || string(got["redacts"]) != `"$t"` {
		t.Fatalf("clientEvent = %s, %v; want top-level redacts kept", raw, err)
	}
}

func TestStrippedEvent(t *testing.T) {
	raw, err := strippedEvent([]byte(`{"type":"m.room.name","sender":"@a:x","state_key":"","content":{"name":"n"},"origin_server_ts":1,"hashes":{}}`))
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]json.RawMessage
	if err := json.Unmarshal(raw, &got); err != nil {
		t.Fatal(err)
	}
	if k := slices.Sorted(maps.Keys(got)); !slices.Equal(k, []string{"content", "sender", "state_key", "type"}) {
		t.Fatalf("stripped keys = %v", k)
	}
}
