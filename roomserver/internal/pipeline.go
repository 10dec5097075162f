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
)

// Pipelined input (PostgreSQL). Under load nearly all input is messages
// built on the room's cached head. Such an event needs nothing read in the
// transaction (head.go) and three writes: its transaction id, its row and
// the room's extremities. Each round trip to PostgreSQL costs both
// processes about 100 µs of CPU, and through database/sql each write is
// one, with the BEGIN and the COMMIT five per message. A batch made only
// of such events is stored by one statement (storage.WritePipelined), its
// own transaction, and its outputs are published after it commits: one
// round trip per batch.
//
// Publishing after the commit is safe because the input is acknowledged
// only once the outputs are out: an input redelivered after a failed
// publish (or a crash) finds its message stored, and the transaction path
// publishes the message's output again (storedOutput). The room's next
// event cannot come first: the room's input is handled in order, and its
// sender is answered only after the publish. (New consumers of a
// repartitioned input group take old input as new rather than redelivered:
// see the README.)
//
// Anything else in the batch (a state event, a redaction, an event not on
// the cached head, an atomic request, a second event of a room) is found
// before anything is written, and the batch takes the transaction path
// instead. So does a batch whose statement finds a transaction id or an
// event stored already (a retried request, a redelivery): the transaction
// path decides those. A head that moved under the cache fails the batch
// with storage.ErrMoved, as the transaction path does.

// errNotSimple: an event of a pipelined batch needs the transaction path.
var errNotSimple = errors.New("input needs the transaction path")

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

// reset forgets the numbers reserved: after a crash of the database the
// sequence may hand them out again.
func (p *nidPool) reset() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.free = nil
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

// storePipelined stores a batch of simple events in one round trip,
// publishes their outputs and reports true, or reports false, having
// written nothing, when the batch needs the transaction path.
func (r *Roomserver) storePipelined(ctx context.Context, msgs []eventlog.Msg[api.InputMessage], units [][][]api.InputEvent, epoch string) (batchOut, bool, error) {
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
	w := &storage.Pipelined{Epoch: epoch}
	b, err := r.storeBatch(ctx, nil, w, msgs, units, true)
	if errors.Is(err, errNotSimple) {
		return batchOut{}, false, nil
	}
	if err != nil {
		return batchOut{}, false, err
	}
	if len(w.Events) == 0 {
		return b, true, nil // every event refused: nothing to write
	}
	err = r.st.WritePipelined(ctx, *w)
	if errors.Is(err, storage.ErrStoredBefore) {
		return batchOut{}, false, nil
	}
	if err != nil {
		return batchOut{}, false, err
	}
	// Committed: an output that fails to go out now is published again
	// when the input is redelivered (storedOutput). The outputs are of
	// distinct rooms, so they go out together: one wait for the broker
	// instead of one per message, with every send of the batch waiting.
	keys := make([]string, len(b.outs))
	for i, out := range b.outs {
		keys[i] = out.RoomID
	}
	if err := eventlog.PublishAll(ctx, r.log, api.OutputTopic, keys, b.outs); err != nil {
		return batchOut{}, false, fmt.Errorf("%d events committed, announced when redelivered: %w", len(w.Events), err)
	}
	r.pipelined.Add(1)
	return b, true, nil
}
