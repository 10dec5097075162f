package internal

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/axon-hs/axon/internal/apierr"
	"github.com/axon-hs/axon/internal/eventlog"
	"github.com/axon-hs/axon/internal/sqlutil"
	"github.com/axon-hs/axon/matrix"
	"github.com/axon-hs/axon/matrix/canonicaljson"
	"github.com/axon-hs/axon/matrix/event"
	"github.com/axon-hs/axon/roomserver/api"
	"github.com/axon-hs/axon/roomserver/storage"
)

// rejection is an event the rules refuse: not stored, reported to the
// caller, never retried.
type rejection struct{ err *apierr.Error }

func (r rejection) Error() string { return r.err.Error() }

func reject(format string, args ...any) error { return rejection{apierr.Forbidden(format, args...)} }

// HandleInput processes room input messages, every one the log has ready,
// in one transaction: under load a commit per message was what bounded a
// room's input on PostgreSQL. The log delivers each room's messages in
// order and none of a room in two calls at once, so nothing else writes a
// room meanwhile. A transient failure returns an error, and the log hands
// the messages over again, one per call: nothing of the batch was stored,
// but for a pipelined batch whose publish failed after its commit (its
// messages are then announced when handed over again). An event already
// stored is not stored again (a message's output is published again:
// storedOutput), which makes redelivery harmless. Callers are answered
// only after the commit and the publish, and after the head cache has
// followed them (head.go).
func (r *Roomserver) HandleInput(ctx context.Context, msgs []eventlog.Msg[api.InputMessage]) error {
	units := make([][][]api.InputEvent, len(msgs))
	n := 0
	for i, m := range msgs {
		units[i] = unitsOf(m.Value.Request)
		n += len(units[i])
	}
	// Each unit is stored or refused on its own: with several in the
	// transaction a savepoint undoes a refused one. Alone, a refusal rolls
	// back the transaction.
	savepoints := n > 1
	redacting := mayRedact(msgs)
	if redacting {
		// A redaction rewrites a stored event: read past the cache, and
		// empty it whatever happens to the transaction.
		ctx = context.WithValue(ctx, authCacheOff{}, true)
		defer r.authEvs.clear()
	}
	var b batchOut
	var err error
	piped := false
	// The epoch of deferred commits (PostgreSQL) the batch is built in,
	// taken before anything cached is read for it: its writes fail, and
	// what it would cache is not, once a loss of commits ended the epoch.
	epoch := r.st.Deferred.Epoch()
	if r.st.DB.Dialect.Engine == sqlutil.Postgres && !redacting {
		b, piped, err = r.storePipelined(ctx, msgs, units, epoch)
	}
	if !piped && err == nil {
		err = r.st.InTx(ctx, func(tx *sql.Tx) error {
			if err := r.st.Deferred.Begin(ctx, tx, epoch); err != nil {
				return err
			}
			var err error
			if b, err = r.storeBatch(ctx, tx, nil, msgs, units, savepoints); err != nil {
				return err
			}
			// The outputs are published inside the transaction, after the
			// events they describe: if the commit then fails, the input is
			// redelivered and published again, which consumers ignore.
			// Published after the commit, a state event's or a redaction's
			// output (what it changed) would be lost in a crash: only a
			// message's can be rebuilt from its row (storedOutput).
			return r.publish(ctx, b.outs)
		})
	}
	var rej rejection
	switch {
	case err == nil:
		r.st.Deferred.Fenced(epoch, func() {
			r.heads.advance(b.moves)
			for _, m := range b.moves {
				if m.cached {
					r.headHits.Add(1)
				}
				r.st.Snapshots.Committed(m.snapshots)
				r.st.StateKeys.Committed(m.tuples)
				if !redacting {
					r.authEvs.put(m.authEvents)
				}
			}
		})
	case !errors.As(err, &rej):
		// Rolled back, or perhaps committed (a failed commit may have
		// reached the database): the heads are read again. A refusal
		// rolled back for certain and leaves them as they are.
		rooms := make([]string, len(msgs))
		for i, m := range msgs {
			rooms[i] = m.Value.Request.RoomID
		}
		r.heads.forget(rooms)
	}
	if errors.As(err, &rej) {
		// A lone unit, refused: nothing to store.
		r.reply(msgs[0].Value.ReplyTo, inputResult{err: rej.err})
		return nil
	}
	if errors.Is(err, sqlutil.ErrCommitsLost) {
		// Input handled before may be lost with its commits: this batch
		// must not be retried on top of that loss, but after it, in order.
		return eventlog.Rewind(err)
	}
	if err != nil {
		return err
	}
	for _, a := range b.answers {
		r.reply(a.to, a.inputResult)
	}
	return nil
}

// answer is what a request of an input batch is answered, once committed.
type answer struct {
	to string
	inputResult
}

// batchOut is what storing an input batch gives: the answers, the head
// moves for the caches, and the outputs to publish (before the commit, but
// for a pipelined batch: pipeline.go).
type batchOut struct {
	answers []answer
	moves   []headMove
	outs    []api.OutputEvent
}

// storeBatch stores the units of msgs in tx, or, with w (storePipelined),
// collects their writes in w: nothing is written then, so a refused unit
// needs no savepoint.
func (r *Roomserver) storeBatch(ctx context.Context, tx *sql.Tx, w *storage.Pipelined, msgs []eventlog.Msg[api.InputMessage], units [][][]api.InputEvent, savepoints bool) (batchOut, error) {
	var b batchOut
	written := map[string]bool{} // rooms whose head the batch may have moved
	for i, m := range msgs {
		req := m.Value.Request
		v, ok := event.Version(req.RoomVersion)
		if !ok {
			b.answers = append(b.answers, answer{m.Value.ReplyTo, inputResult{err: apierr.New(apierr.CodeUnsupportedRoomVer, "unsupported room version %q", req.RoomVersion)}})
			continue
		}
		var refused error
		var txnEvents map[string]string
		for _, evs := range units[i] {
			unit, moved, replaced, rej, err := r.storeUnit(ctx, tx, w, v, req.RoomID, evs, savepoints && w == nil, !written[req.RoomID], m.Redelivered)
			written[req.RoomID] = true
			if err != nil {
				return b, err
			}
			if rej != nil {
				r.logger.InfoContext(ctx, "event rejected", "room_id", req.RoomID, "atomic", req.Atomic, "err", rej.Msg)
				if !savepoints && w == nil {
					return b, rejection{rej}
				}
				refused = rej
				break // the request's later events are not tried
			}
			b.outs = append(b.outs, unit...)
			b.moves = append(b.moves, moved...)
			for k, v := range replaced {
				if txnEvents == nil {
					txnEvents = map[string]string{}
				}
				txnEvents[k] = v
			}
		}
		b.answers = append(b.answers, answer{m.Value.ReplyTo, inputResult{err: refused, txnEvents: txnEvents}})
	}
	return b, nil
}

// publish announces stored events on the output log.
func (r *Roomserver) publish(ctx context.Context, outs []api.OutputEvent) error {
	for _, out := range outs {
		if _, err := eventlog.Publish(ctx, r.log, api.OutputTopic, out.RoomID, out); err != nil {
			return fmt.Errorf("publish output event %s: %w", out.EventID, err)
		}
	}
	return nil
}

// unitsOf splits a request into what is stored or refused as a whole: each
// event, or all of them for an atomic request.
func unitsOf(req api.InputRoomEventsRequest) [][]api.InputEvent {
	if req.Atomic {
		return [][]api.InputEvent{req.Events}
	}
	units := make([][]api.InputEvent, len(req.Events))
	for i := range req.Events {
		units[i] = req.Events[i : i+1]
	}
	return units
}

// storeUnit stores the events of one unit in tx (or collects their writes
// in w) and returns their outputs
// and head moves, or the refusal of one of them. With savepoint the unit's
// writes are undone then; without, the caller rolls back, except for a
// unit of one event other than a create, refused before any write. fresh
// says no earlier unit of the transaction was in the room. redelivered
// says the log handed the input over before: the outputs of messages
// stored before are then published again (storedOutput).
func (r *Roomserver) storeUnit(ctx context.Context, tx *sql.Tx, w *storage.Pipelined, v *event.RoomVersion, roomID string, evs []api.InputEvent, savepoint, fresh, redelivered bool) ([]api.OutputEvent, []headMove, map[string]string, *apierr.Error, error) {
	// processEvent refuses an event before writing anything of it, but for
	// a create (the room row comes first): a unit of one other event needs
	// no savepoint (two statements per message on PostgreSQL).
	if savepoint && len(evs) == 1 {
		if typ, ok := inputType(evs[0]); ok && typ != event.TypeCreate {
			savepoint = false
		}
	}
	if savepoint {
		if _, err := tx.ExecContext(ctx, `SAVEPOINT axon_input`); err != nil {
			return nil, nil, nil, nil, fmt.Errorf("savepoint: %w", err)
		}
	}
	var outs []api.OutputEvent
	var moves []headMove
	var replaced map[string]string
	var rej rejection
	for i, in := range evs {
		out, move, err := r.processEvent(ctx, tx, w, v, roomID, in, fresh && i == 0)
		var dup txnRecorded
		if errors.As(err, &dup) {
			// Another event made this transaction: this one is not stored.
			if replaced == nil {
				replaced = map[string]string{}
			}
			replaced[dup.submitted] = dup.recorded
			continue
		}
		if errors.As(err, &rej) {
			break
		}
		if err != nil {
			return nil, nil, nil, nil, err
		}
		if move.roomID == "" {
			// Stored before: only a redelivery announces it again.
			if out != nil && redelivered {
				outs = append(outs, *out)
			}
			continue
		}
		if out != nil {
			outs, moves = append(outs, *out), append(moves, move)
		}
	}
	if savepoint {
		if rej.err != nil {
			if _, err := tx.ExecContext(ctx, `ROLLBACK TO SAVEPOINT axon_input`); err != nil {
				return nil, nil, nil, nil, fmt.Errorf("roll back to savepoint: %w", err)
			}
		}
		if _, err := tx.ExecContext(ctx, `RELEASE SAVEPOINT axon_input`); err != nil {
			return nil, nil, nil, nil, fmt.Errorf("release savepoint: %w", err)
		}
	}
	if rej.err != nil {
		return nil, nil, nil, rej.err, nil
	}
	return outs, moves, replaced, nil, nil
}

// txnRecorded says an event's client transaction id is recorded for
// another event (a retried request): the event is not stored.
type txnRecorded struct{ submitted, recorded string }

func (t txnRecorded) Error() string {
	return fmt.Sprintf("transaction of %s recorded for %s", t.submitted, t.recorded)
}

// inputType is the type of an input event as its JSON says (escapes
// decoded); false when the JSON does not say. Canonical JSON, what this
// server's own clients send, is read without decoding the whole event.
func inputType(in api.InputEvent) (string, bool) {
	if v, ok := canonicaljson.Lookup(in.Event, "type"); ok {
		if s, err := canonicaljson.Unquote(v); err == nil {
			return s, true
		}
	}
	var h struct {
		Type *string `json:"type"`
	}
	if json.Unmarshal(in.Event, &h) != nil || h.Type == nil {
		return "", false
	}
	return *h.Type, true
}

// processEvent checks and stores one event in tx and returns the output
// that announces it (nil when it was stored before) and how it moved the
// room's head.
//
// fresh says the transaction has not written the room yet: its head is then
// the committed one, which the head cache may hold.
//
// With w (storePipelined) tx is nil: the event must be a message event on
// the cached head, whose writes are collected in w (errNotSimple
// otherwise), and what it reads comes from committed rows.
func (r *Roomserver) processEvent(ctx context.Context, tx *sql.Tx, w *storage.Pipelined, v *event.RoomVersion, roomID string, in api.InputEvent, fresh bool) (*api.OutputEvent, headMove, error) {
	pdu, err := event.Parse(in.Event, v)
	if err != nil {
		return nil, headMove{}, rejection{apierr.BadJSON("invalid event: %v", err)}
	}
	if string(pdu.RoomID()) != roomID {
		return nil, headMove{}, reject("event %s is for room %s, not %s", pdu.EventID(), pdu.RoomID(), roomID)
	}
	var q sqlutil.Querier = tx
	if w != nil {
		if pdu.StateKey() != nil || pdu.Type() == event.TypeRedaction {
			return nil, headMove{}, errNotSimple
		}
		q = r.st.DB.Reader()
	}
	isCreate := pdu.Type() == "m.room.create" && pdu.StateKeyEquals("")
	// The room's head and the event's prev events: from the head cache
	// when the event builds on the one latest event of a room this
	// transaction has not written yet, as a send does (two round trips
	// fewer on PostgreSQL), and read in the transaction otherwise.
	room, prevs, cached := r.cachedHead(roomID, pdu, fresh && !isCreate)
	if w != nil && (!cached || len(prevs) != 1 || prevs[0].SnapshotNID == 0) {
		return nil, headMove{}, errNotSimple // a snapshot to store, or a head to read
	}
	if !cached {
		var stored *storage.Event
		if room, prevs, stored, err = r.loadHead(ctx, tx, v, roomID, pdu, isCreate); err != nil {
			return nil, headMove{}, err
		}
		if stored != nil {
			return storedOutput(pdu, v, roomID, in, stored), headMove{}, nil
		}
	}
	prevIDs := pdu.PrevEventIDs()
	// The state before the event is the state after its prev events, resolved when they diverge.
	if len(prevs) != len(prevIDs) {
		return nil, headMove{}, reject("event %s has prev events this server does not have", pdu.EventID())
	}
	var prevNIDs []int64
	var prevStates []storage.State
	parentSnapshot := int64(0)
	for _, p := range prevs {
		if p.Rejected || p.Outlier {
			return nil, headMove{}, reject("event %s references unusable prev event %s", pdu.EventID(), p.EventID)
		}
		st, err := r.st.Snapshots.Load(ctx, q, p.SnapshotNID)
		if err != nil {
			return nil, headMove{}, err
		}
		prevNIDs = append(prevNIDs, p.NID)
		prevStates = append(prevStates, st)
		parentSnapshot = p.SnapshotNID
	}
	before, err := r.resolve(ctx, tx, v, prevStates)
	if err != nil {
		return nil, headMove{}, err
	}
	if len(prevs) != 1 {
		parentSnapshot = 0
	}

	// Auth rules against the state before the event.
	authEvents, tuples, loaded, err := r.authEventsFor(ctx, q, pdu, v, before)
	if err != nil {
		return nil, headMove{}, err
	}
	// A client transaction id (a scope: the messages of old clientapis in
	// the log have none) is recorded before anything of the event is
	// written: a retry finds the first event exactly when it exists, and one
	// built before the first was stored is not stored twice. A refused
	// retry is answered with the first event too: its sender may have lost
	// the right to send since.
	var txn *storage.Txn
	if t := in.TxnID; t != nil && t.Scope != "" {
		txn = &storage.Txn{UserID: t.UserID, DeviceID: t.DeviceID, Scope: t.Scope, TxnID: t.TransactionID}
	}
	if r.auth != nil {
		if err := r.auth(pdu, authEvents); err != nil {
			if txn != nil {
				prior, serr := r.st.Txns.Select(ctx, q, *txn)
				if serr != nil {
					return nil, headMove{}, serr
				}
				if prior != "" {
					return nil, headMove{}, txnRecorded{submitted: string(pdu.EventID()), recorded: prior}
				}
			}
			// Refused before anything of it is written (but a create's room
			// row, or a (type, state_key) number that state resolution gave
			// a new key, which is harmless to keep): storeUnit needs no
			// savepoint for one other event.
			return nil, headMove{}, reject("%s", err.Error())
		}
	}
	if txn != nil && w != nil {
		// A transaction recorded already fails the pipeline, and the batch
		// is stored again the usual way.
		w.Txns, w.TxnEvents = append(w.Txns, *txn), append(w.TxnEvents, string(pdu.EventID()))
	} else if txn != nil {
		prior, err := r.st.Txns.Record(ctx, tx, *txn, string(pdu.EventID()))
		if err != nil {
			return nil, headMove{}, err
		}
		if prior != "" {
			return nil, headMove{}, txnRecorded{submitted: string(pdu.EventID()), recorded: prior}
		}
	}

	var tupleNID int64
	if sk := pdu.StateKey(); sk != nil {
		tu := storage.Tuple{Type: pdu.Type(), StateKey: *sk}
		if tupleNID, err = r.st.StateKeys.Assign(ctx, tx, tu); err != nil {
			return nil, headMove{}, err
		}
		tuples[tu] = tupleNID
	}
	row := storage.Event{RoomNID: room.NID, EventID: string(pdu.EventID()), TupleNID: tupleNID, Depth: pdu.Depth(),
		JSON: pdu.JSON()}

	// The state after the event, stored as a snapshot only when it changed.
	// A message event does not change it, so its snapshot is known before
	// the row is stored and goes in with it (a statement fewer per message);
	// a state event's snapshot holds the event's own nid and follows it.
	var parentState storage.State
	if parentSnapshot != 0 {
		parentState = prevStates[0]
	}
	after := before
	snapshot := parentSnapshot
	if tupleNID == 0 {
		if snapshot == 0 {
			if snapshot, err = r.st.Snapshots.Insert(ctx, tx, room.NID, 0, nil, after); err != nil {
				return nil, headMove{}, err
			}
		}
		row.SnapshotNID = snapshot
	}
	var nid int64
	inserted := true
	if w != nil {
		// An event stored already fails the pipeline, as above.
		if nid, err = r.nids.next(ctx); err != nil {
			return nil, headMove{}, err
		}
		row.NID = nid
		w.Events = append(w.Events, row)
	} else if nid, inserted, err = r.st.Events.Insert(ctx, tx, row); err != nil {
		return nil, headMove{}, err
	}
	if cached && !inserted {
		// Stored before, though the head does not build on it: only an
		// outlier is processed now. (Nothing stored yet is undone: the
		// transaction id names this event, a tuple number is harmless.)
		if done, err := r.processedBefore(ctx, tx, row.EventID); err != nil {
			return nil, headMove{}, err
		} else if done != nil {
			return storedOutput(pdu, v, roomID, in, done), headMove{}, nil
		}
	}
	if tupleNID != 0 {
		after = maps.Clone(before)
		after[tupleNID] = nid
		if snapshot, err = r.st.Snapshots.Insert(ctx, tx, room.NID, parentSnapshot, parentState, after); err != nil {
			return nil, headMove{}, err
		}
	}
	// An outlier stored before keeps its row (and got no snapshot from the insert).
	if tupleNID != 0 || !inserted {
		if err := r.st.Events.SetSnapshot(ctx, tx, nid, snapshot); err != nil {
			return nil, headMove{}, err
		}
	}

	// Forward extremities: the event replaces the prev events it references.
	latest := []int64{nid}
	for _, l := range room.LatestEvents {
		if !slices.Contains(prevNIDs, l) {
			latest = append(latest, l)
		}
	}
	// Usually the room's current state is the state after the one prev
	// event, already loaded (states are only read from here on).
	var oldState storage.State
	for i, p := range prevs {
		if p.SnapshotNID == room.SnapshotNID {
			oldState = prevStates[i]
			break
		}
	}
	if oldState == nil {
		if oldState, err = r.st.Snapshots.Load(ctx, q, room.SnapshotNID); err != nil {
			return nil, headMove{}, err
		}
	}
	current, currentSnapshot := after, snapshot
	var others []storage.Event
	if len(latest) > 1 {
		// Several extremities: the current state is their resolution.
		states := []storage.State{after}
		others, err = r.st.Events.SelectByNIDs(ctx, tx, latest[1:])
		if err != nil {
			return nil, headMove{}, err
		}
		for _, o := range others {
			st, err := r.st.Snapshots.Load(ctx, tx, o.SnapshotNID)
			if err != nil {
				return nil, headMove{}, err
			}
			states = append(states, st)
		}
		if current, err = r.resolve(ctx, tx, v, states); err != nil {
			return nil, headMove{}, err
		}
		if !maps.Equal(current, after) {
			if currentSnapshot, err = r.st.Snapshots.Insert(ctx, tx, room.NID, snapshot, after, current); err != nil {
				return nil, headMove{}, err
			}
		}
	}
	depth := max(room.Depth, pdu.Depth())
	if w != nil {
		w.Rooms = append(w.Rooms, storage.RoomUpdate{NID: room.NID, Before: room.LatestEvents, Latest: latest, SnapshotNID: currentSnapshot, Depth: depth})
	} else if err := r.st.Rooms.UpdateLatest(ctx, tx, room.NID, room.LatestEvents, latest, currentSnapshot, depth); err != nil {
		if isCreate && errors.Is(err, storage.ErrMoved) {
			return nil, headMove{}, reject("room %s exists already", roomID) // another create
		}
		return nil, headMove{}, err
	}

	if w != nil && !maps.Equal(oldState, current) {
		return nil, headMove{}, errNotSimple // the membership table follows the state
	}
	adds, removes, err := r.stateDelta(ctx, q, room.NID, oldState, current)
	if err != nil {
		return nil, headMove{}, err
	}
	out := api.OutputEvent{RoomID: roomID, RoomVersion: v.ID, Event: pdu.JSON(), EventID: string(pdu.EventID()),
		AddsState: adds, RemovesState: removes, TxnID: in.TxnID}
	if pdu.Type() == event.TypeRedaction {
		if out.RedactedEventID, out.RedactedEvent, err = r.applyRedaction(ctx, tx, v, room.NID, pdu, before); err != nil {
			return nil, headMove{}, err
		}
	}

	move := headMove{roomID: roomID, before: room, after: storage.Room{NID: room.NID, RoomID: roomID, Version: room.Version,
		LatestEvents: latest, SnapshotNID: currentSnapshot, Depth: depth}, latestIDs: []string{string(pdu.EventID())},
		latestSnaps: []int64{snapshot}, reread: isCreate,
		snapshots: map[int64]storage.State{room.SnapshotNID: oldState, snapshot: after, currentSnapshot: current}, tuples: tuples,
		authEvents: loaded}
	if tupleNID != 0 && inserted && cachesAuth(pdu.Type()) {
		// inserted: a stored outlier processed now keeps its own row.
		if move.authEvents == nil {
			move.authEvents = map[int64]*event.PDU{}
		}
		move.authEvents[nid] = pdu
	}
	for i, p := range prevs {
		move.snapshots[p.SnapshotNID] = prevStates[i]
	}
	for _, nid := range latest[1:] {
		i := slices.IndexFunc(others, func(e storage.Event) bool { return e.NID == nid })
		if i < 0 {
			return nil, headMove{}, fmt.Errorf("latest event %d of room %s is missing", nid, roomID)
		}
		move.latestIDs = append(move.latestIDs, others[i].EventID)
		move.latestSnaps = append(move.latestSnaps, others[i].SnapshotNID)
	}
	// The cached state of the room carries over when the current state
	// did not change, or changed only in the event's own tuple (adds and
	// removes count the tuples that differ). A redaction may have
	// rewritten a state event: the state is read again.
	if inserted && out.RedactedEventID == "" {
		replaced := 0 // the removes of a change in the event's tuple alone
		if _, ok := oldState[tupleNID]; ok {
			replaced = 1
		}
		switch {
		case len(adds) == 0 && len(removes) == 0:
			move.stateKept = true
		case tupleNID != 0 && current[tupleNID] == nid && len(adds) == 1 && len(removes) == replaced:
			move.stateKept = true
			move.tuple = &storage.Tuple{Type: pdu.Type(), StateKey: *pdu.StateKey()}
			move.ev = stateEvent{id: string(pdu.EventID()), json: pdu.JSON()}
		}
	}
	move.cached = cached
	return &out, move, nil
}

// cachedHead returns the room's committed head from the head cache, and
// the event's prev events as that head's latest events, when use is set
// and the event builds on exactly those (in any order), as sends do.
func (r *Roomserver) cachedHead(roomID string, pdu *event.PDU, use bool) (storage.Room, []storage.Event, bool) {
	if !use {
		return storage.Room{}, nil, false
	}
	room, ids, snaps, ok := r.heads.committed(roomID)
	prevIDs := pdu.PrevEventIDs()
	if !ok || room.Version != string(pdu.Version().ID) || len(ids) == 0 || len(prevIDs) != len(ids) ||
		len(ids) != len(room.LatestEvents) || len(snaps) != len(ids) {
		return storage.Room{}, nil, false
	}
	prevs := make([]storage.Event, 0, len(prevIDs))
	for _, id := range prevIDs {
		i := slices.Index(ids, string(id))
		if i < 0 || id == pdu.EventID() || slices.ContainsFunc(prevs, func(e storage.Event) bool { return e.EventID == ids[i] }) {
			return storage.Room{}, nil, false
		}
		prevs = append(prevs, storage.Event{NID: room.LatestEvents[i], RoomNID: room.NID, EventID: ids[i], SnapshotNID: snaps[i]})
	}
	return room, prevs, true
}

// loadHead reads, in tx, the event's prev events and the room's row (a
// create event makes the row). stored is the event's row when it was
// processed before (a redelivery, or a retried request): there is nothing
// to store.
func (r *Roomserver) loadHead(ctx context.Context, tx *sql.Tx, v *event.RoomVersion, roomID string, pdu *event.PDU, isCreate bool) (room storage.Room, prevs []storage.Event, stored *storage.Event, err error) {
	// The event itself and its prev events in one query (a round trip each
	// on PostgreSQL otherwise).
	prevIDs := make([]string, 0, len(pdu.PrevEventIDs()))
	for _, id := range pdu.PrevEventIDs() {
		prevIDs = append(prevIDs, string(id))
	}
	found, err := r.st.Events.SelectByIDs(ctx, tx, append([]string{string(pdu.EventID())}, prevIDs...))
	if err != nil {
		return storage.Room{}, nil, nil, err
	}
	for _, e := range found {
		if e.EventID == string(pdu.EventID()) {
			if !e.Outlier {
				return storage.Room{}, nil, &e, nil
			}
			// A stored outlier is processed now; it is one of its own prev
			// events only if it lists itself.
			if !slices.Contains(prevIDs, e.EventID) {
				continue
			}
		}
		prevs = append(prevs, e)
	}
	if isCreate {
		nid, err := r.st.Rooms.Insert(ctx, tx, roomID, v.ID)
		if err != nil {
			return storage.Room{}, nil, nil, err
		}
		if len(prevIDs) != 0 {
			return storage.Room{}, nil, nil, reject("create event must not have prev_events")
		}
		return storage.Room{NID: nid, RoomID: roomID, Version: v.ID}, prevs, nil, nil
	}
	room, err = r.st.Rooms.Select(ctx, tx, roomID)
	if errors.Is(err, storage.ErrNotFound) {
		return room, nil, nil, rejection{apierr.NotFound("unknown room %s", roomID)}
	}
	if err != nil {
		return room, nil, nil, err
	}
	if room.Version != v.ID {
		return room, nil, nil, reject("room %s is version %s, not %s", roomID, room.Version, v.ID)
	}
	return room, prevs, nil, nil
}

// storedOutput is the output of stored, an event processed before,
// published again when its input is redelivered: a pipelined message is
// committed before its output is published (pipeline.go), so its
// redelivered input may be all that is left to announce it. Consumers
// ignore events they have. Only a message's output is rebuilt from its row
// alone (as stored: redacted, if it was since); other events were
// published in the transaction that stored them, and a rejected one never
// is: they get nil.
func storedOutput(pdu *event.PDU, v *event.RoomVersion, roomID string, in api.InputEvent, stored *storage.Event) *api.OutputEvent {
	if pdu.StateKey() != nil || pdu.Type() == event.TypeRedaction || stored.Rejected {
		return nil
	}
	return &api.OutputEvent{RoomID: roomID, RoomVersion: v.ID, Event: stored.JSON, EventID: stored.EventID, TxnID: in.TxnID}
}

// processedBefore returns the row of the stored event eventID if it was
// processed (not just stored as an outlier), nil otherwise.
func (r *Roomserver) processedBefore(ctx context.Context, tx *sql.Tx, eventID string) (*storage.Event, error) {
	rows, err := r.st.Events.SelectByIDs(ctx, tx, []string{eventID})
	if err != nil || len(rows) != 1 || rows[0].Outlier {
		return nil, err
	}
	return &rows[0], nil
}

// stateDelta lists the event ids added to and removed from the current
// state, and keeps the membership table in step with it.
func (r *Roomserver) stateDelta(ctx context.Context, q sqlutil.Querier, roomNID int64, old, cur storage.State) (adds, removes []string, err error) {
	var addNIDs, removeNIDs []int64
	for k, v := range cur {
		if old[k] != v {
			addNIDs = append(addNIDs, v)
		}
	}
	for k, v := range old {
		if cur[k] != v {
			removeNIDs = append(removeNIDs, v)
		}
	}
	added, err := r.st.Events.SelectByNIDs(ctx, q, addNIDs)
	if err != nil {
		return nil, nil, err
	}
	removed, err := r.st.Events.SelectByNIDs(ctx, q, removeNIDs)
	if err != nil {
		return nil, nil, err
	}
	members := map[string]bool{}
	for _, e := range added {
		adds = append(adds, e.EventID)
		if m, ok := storage.MemberOf(e.JSON); ok {
			m.RoomNID, m.EventNID = roomNID, e.NID
			if err := r.st.Members.Upsert(ctx, q, m); err != nil {
				return nil, nil, err
			}
			members[m.UserID] = true
		}
	}
	for _, e := range removed {
		removes = append(removes, e.EventID)
		// A member event leaves the state without a successor only through state resolution.
		if m, ok := storage.MemberOf(e.JSON); ok && !members[m.UserID] {
			if err := r.st.Members.Delete(ctx, q, roomNID, m.UserID); err != nil {
				return nil, nil, err
			}
		}
	}
	return adds, removes, nil
}

// authEventsFor loads the events of state that the auth rules consult for
// pdu, and returns the tuple numbers it looked up and the events it read
// from the database (not the cache) by event number.
func (r *Roomserver) authEventsFor(ctx context.Context, q sqlutil.Querier, pdu *event.PDU, v *event.RoomVersion, state storage.State) ([]*event.PDU, map[storage.Tuple]int64, map[int64]*event.PDU, error) {
	needed := event.AuthEventsNeededFor(pdu)
	// The create event is always consulted, even where (room v12) it is not an auth event.
	tuples := []storage.Tuple{{Type: event.TypeCreate}}
	for _, n := range needed {
		tuples = append(tuples, storage.Tuple{Type: n.Type, StateKey: n.StateKey})
	}
	nids, err := r.st.StateKeys.Lookup(ctx, q, tuples)
	if err != nil {
		return nil, nil, nil, err
	}
	var eventNIDs []int64
	for _, tn := range nids {
		if en, ok := state[tn]; ok {
			eventNIDs = append(eventNIDs, en)
		}
	}
	out := make([]*event.PDU, 0, len(eventNIDs))
	missing := eventNIDs
	if authCacheUsable(ctx) {
		var found map[int64]*event.PDU
		found, missing = r.authEvs.get(eventNIDs)
		for _, e := range found {
			out = append(out, e)
		}
	}
	if len(missing) == 0 {
		return out, nids, nil, nil
	}
	rows, err := r.st.Events.SelectByNIDs(ctx, q, missing)
	if err != nil {
		return nil, nil, nil, err
	}
	loaded := make(map[int64]*event.PDU, len(rows))
	for _, row := range rows {
		e, err := event.ParseStored(row.JSON, v, matrix.EventID(row.EventID))
		if err != nil {
			return nil, nil, nil, fmt.Errorf("parse stored event %s: %w", row.EventID, err)
		}
		out = append(out, e)
		loaded[row.NID] = e
	}
	return out, nids, loaded, nil
}

// resolve merges the states after several prev events. States that agree
// merge trivially; conflicting ones need the room version's state
// resolution algorithm.
func (r *Roomserver) resolve(ctx context.Context, tx *sql.Tx, v *event.RoomVersion, states []storage.State) (storage.State, error) {
	switch len(states) {
	case 0:
		return storage.State{}, nil
	case 1:
		return states[0], nil
	}
	merged := maps.Clone(states[0])
	conflicted := false
	for _, s := range states[1:] {
		for k, ev := range s {
			if cur, ok := merged[k]; ok && cur != ev {
				conflicted = true
			}
			merged[k] = ev
		}
		for k := range merged {
			if _, ok := s[k]; !ok {
				conflicted = true
			}
		}
	}
	if !conflicted {
		return merged, nil
	}
	return r.resolveConflicts(ctx, tx, v, states)
}
