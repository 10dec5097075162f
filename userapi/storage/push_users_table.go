package storage

import (
	"context"
	"fmt"

	"github.com/axon-hs/axon/internal/sqlutil"
)

// userapi_push_users numbers the users with notifications (push migration
// 4), so that a notification row and its key carry a small integer rather
// than the localpart: a notified member costs an index entry per message,
// and an integer key took half of PostgreSQL's CPU for it that a text one
// did.
func pushUsersSchema(d sqlutil.Dialect) string {
	return `CREATE TABLE userapi_push_users (
	id        ` + d.ID() + `,
	localpart TEXT NOT NULL UNIQUE
)`
}

const pushUsersFromV3 = `INSERT INTO userapi_push_users (localpart) SELECT DISTINCT localpart FROM userapi_notifications`

// pushUserNID is the number of localpart $n in a statement.
func pushUserNID(n int) string {
	return fmt.Sprintf("(SELECT id FROM userapi_push_users WHERE localpart = $%d)", n)
}

// PushUsersTable is userapi_push_users.
type PushUsersTable struct{}

// NID returns the user's number, assigning one the first time. It is meant
// for a cache: the number of a user never changes.
func (PushUsersTable) NID(ctx context.Context, q sqlutil.Querier, localpart string) (int64, error) {
	nid, err := assignNID(ctx, q, "userapi_push_users", "localpart", localpart)
	if err != nil {
		return 0, fmt.Errorf("number push user %s: %w", localpart, err)
	}
	return nid, nil
}

// NIDs returns the numbers of localparts, assigning the missing ones: one
// statement for those numbered already (a cold cache after a restart, in a
// large room), one more per new user.
func (t PushUsersTable) NIDs(ctx context.Context, q sqlutil.Querier, d sqlutil.Dialect, localparts []string) (map[string]int64, error) {
	out := make(map[string]int64, len(localparts))
	if len(localparts) == 0 {
		return out, nil
	}
	rows, err := q.QueryContext(ctx, `SELECT localpart, id FROM userapi_push_users WHERE `+d.In("localpart", 1), d.List(localparts))
	if err != nil {
		return nil, fmt.Errorf("number %d push users: %w", len(localparts), err)
	}
	defer rows.Close()
	for rows.Next() {
		var l string
		var id int64
		if err := rows.Scan(&l, &id); err != nil {
			return nil, fmt.Errorf("number push users: %w", err)
		}
		out[l] = id
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("number push users: %w", err)
	}
	rows.Close()
	for _, l := range localparts {
		if _, ok := out[l]; !ok {
			if out[l], err = t.NID(ctx, q, l); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}
