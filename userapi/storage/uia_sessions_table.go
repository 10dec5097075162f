package storage

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/axon-hs/axon/internal/sqlutil"
)

// Sessions live in the database rather than in memory because the stages of
// one session may be completed through different clientapi processes.
const uiaSessionsSchema = `CREATE TABLE userapi_uia_sessions (
	session_id TEXT PRIMARY KEY,
	-- The request kind the session was opened for (e.g. "register"); a
	-- session is never accepted for another.
	purpose    TEXT NOT NULL,
	-- JSON array of completed stage types, in completion order.
	completed  TEXT NOT NULL,
	created_ms BIGINT NOT NULL
)`

const uiaSessionsCreatedIndex = `CREATE INDEX userapi_uia_sessions_created ON userapi_uia_sessions (created_ms)`

// UIASession is a row of userapi_uia_sessions.
type UIASession struct {
	ID        string
	Purpose   string
	Completed []string
	CreatedMS int64
}

// UIASessionsTable is userapi_uia_sessions.
type UIASessionsTable struct{}

// encodeStages is the one encoding of a stage list, so that UpdateCompleted
// can compare a stored list with a re-encoded one as text.
func encodeStages(stages []string) (string, error) {
	if stages == nil {
		stages = []string{}
	}
	b, err := json.Marshal(stages)
	return string(b), err
}

// Insert stores a new session.
func (UIASessionsTable) Insert(ctx context.Context, q sqlutil.Querier, s UIASession) error {
	completed, err := encodeStages(s.Completed)
	if err != nil {
		return fmt.Errorf("insert uia session %s: encode stages: %w", s.ID, err)
	}
	_, err = q.ExecContext(ctx, `INSERT INTO userapi_uia_sessions (session_id, purpose, completed, created_ms) VALUES ($1, $2, $3, $4)`,
		s.ID, s.Purpose, completed, s.CreatedMS)
	if err != nil {
		return fmt.Errorf("insert uia session %s: %w", s.ID, err)
	}
	return nil
}

// Select returns a session, or an error wrapping ErrNotFound. Expiry is the
// caller's decision: the row carries its creation time.
func (UIASessionsTable) Select(ctx context.Context, q sqlutil.Querier, id string) (UIASession, error) {
	s := UIASession{ID: id}
	var completed string
	err := q.QueryRowContext(ctx, `SELECT purpose, completed, created_ms FROM userapi_uia_sessions WHERE session_id = $1`, id).
		Scan(&s.Purpose, &completed, &s.CreatedMS)
	if errors.Is(err, sql.ErrNoRows) {
		return UIASession{}, fmt.Errorf("select uia session %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return UIASession{}, fmt.Errorf("select uia session %s: %w", id, err)
	}
	if err := json.Unmarshal([]byte(completed), &s.Completed); err != nil {
		return UIASession{}, fmt.Errorf("select uia session %s: decode stages: %w", id, err)
	}
	return s, nil
}

// UpdateCompleted replaces the session's completed stages with next only if
// they still equal prev (compare-and-swap), and reports whether it did. Two
// clientapi processes completing stages of one session at once cannot then
// lose either stage on PostgreSQL's READ COMMITTED: the loser sees false and
// retries from a fresh Select.
func (UIASessionsTable) UpdateCompleted(ctx context.Context, q sqlutil.Querier, id string, prev, next []string) (bool, error) {
	p, err := encodeStages(prev)
	if err != nil {
		return false, fmt.Errorf("update uia session %s: encode stages: %w", id, err)
	}
	n, err := encodeStages(next)
	if err != nil {
		return false, fmt.Errorf("update uia session %s: encode stages: %w", id, err)
	}
	res, err := q.ExecContext(ctx, `UPDATE userapi_uia_sessions SET completed = $3 WHERE session_id = $1 AND completed = $2`, id, p, n)
	if err != nil {
		return false, fmt.Errorf("update uia session %s: %w", id, err)
	}
	rows, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("update uia session %s: rows affected: %w", id, err)
	}
	return rows == 1, nil
}

// DeleteCreatedBefore removes sessions created before beforeMS (expired
// ones) and returns how many went.
func (UIASessionsTable) DeleteCreatedBefore(ctx context.Context, q sqlutil.Querier, beforeMS int64) (int64, error) {
	res, err := q.ExecContext(ctx, `DELETE FROM userapi_uia_sessions WHERE created_ms < $1`, beforeMS)
	if err != nil {
		return 0, fmt.Errorf("delete uia sessions created before %d: %w", beforeMS, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("delete uia sessions: rows affected: %w", err)
	}
	return n, nil
}
