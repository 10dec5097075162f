package storage

import (
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
