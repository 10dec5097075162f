package routing

import (
	"context"
	"encoding/json"

	"github.com/axon-hs/axon/internal/sqlutil"
	"github.com/axon-hs/axon/syncapi/internal/streams"
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

// ignoredUsers returns the users the builder's user ignores, as of the
// response's account data position where it can tell: an incremental sync
// finds in the account data changes since its token (read for the
// response anyway, and not at all when the stream did not move) whether
// the list changed, and when it did not keeps the list it had, from the
// cache. Otherwise the list is read; one changed after the response's
// position is then used at once, as it always was.
func (b *builder) ignoredUsers(ctx context.Context, since *streams.Token) (map[string]bool, error) {
	cur := b.cur.Get(streams.AccountData)
	if since != nil && b.ignoredCache != nil {
		lo := since.Get(streams.AccountData)
		ads, err := b.accountDataSince(ctx, lo)
		if err != nil {
			return nil, err
		}
		for _, a := range ads {
			if a.RoomID == "" && a.Type == ignoredUserListType {
				ignored := parseIgnoredUsers(a.Content)
				// Changed after cur: the list at cur is unknown, the latest is used uncached (put ignores it).
				b.ignoredCache.put(b.dev.UserID, a.Position, cur, ignored)
				return ignored, nil
			}
		}
		// No change after lo at all.
		if ignored, ok := b.ignoredCache.get(b.dev.UserID, lo, cur); ok {
			return ignored, nil
		}
	}
	a, _, err := b.db.AccountData.Entry(ctx, b.q, b.dev.UserID, "", ignoredUserListType)
	if err != nil {
		return nil, err
	}
	ignored := parseIgnoredUsers(a.Content)
	if b.ignoredCache != nil {
		// An absent list (position 0) never changed; one changed after cur is
		// not the list at cur, and put leaves it out.
		b.ignoredCache.put(b.dev.UserID, a.Position, cur, ignored)
	}
	return ignored, nil
}
