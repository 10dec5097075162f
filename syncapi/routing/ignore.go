package routing

import (
	"context"
	"encoding/json"

	"github.com/axon-hs/axon/internal/sqlutil"
	"github.com/axon-hs/axon/syncapi/storage"
)

// ignoredUserListType is the global account data listing the users whose
// events a user does not want (client-server API "Ignoring Users").
const ignoredUserListType = "m.ignored_user_list"

// ignoredUsers returns the users userID ignores: the keys of
// ignored_users in its m.ignored_user_list account data. Content that is
// not of that shape ignores nobody.
func (s *Sync) ignoredUsers(ctx context.Context, userID string) (map[string]bool, error) {
	return loadIgnored(ctx, s.db, s.db.DB.Reader(), userID)
}

// parseIgnoredUsers reads the users of m.ignored_user_list content.
func parseIgnoredUsers(content []byte) map[string]bool {
	var c struct {
		IgnoredUsers map[string]json.RawMessage `json:"ignored_users"`
	}
	if len(content) == 0 || json.Unmarshal(content, &c) != nil || len(c.IgnoredUsers) == 0 {
		return nil
	}
	out := make(map[string]bool, len(c.IgnoredUsers))
	for u := range c.IgnoredUsers {
		out[u] = true
	}
	return out
}

// loadIgnored reads a user's ignored users from storage.
func loadIgnored(ctx context.Context, db *storage.Storage, q sqlutil.Querier, userID string) (map[string]bool, error) {
	c, err := db.AccountData.Get(ctx, q, userID, "", ignoredUserListType)
	if err != nil {
		return nil, err
	}
	return parseIgnoredUsers(c), nil
}
