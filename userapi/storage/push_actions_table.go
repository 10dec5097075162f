package storage

import "github.com/axon-hs/axon/internal/sqlutil"

// userapi_push_actions holds each distinct list of push actions once: a
// server has a few dozen (the defaults' and the users' own rules'), and a
// notification row refers to its list by number.
func pushActionsSchema(d sqlutil.Dialect) string {
	return `CREATE TABLE userapi_push_actions (
	id      ` + d.ID() + `,
	-- The actions as a JSON array, as the rule gave them.
	actions TEXT NOT NULL UNIQUE
)`
}

const pushActionsFromV1 = `INSERT INTO userapi_push_actions (actions) SELECT DISTINCT actions FROM userapi_notifications`
