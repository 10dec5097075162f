package internal

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/axon-hs/axon/internal/eventlog"
	"github.com/axon-hs/axon/matrix/canonicaljson"
	"github.com/axon-hs/axon/matrix/event"
	"github.com/axon-hs/axon/roomserver/api"
	"github.com/axon-hs/axon/roomserver/storage"
	"github.com/jackc/pgx/v5"
)

// Pipelined input (PostgreSQL). Under load nearly all input is messages
// built on the room's cached head. Such an event needs nothing read in the
// transaction (head.go) and three writes: its transaction id, its row and
// the room's extremities. Through database/sql each write is a round trip
// to PostgreSQL, with the BEGIN and the COMMIT five per message, and those
// round trips were most of both processes' CPU. A batch made only of such
// events is stored with one statement per table for the whole batch, sent
// together with the BEGIN as one pgx batch; the outputs are published, then
// the COMMIT is sent: two round trips per batch.
//
// Anything else in the batch (a state event, a redaction, an event not on
// the cached head, an atomic request, a second event of a room) is found
// before anything is written, and the batch takes the transaction path
// instead. So does a batch whose writes find a transaction id or an event
// stored already (a retried request, a redelivery): the transaction path
// decides those. A head that moved under the cache fails the batch with
// storage.ErrMoved, as the transaction path does.

// errNotSimple: an event of a pipelined batch needs the transaction path.
var errNotSimple = errors.New("input needs the transaction path")

// errStoredBefore: a pipelined batch found a transaction id or an event
// already stored; it is rolled back and stored the usual way.
var errStoredBefore = errors.New("input stored before")

// pendingWrites are the writes of a pipelined batch.
type pendingWrites struct {
	txns      []storage.Txn
	txnEvents []string // the event of each of txns
	events    []storage.Event
	rooms     []storage.RoomUpdate
}

// nidBlock is how many event numbers are reserved at once.
const nidBlock = 128

// nidPool hands out event numbers reserved from the events' sequence, so
// that a pipelined event's number is known before its row is written.
// Numbers given to batches that were rolled back are not reused: the
// sequence has gaps anyway.
type nidPool struct {
	mu   sync.Mutex
	st   *storage.Storage
	free []int64
}

func (p *nidPool) next(ctx context.Context) (int64, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.free) == 0 {
		nids, err := p.st.Events.AllocNIDs(ctx, p.st.DB, nidBlock)
		if err != nil {
			return 0, err
		}
		if len(nids) == 0 {
			return 0, errors.New("no event numbers reserved")
		}
		p.free = nids
	}
	n := p.free[0]
	p.free = p.free[1:]
	return n, nil
}

// maybeSimple reports whether an input event may be a message event
// (neither a state event nor a redaction) as far as its JSON says without
// decoding it all.
func maybeSimple(in api.InputEvent) bool {
	if typ, ok := inputType(in); !ok || typ == event.TypeRedaction {
		return false
	}
	_, state := canonicaljson.Lookup(in.Event, "state_key")
	return !state
}

// storePipelined stores a batch of simple events in two round trips and
// reports true, or reports false, having written nothing, when the batch
// needs the transaction path.
func (r *Roomserver) storePipelined(ctx context.Context, msgs []eventlog.Msg[api.InputMessage], units [][][]api.InputEvent) (batchOut, bool, error) {
	// What the events' JSON tells at a glance is checked before any of
	// them is processed: a batch that falls back does all that work again.
	// processEvent still decides (errNotSimple) what this lets through.
	rooms := make(map[string]bool, len(msgs))
	for i, m := range msgs {
		if rooms[m.Value.Request.RoomID] {
			return batchOut{}, false, nil // a room's second event: its head moves in the batch
		}
		rooms[m.Value.Request.RoomID] = true
		us := units[i]
		if len(us) != 1 || len(us[0]) != 1 || !maybeSimple(us[0][0]) {
			return batchOut{}, false, nil // more than one event, atomic, state or redaction
		}
	}
	w := &pendingWrites{}
	b, err := r.storeBatch(ctx, nil, w, msgs, units, true)
	if errors.Is(err, errNotSimple) {
		return batchOut{}, false, nil
	}
	if err != nil {
		return batchOut{}, false, err
	}
	if len(w.events) == 0 {
		return b, true, nil // every event refused: nothing to write
	}
	err = r.st.DB.Postgres(ctx, func(conn *pgx.Conn) error { return r.writePipelined(ctx, conn, w, b.outs) })
	if errors.Is(err, errStoredBefore) {
		return batchOut{}, false, nil
	}
	if err != nil {
		return batchOut{}, false, fmt.Errorf("pipelined input: %w", err)
	}
	r.pipelined.Add(1)
	return b, true, nil
}

// writePipelined writes w in a transaction on conn, publishes outs and
// commits.
func (r *Roomserver) writePipelined(ctx context.Context, conn *pgx.Conn, w *pendingWrites, outs []api.OutputEvent) (err error) {
	batch := &pgx.Batch{}
	batch.Queue("BEGIN")
	if len(w.txns) > 0 {
		r.st.Txns.QueueRecord(batch, w.txns, w.txnEvents)
	}
	r.st.Events.QueueInsert(batch, w.events)
	r.st.Rooms.QueueUpdateLatest(batch, w.rooms)
	done := false
	defer func() {
		if !done {
			// A connection whose transaction cannot be ended is dropped.
			if _, rerr := conn.Exec(context.WithoutCancel(ctx), "ROLLBACK"); rerr != nil {
				_ = conn.Close(context.WithoutCancel(ctx))
			}
		}
	}()
	rows := make([]int64, batch.Len())
	br := conn.SendBatch(ctx, batch)
	for i := range rows {
		tag, err := br.Exec()
		if err != nil {
			_ = br.Close()
			return fmt.Errorf("statement %d: %w", i, err)
		}
		rows[i] = tag.RowsAffected()
	}
	if err := br.Close(); err != nil {
		return err
	}
	rows = rows[1:] // the BEGIN
	if len(w.txns) > 0 {
		if rows[0] != int64(len(w.txns)) {
			return errStoredBefore
		}
		rows = rows[1:]
	}
	if rows[0] != int64(len(w.events)) {
		return errStoredBefore
	}
	if rows[1] != int64(len(w.rooms)) {
		return fmt.Errorf("update latest events of %d rooms: %d updated: %w", len(w.rooms), rows[1], storage.ErrMoved)
	}
	if err := r.publish(ctx, outs); err != nil {
		return err
	}
	// Sent whatever ctx says (a cancelled ctx would send nothing), and
	// whatever it answers the transaction is over or the connection broken
	// (sqlutil.DB.Postgres drops it): the caller forgets the heads on an
	// error.
	done = true
	if _, err := conn.Exec(context.WithoutCancel(ctx), "COMMIT"); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}
