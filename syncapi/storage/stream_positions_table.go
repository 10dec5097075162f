package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/axon-hs/axon/internal/sqlutil"
	"github.com/axon-hs/axon/syncapi/internal/streams"
)

func streamPositionsSchema(sqlutil.Dialect) string {
	return `CREATE TABLE syncapi_stream_positions (
	-- streams.Kind.String(), e.g. "pdu".
	stream   TEXT PRIMARY KEY,
	-- The last position handed out. Incrementing it locks the row until the
	-- transaction ends, so positions commit in order (see the package doc).
	position BIGINT NOT NULL
)`
}

// StreamPositionsTable is syncapi_stream_positions: one counter per stream.
type StreamPositionsTable struct{ d sqlutil.Dialect }

// Next allocates the next position of stream k. Call it inside the
// transaction that writes the item: the counter row stays locked until
// that transaction ends.
func (t StreamPositionsTable) Next(ctx context.Context, q sqlutil.Querier, k streams.Kind) (streams.Position, error) {
	return t.NextN(ctx, q, k, 1)
}

// NextN allocates the next n (> 0) positions of stream k in one statement
// and returns the last; they are last-n+1 .. last. As with Next, the
// counter row stays locked until the transaction ends.
func (t StreamPositionsTable) NextN(ctx context.Context, q sqlutil.Querier, k streams.Kind, n int) (streams.Position, error) {
	var p streams.Position
	err := q.QueryRowContext(ctx, positionsNext("$2"), k.String(), n).Scan(&p)
	if err != nil {
		return 0, fmt.Errorf("next %d positions of stream %s: %w", n, k, err)
	}
	return p, nil
}

// positionsNext advances the counter of stream $1 by n (a parameter or a
// literal) and returns its last position: NextN's statement, and the first
// step of the one-statement batches of StorePlain and StoreCounts.
func positionsNext(n string) string {
	return `INSERT INTO syncapi_stream_positions (stream, position) VALUES ($1, ` + n + `)
		ON CONFLICT (stream) DO UPDATE SET position = syncapi_stream_positions.position + ` + n + ` RETURNING position`
}

// Current returns the last committed position of stream k (0 when empty).
func (t StreamPositionsTable) Current(ctx context.Context, q sqlutil.Querier, k streams.Kind) (streams.Position, error) {
	var p streams.Position
	err := q.QueryRowContext(ctx, `SELECT position FROM syncapi_stream_positions WHERE stream = $1`, k.String()).Scan(&p)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("current position of stream %s: %w", k, err)
	}
	return p, nil
}

// Token returns the last committed position of every stream.
func (t StreamPositionsTable) Token(ctx context.Context, q sqlutil.Querier) (streams.Token, error) {
	var tok streams.Token
	for _, k := range streams.Kinds() {
		p, err := t.Current(ctx, q, k)
		if err != nil {
			return tok, err
		}
		tok = tok.With(k, p)
	}
	return tok, nil
}
