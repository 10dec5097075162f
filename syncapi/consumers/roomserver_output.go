package consumers

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"

	"github.com/axon-hs/axon/internal/eventlog"
	"github.com/axon-hs/axon/internal/sqlutil"
	rsapi "github.com/axon-hs/axon/roomserver/api"
	"github.com/axon-hs/axon/syncapi/internal/notifier"
	"github.com/axon-hs/axon/syncapi/internal/streams"
	"github.com/axon-hs/axon/syncapi/storage"
)

// RoomServerOutput consumes rsapi.OutputTopic: it stores each accepted event
// at the next PDU stream position, applies the state changes it carries, and
// then wakes the users concerned.
type RoomServerOutput struct {
	db       *storage.Storage
	notifier *notifier.Notifier
	log      *slog.Logger
	plain    atomic.Int64 // batches storePlain stored, for tests
}

// NewRoomServerOutput returns the handler.
func NewRoomServerOutput(db *storage.Storage, n *notifier.Notifier, log *slog.Logger) *RoomServerOutput {
	return &RoomServerOutput{db: db, notifier: n, log: log}
}

// errDuplicate rolls back a transaction that lost the race to store an event
// (two copies of one message handled at once), so its position is not used.
var errDuplicate = errors.New("event already stored")

// header is what the syncapi reads of a PDU when storing it.
type header struct {
	Type     string  `json:"type"`
	Sender   string  `json:"sender"`
	StateKey *string `json:"state_key"`
	Content  struct {
		Membership any `json:"membership"`
	} `json:"content"`
}

func parseHeader(pdu []byte) (header, error) {
	var h header
	if err := json.Unmarshal(pdu, &h); err != nil {
		return h, fmt.Errorf("decode event: %w", err)
	}
	if h.Type == "" || h.Sender == "" {
		return h, errors.New("event has no type or sender")
	}
	return h, nil
}

// membership is content.membership of a member event, "" otherwise (and for
// a malformed one, which the roomserver's auth rules would not have let in).
func (h header) membership() string {
	if h.Type != storage.MemberEvent || h.StateKey == nil {
		return ""
	}
	m, _ := h.Content.Membership.(string)
	return m
}

// applied is what one message did.
type applied struct {
	stored   bool
	position streams.Position
	changes  []notifier.MembershipChange
	unknown  []string // state event ids the syncapi has never seen
}

// Handle stores one roomserver output event; see HandleBatch.
func (c *RoomServerOutput) Handle(ctx context.Context, m eventlog.Msg[rsapi.OutputEvent]) error {
	return c.HandleBatch(ctx, []eventlog.Msg[rsapi.OutputEvent]{m})
}

// outputItem is one message of a batch on its way through HandleBatch.
type outputItem struct {
	ev  rsapi.OutputEvent
	h   header
	res applied
}

// HandleBatch stores roomserver output events, in the order given, in one
// transaction: the events, their positions and their state changes commit
// together, and waiters are woken after the commit. One transaction takes
// the PDU counter row's lock once, however many events it holds, so writers
// no longer queue behind it one event per commit. A message whose event is
// already stored is a no-op, so a batch redelivered wholly or in part
// neither adds a second timeline entry nor takes a position. On
// PostgreSQL a batch of plain messages is one statement instead
// (storePlain). An error stores nothing (the eventlog then retries the
// messages one by one).
func (c *RoomServerOutput) HandleBatch(ctx context.Context, msgs []eventlog.Msg[rsapi.OutputEvent]) error {
	items := make([]outputItem, len(msgs))
	for i, m := range msgs {
		ev := m.Value
		if ev.EventID == "" || ev.RoomID == "" {
			return eventlog.Permanent(fmt.Errorf("output message %d: no event id or room id", m.Seq))
		}
		h, err := parseHeader(ev.Event)
		if err != nil {
			return eventlog.Permanent(fmt.Errorf("output event %s: %w", ev.EventID, err))
		}
		items[i] = outputItem{ev: ev, h: h}
	}
	done, err := c.storePlain(ctx, items)
	if err == nil && !done {
		err = c.db.InTx(ctx, func(tx *sql.Tx) error {
			return c.applyAll(ctx, tx, items)
		})
	}
	if errors.Is(err, errDuplicate) && len(items) == 1 {
		// In a batch it fails the batch: one by one, the copy that lost is a no-op.
		return nil
	}
	if err != nil {
		if len(items) == 1 {
			return fmt.Errorf("store output event %s of room %s: %w", items[0].ev.EventID, items[0].ev.RoomID, err)
		}
		return fmt.Errorf("store %d output events: %w", len(items), err)
	}
	for i := range items {
		it := &items[i]
		if !it.res.stored {
			c.log.DebugContext(ctx, "output event already stored", "event_id", it.ev.EventID, "room_id", it.ev.RoomID)
			continue
		}
		if len(it.res.unknown) > 0 {
			// The output carries state as event ids; an id the syncapi never received as
			// an output event (e.g. state of a room joined over federation) cannot be served.
			c.log.WarnContext(ctx, "state event ids unknown to the syncapi", "event_id", it.ev.EventID, "room_id", it.ev.RoomID,
				"unknown", it.res.unknown)
		}
		c.notifier.OnRoomEvent(it.ev.RoomID, it.res.position, it.res.changes)
	}
	return nil
}

// storePlain stores a batch of plain events with one statement
// (Storage.StorePlain) on PostgreSQL, where round trips are what a batch
// costs. It reports false, having stored nothing, when the batch needs
// applyAll: on SQLite, for an event that is not plain or comes twice, and
// when an event is stored already (a redelivery).
func (c *RoomServerOutput) storePlain(ctx context.Context, items []outputItem) (bool, error) {
	if c.db.DB.Dialect.Engine != sqlutil.Postgres || len(items) == 0 {
		return false, nil
	}
	rows := make([]storage.SearchRow, len(items))
	seen := make(map[string]bool, len(items))
	for i, it := range items {
		row, text, ok := plainRow(it.ev, it.h, 0)
		if !ok || seen[it.ev.EventID] {
			return false, nil
		}
		seen[it.ev.EventID] = true
		rows[i] = storage.SearchRow{Event: row, Text: text}
	}
	last, ok, err := c.db.StorePlain(ctx, rows)
	if err != nil || !ok {
		return false, err
	}
	pos := last - streams.Position(len(items)) + 1
	for i := range items {
		items[i].res = applied{stored: true, position: pos + streams.Position(i)}
	}
	c.plain.Add(1)
	return true, nil
}

// applyAll stores the events of items that are not stored yet, in order,
// at consecutive positions. Round trips are what a batch costs on
// PostgreSQL, so the lookup of stored ids and the positions take one each.
func (c *RoomServerOutput) applyAll(ctx context.Context, tx *sql.Tx, items []outputItem) error {
	ids := make([]string, len(items))
	for i := range items {
		items[i].res = applied{}
		ids[i] = items[i].ev.EventID
	}
	stored, err := c.db.Events.StoredIDs(ctx, tx, ids)
	if err != nil {
		return err
	}
	var fresh []*outputItem
	for i := range items {
		if id := items[i].ev.EventID; !stored[id] {
			stored[id] = true // a second copy in the batch is a no-op too
			fresh = append(fresh, &items[i])
		}
	}
	if len(fresh) == 0 {
		return nil
	}
	last, err := c.db.Positions.NextN(ctx, tx, streams.PDU, len(fresh))
	if err != nil {
		return err
	}
	pos := last - streams.Position(len(fresh)) + 1
	// Plain events (messages: no state, no redaction, no relation) change
	// nothing but their own rows, so runs of them are stored with one
	// statement for the events and one for their text, before the next
	// event that needs more: round trips are what a batch costs on
	// PostgreSQL.
	var plain []storage.Event
	var texts []storage.SearchRow
	flush := func() error {
		if len(plain) == 0 {
			return nil
		}
		ok, err := c.db.Events.InsertMany(ctx, tx, plain)
		if err != nil {
			return err
		}
		if !ok {
			return errDuplicate
		}
		if err := c.db.IndexPlain(ctx, tx, texts); err != nil {
			return err
		}
		plain, texts = plain[:0], texts[:0]
		return nil
	}
	for _, it := range fresh {
		if row, text, ok := plainRow(it.ev, it.h, pos); ok {
			plain = append(plain, row)
			texts = append(texts, storage.SearchRow{Event: row, Text: text})
			it.res.stored, it.res.position = true, pos
			pos++
			continue
		}
		if err := flush(); err != nil {
			return err
		}
		if err := c.apply(ctx, tx, it.ev, it.h, pos, &it.res); err != nil {
			if len(items) > 1 {
				return fmt.Errorf("output event %s of room %s: %w", it.ev.EventID, it.ev.RoomID, err)
			}
			return err
		}
		pos++
	}
	return flush()
}

// plainRow returns the row of an event that only adds itself, with its
// search text; ok is false for any event apply must handle.
func plainRow(ev rsapi.OutputEvent, h header, pos streams.Position) (storage.Event, string, bool) {
	if h.StateKey != nil || h.Type == "m.room.redaction" || ev.RedactedEventID != "" || ev.Rewrite ||
		len(ev.AddsState) > 0 || len(ev.RemovesState) > 0 {
		return storage.Event{}, "", false
	}
	row := rowOf(ev, h, pos)
	text, ok := storage.PlainText(row)
	return row, text, ok
}

// rowOf is the stored row of an output event at pos.
func rowOf(ev rsapi.OutputEvent, h header, pos streams.Position) storage.Event {
	row := storage.Event{Position: pos, EventID: ev.EventID, RoomID: ev.RoomID, RoomVersion: ev.RoomVersion,
		Type: h.Type, Sender: h.Sender, StateKey: h.StateKey, JSON: ev.Event}
	if ev.TxnID != nil {
		row.Txn = storage.TxnID{UserID: ev.TxnID.UserID, DeviceID: ev.TxnID.DeviceID, TxnID: ev.TxnID.TransactionID}
	}
	return row
}

// apply stores one event, not stored yet, at pos.
func (c *RoomServerOutput) apply(ctx context.Context, tx *sql.Tx, ev rsapi.OutputEvent, h header, pos streams.Position, res *applied) error {
	row := rowOf(ev, h, pos)
	self := storage.Tuple{}
	if h.StateKey != nil {
		self = storage.Tuple{Type: h.Type, StateKey: *h.StateKey}
		// What this event replaces is the current state just before it, if it
		// becomes current itself.
		for _, id := range ev.AddsState {
			if id == ev.EventID {
				prev, err := c.db.CurrentState.Select(ctx, tx, ev.RoomID, self)
				if err != nil {
					return err
				}
				row.ReplacesEventID = prev
				break
			}
		}
	}
	inserted, err := c.db.Events.Insert(ctx, tx, row)
	if err != nil {
		return err
	}
	if !inserted {
		return errDuplicate
	}
	res.stored, res.position = true, pos
	if err := c.applyRedaction(ctx, tx, ev); err != nil {
		return err
	}
	// Relations and search: the event's own, and a redacted event's gone.
	if err := c.db.IndexEvent(ctx, tx, row); err != nil {
		return err
	}
	if ev.RedactedEventID != "" {
		if err := c.db.UnindexEvent(ctx, tx, ev.RedactedEventID); err != nil {
			return err
		}
	}

	adds, unknownAdds, err := c.lookup(ctx, tx, ev, h, ev.AddsState)
	if err != nil {
		return err
	}
	removes, _, err := c.lookup(ctx, tx, ev, h, ev.RemovesState)
	if err != nil {
		return err
	}
	res.unknown = unknownAdds
	current, err := c.currentOf(ctx, tx, ev, adds, removes)
	if err != nil {
		return err
	}
	newState := map[storage.Tuple]bool{}
	for _, a := range adds {
		newState[a.tuple] = true
		if current[a.tuple] == a.eventID {
			continue // a rewrite lists unchanged state too
		}
		if err := c.change(ctx, tx, ev.RoomID, pos, a, res); err != nil {
			return err
		}
	}
	var gone []storage.Tuple
	if ev.Rewrite {
		// AddsState is the whole new state: whatever else was current is gone. With
		// unknown ids we cannot tell which tuples they hold, so nothing is dropped.
		if len(unknownAdds) == 0 {
			for tu := range current {
				if !newState[tu] {
					gone = append(gone, tu)
				}
			}
		}
	} else {
		for _, r := range removes {
			// A removal only counts if nothing replaced it and it is still what is current.
			if !newState[r.tuple] && current[r.tuple] == r.eventID {
				gone = append(gone, r.tuple)
			}
		}
	}
	for _, tu := range gone {
		if err := c.change(ctx, tx, ev.RoomID, pos, stateRef{tuple: tu}, res); err != nil {
			return err
		}
	}
	return nil
}

// stateRef is a state event id with the tuple it sets.
type stateRef struct {
	tuple      storage.Tuple
	eventID    string // "" for a removal
	membership string
}

// lookup resolves state event ids to their tuples: the event being stored
// from its header, the others from storage. Ids the syncapi does not have
// are returned apart.
func (c *RoomServerOutput) lookup(ctx context.Context, tx *sql.Tx, ev rsapi.OutputEvent, h header, ids []string) ([]stateRef, []string, error) {
	var out []stateRef
	var others []string
	for _, id := range ids {
		if id == ev.EventID {
			if h.StateKey != nil {
				out = append(out, stateRef{tuple: storage.Tuple{Type: h.Type, StateKey: *h.StateKey}, eventID: id, membership: h.membership()})
			}
			continue
		}
		others = append(others, id)
	}
	if len(others) == 0 {
		return out, nil, nil
	}
	evs, err := c.db.Events.SelectByIDs(ctx, tx, others)
	if err != nil {
		return nil, nil, err
	}
	found := map[string]bool{}
	for _, e := range evs {
		if e.StateKey == nil {
			continue
		}
		found[e.EventID] = true
		oh, err := parseHeader(e.JSON)
		if err != nil {
			return nil, nil, fmt.Errorf("stored event %s: %w", e.EventID, err)
		}
		out = append(out, stateRef{tuple: storage.Tuple{Type: e.Type, StateKey: *e.StateKey}, eventID: e.EventID, membership: oh.membership()})
	}
	var unknown []string
	for _, id := range others {
		if !found[id] {
			unknown = append(unknown, id)
		}
	}
	return out, unknown, nil
}

// currentOf returns the current state of the tuples involved (the whole
// room for a rewrite).
func (c *RoomServerOutput) currentOf(ctx context.Context, tx *sql.Tx, ev rsapi.OutputEvent, adds, removes []stateRef) (map[storage.Tuple]string, error) {
	if ev.Rewrite {
		return c.db.CurrentState.SelectRoom(ctx, tx, ev.RoomID)
	}
	cur := map[storage.Tuple]string{}
	for _, refs := range [][]stateRef{adds, removes} {
		for _, r := range refs {
			if _, ok := cur[r.tuple]; ok {
				continue
			}
			id, err := c.db.CurrentState.Select(ctx, tx, ev.RoomID, r.tuple)
			if err != nil {
				return nil, err
			}
			cur[r.tuple] = id
		}
	}
	return cur, nil
}

// change applies one state change to the current state and its history.
func (c *RoomServerOutput) change(ctx context.Context, tx *sql.Tx, roomID string, pos streams.Position, s stateRef, res *applied) error {
	if s.eventID == "" {
		if err := c.db.CurrentState.Delete(ctx, tx, roomID, s.tuple); err != nil {
			return err
		}
	} else if err := c.db.CurrentState.Upsert(ctx, tx, roomID, s.tuple, s.eventID, s.membership, pos); err != nil {
		return err
	}
	err := c.db.Deltas.Insert(ctx, tx, storage.Delta{Position: pos, RoomID: roomID, Tuple: s.tuple, EventID: s.eventID, Membership: s.membership})
	if err != nil {
		return err
	}
	if s.tuple.Type == storage.MemberEvent {
		res.changes = append(res.changes, notifier.MembershipChange{UserID: s.tuple.StateKey, Membership: s.membership})
	}
	return nil
}
