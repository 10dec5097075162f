package storage

import (
	"context"
	"fmt"

	"github.com/axon-hs/axon/internal/sqlutil"
)

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

// PushActionsTable is userapi_push_actions.
type PushActionsTable struct{}

// NID returns the number of an actions list (JSON), assigning one the
// first time. It is meant for a cache: the number never changes.
func (PushActionsTable) NID(ctx context.Context, q sqlutil.Querier, actions string) (int64, error) {
	nid, err := assignNID(ctx, q, "userapi_push_actions", "actions", actions)
	if err != nil {
		return 0, fmt.Errorf("number push actions %s: %w", actions, err)
	}
	return nid, nil
}
