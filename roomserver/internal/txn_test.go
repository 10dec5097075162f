package internal

import (
	"testing"

	"github.com/axon-hs/axon/internal/sqlutil"
	"github.com/axon-hs/axon/internal/sqlutil/storagetest"
	"github.com/axon-hs/axon/matrix"
	"github.com/axon-hs/axon/matrix/event"
	"github.com/axon-hs/axon/roomserver/api"
)

// TestTransactionRecordedWithEvent: a client transaction id is recorded in
// the transaction that accepts its event, under its scope; a refused event,
// an input without a scope and a rolled-back batch record nothing; a
// redelivered event keeps the first record.
func TestTransactionRecordedWithEvent(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, db *sqlutil.DB) {
		r, log := newTestRoomserver(t, db)
		h := newTestRoom(t, r, 7)
		alice, mallory := "@alice:"+string(testOrigin), "@mallory:"+string(testOrigin)
		txn := func(scope, id string) api.TransactionID {
			return api.TransactionID{UserID: alice, DeviceID: "DEV", Scope: scope, TransactionID: id}
		}
		lookup := func(tx api.TransactionID) string {
			t.Helper()
			res, err := r.QueryTransaction(t.Context(), api.QueryTransactionRequest{Txn: tx})
			if err != nil {
				t.Fatalf("QueryTransaction(%+v) = %v", tx, err)
			}
			return res.EventID
		}
		sendWith := func(e *event.PDU, tx api.TransactionID) error {
			req := h.request(e)
			req.Events[0].TxnID = &tx
			return h.handle(req)
		}

		m1 := h.message(alice, "one")
		if err := sendWith(m1, txn("send:"+string(h.roomID), "t1")); err != nil {
			t.Fatal(err)
		}
		if got := lookup(txn("send:"+string(h.roomID), "t1")); got != string(m1.EventID()) {
			t.Errorf("t1 = %q, want %s", got, m1.EventID())
		}
		// Another scope, device or id is another transaction.
		for _, other := range []api.TransactionID{txn("redact:"+string(h.roomID), "t1"), txn("send:"+string(h.roomID), "t2"),
			{UserID: alice, DeviceID: "OTHER", Scope: "send:" + string(h.roomID), TransactionID: "t1"}} {
			if got := lookup(other); got != "" {
				t.Errorf("%+v = %q, want none", other, got)
			}
		}
		// The same event redelivered with another id records nothing new.
		if err := sendWith(m1, txn("send:"+string(h.roomID), "t9")); err != nil {
			t.Fatal(err)
		}
		if got := lookup(txn("send:"+string(h.roomID), "t9")); got != "" {
			t.Errorf("a redelivered event recorded t9 = %q", got)
		}

		// Refused (mallory is not in the room): nothing recorded.
		bad := h.message(mallory, "let me in")
		if err := sendWith(bad, txn("send:"+string(h.roomID), "t3")); err == nil {
			t.Fatal("a message from a non-member was accepted")
		}
		if got := lookup(txn("send:"+string(h.roomID), "t3")); got != "" {
			t.Errorf("a refused event recorded t3 = %q", got)
		}
		// No scope: not recorded (a caller that keeps no transactions).
		m2 := h.message(alice, "two")
		if err := sendWith(m2, txn("", "t4")); err != nil {
			t.Fatal(err)
		}
		if _, err := r.QueryTransaction(t.Context(), api.QueryTransactionRequest{Txn: txn("", "t4")}); err == nil {
			t.Error("QueryTransaction without a scope answered")
		}
		// Rolled back (publishing fails before the commit): nothing recorded.
		// (A state event: a pipelined message commits before it is
		// published, see TestOutputAfterFailedPublish.)
		log.fail.Store(true)
		m3 := h.build(event.Proto{Type: "m.room.topic", StateKey: new(""), Sender: matrix.UserID(alice),
			Content: map[string]any{"topic": "three"}})
		if err := sendWith(m3, txn("send:"+string(h.roomID), "t5")); err == nil {
			t.Fatal("the batch committed though publishing failed")
		}
		log.fail.Store(false)
		if got := lookup(txn("send:"+string(h.roomID), "t5")); got != "" {
			t.Errorf("a rolled-back event recorded t5 = %q", got)
		}
	})
}

// TestTransactionRetriedBeforeStored: a second event with a transaction id
// already recorded (a retry built before the first event was stored, in
// the same batch or a later one) is not stored, and the answer names the
// recorded event; other requests of the batch go on.
func TestTransactionRetriedBeforeStored(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, db *sqlutil.DB) {
		r, _ := newTestRoomserver(t, db)
		h := newTestRoom(t, r, 11)
		alice := "@alice:" + string(testOrigin)
		tx := api.TransactionID{UserID: alice, DeviceID: "DEV", Scope: "send:" + string(h.roomID), TransactionID: "t1"}
		with := func(e *event.PDU) api.InputRoomEventsRequest {
			req := h.request(e)
			req.Events[0].TxnID = &tx
			return req
		}
		first, retry := h.message(alice, "one"), h.message(alice, "one, again")
		other := h.message(alice, "unrelated")
		res, err := h.handleResults(with(first), with(retry), h.request(other))
		if err != nil {
			t.Fatal(err)
		}
		if len(res[0].txnEvents) != 0 || res[1].txnEvents[string(retry.EventID())] != string(first.EventID()) || len(res[2].txnEvents) != 0 {
			t.Fatalf("answers %+v, want the retry mapped to %s", res, first.EventID())
		}
		stored, err := r.st.Events.SelectByIDs(t.Context(), r.st.DB.Reader(), []string{string(first.EventID()), string(retry.EventID()), string(other.EventID())})
		if err != nil {
			t.Fatal(err)
		}
		ids := map[string]bool{}
		for _, e := range stored {
			ids[e.EventID] = true
		}
		if !ids[string(first.EventID())] || ids[string(retry.EventID())] || !ids[string(other.EventID())] {
			t.Fatalf("stored %v: want the first and the unrelated event, not the retry", ids)
		}
		// In a later batch too.
		late := h.message(alice, "one, once more")
		if res, err = h.handleResults(with(late)); err != nil || res[0].txnEvents[string(late.EventID())] != string(first.EventID()) {
			t.Fatalf("late retry: %+v, %v", res, err)
		}
		if got, _ := r.QueryTransaction(t.Context(), api.QueryTransactionRequest{Txn: tx}); got.EventID != string(first.EventID()) {
			t.Fatalf("QueryTransaction = %q, want %s", got.EventID, first.EventID())
		}
	})
}

// TestTransactionRetriedAfterLosingAccess: a retry whose sender may no
// longer send (here: left the room) still gets the event its first request
// made, not a refusal.
func TestTransactionRetriedAfterLosingAccess(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, db *sqlutil.DB) {
		r, _ := newTestRoomserver(t, db)
		h := newTestRoom(t, r, 13)
		bob := "@bob:" + string(testOrigin)
		if err := h.send(h.build(event.Proto{Type: event.TypeMember, Sender: matrix.UserID(bob), StateKey: new(bob),
			Content: map[string]any{"membership": "join"}})); err != nil {
			t.Fatal(err)
		}
		tx := api.TransactionID{UserID: bob, DeviceID: "DEV", Scope: "send:" + string(h.roomID), TransactionID: "t1"}
		first := h.message(bob, "before leaving")
		req := h.request(first)
		req.Events[0].TxnID = &tx
		if err := h.handle(req); err != nil {
			t.Fatal(err)
		}
		if err := h.send(h.build(event.Proto{Type: event.TypeMember, Sender: matrix.UserID(bob), StateKey: new(bob),
			Content: map[string]any{"membership": "leave"}})); err != nil {
			t.Fatal(err)
		}
		retry := h.message(bob, "before leaving")
		req = h.request(retry)
		req.Events[0].TxnID = &tx
		res, err := h.handleResults(req)
		if err != nil {
			t.Fatalf("retry after leaving: %v, want the first event", err)
		}
		if res[0].txnEvents[string(retry.EventID())] != string(first.EventID()) {
			t.Fatalf("retry answered %+v, want it mapped to %s", res[0], first.EventID())
		}
		// A new transaction of bob's is refused and records nothing.
		other := api.TransactionID{UserID: bob, DeviceID: "DEV", Scope: tx.Scope, TransactionID: "t2"}
		req = h.request(h.message(bob, "after leaving"))
		req.Events[0].TxnID = &other
		if err := h.handle(req); err == nil {
			t.Fatal("a message after leaving was accepted")
		}
		if got, _ := r.QueryTransaction(t.Context(), api.QueryTransactionRequest{Txn: other}); got.EventID != "" {
			t.Fatalf("a refused event left its transaction recorded: %q", got.EventID)
		}
	})
}
