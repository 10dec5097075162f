package internal

import (
	"testing"

	"github.com/axon-hs/axon/internal/sqlutil"
	"github.com/axon-hs/axon/internal/sqlutil/storagetest"
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
		log.fail.Store(true)
		m3 := h.message(alice, "three")
		if err := sendWith(m3, txn("send:"+string(h.roomID), "t5")); err == nil {
			t.Fatal("the batch committed though publishing failed")
		}
		log.fail.Store(false)
		if got := lookup(txn("send:"+string(h.roomID), "t5")); got != "" {
			t.Errorf("a rolled-back event recorded t5 = %q", got)
		}
	})
}
