package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/axon-hs/axon/internal/sqlutil"
)

// pushMigrations is the push schema history, a list of its own (component
// "userapi_push") beside the accounts' list; released entries never change.
var pushMigrations = []sqlutil.Migration{
	{Version: 1, Name: "push rules, pushers, notifications, counts", Up: sqlutil.Exec(
		sqlutil.Static(pushRulesSchema),
		sqlutil.Static(pushersSchema), sqlutil.Static(pushersKeyIndex),
		sqlutil.Static(pushEventsSchema),
		notificationsSchema, sqlutil.Static(notificationsUserIndex), sqlutil.Static(notificationsRoomIndex),
		sqlutil.Static(notificationCountsSchema),
	)},
	{Version: 2, Name: "lean notifications: room and actions ids, one row per notified user", Up: sqlutil.Exec(
		pushRoomsSchema, pushActionsSchema,
		sqlutil.Static(pushRoomsFromV1), sqlutil.Static(pushActionsFromV1),
		sqlutil.Static(notificationsV2Schema), sqlutil.Static(notificationsFromV1),
		sqlutil.Static(`DROP TABLE userapi_notifications`),
		sqlutil.Static(`ALTER TABLE userapi_notifications_v2 RENAME TO userapi_notifications`),
		sqlutil.Static(notificationsUserSeqIndex), sqlutil.Static(pushEventsSeqIndex),
		notificationCountsV2Schema, sqlutil.Static(notificationCountsFromV1),
		sqlutil.Static(`DROP TABLE userapi_notification_counts`),
		sqlutil.Static(`ALTER TABLE userapi_notification_counts_v2 RENAME TO userapi_notification_counts`),
		sqlutil.Static(notificationCountsThreadsIndex),
	)},
	{Version: 3, Name: "notifications keyed by user and sequence (SQLite)", Up: notificationsRekey},
	{Version: 4, Name: "notifications keyed by user number and sequence", Up: notificationsByUser},
}

// PushTables are the tables of push.
type PushTables struct {
	Rules    PushRulesTable
	Pushers  PushersTable
	Events   PushEventsTable
	Notifs   NotificationsTable
	Counts   NotificationCountsTable
	Rooms    NumberTable // userapi_push_rooms
	Actions  NumberTable // userapi_push_actions
	Users    NumberTable // userapi_push_users
	migrated bool
}

// OpenPush applies the push migrations to db and returns its tables.
func OpenPush(ctx context.Context, db *sqlutil.DB) (PushTables, error) {
	if err := sqlutil.Migrate(ctx, db, "userapi_push", pushMigrations); err != nil {
		return PushTables{}, fmt.Errorf("userapi push migrations: %w", err)
	}
	return PushTables{Pushers: PushersTable{d: db.Dialect, changes: changeCounter(db, "pushers")},
		Rules: PushRulesTable{changes: changeCounter(db, "push_rules")}, Counts: NotificationCountsTable{d: db.Dialect},
		Notifs: NotificationsTable{d: db.Dialect}, migrated: true,
		Rooms:   NumberTable{db.Dialect, "userapi_push_rooms", "room_id"},
		Actions: NumberTable{db.Dialect, "userapi_push_actions", "actions"},
		Users:   NumberTable{db.Dialect, "userapi_push_users", "localpart"}}, nil
}

// changeCounters holds the change counters of cached tables per database
// and table: the userapi API and push evaluation each open the storage, and
// a change made through one must reach the caches of the other.
var changeCounters sync.Map // changeKey → *atomic.Uint64

type changeKey struct {
	db    *sqlutil.DB
	table string
}

func changeCounter(db *sqlutil.DB, table string) *atomic.Uint64 {
	c, _ := changeCounters.LoadOrStore(changeKey{db, table}, new(atomic.Uint64))
	return c.(*atomic.Uint64)
}

// Migrated reports whether OpenPush made these tables (a zero value has not).
func (p PushTables) Migrated() bool { return p.migrated }

const pushRulesSchema = `CREATE TABLE userapi_push_rules (
	localpart TEXT PRIMARY KEY,
	-- pushrules.UserRules as JSON: the user's own rules and their changes to
	-- the defaults. Defaults are merged on read, so new ones reach everyone.
	rules     TEXT NOT NULL,
	-- version makes read-modify-write a compare and swap.
	version   BIGINT NOT NULL
)`

// PushRulesTable is userapi_push_rules.
type PushRulesTable struct {
	// changes counts successful writes in this process, so that push
	// evaluation, which caches compiled rules, rereads versions only then.
	changes *atomic.Uint64
}

// Generation is the number of rule changes so far in this process.
func (t PushRulesTable) Generation() uint64 {
	if t.changes == nil {
		return 0
	}
	return t.changes.Load()
}

// Select returns the stored rules JSON and its version; a user without a
// row has nil and version 0.
func (PushRulesTable) Select(ctx context.Context, q sqlutil.Querier, localpart string) ([]byte, int64, error) {
	var rules string
	var version int64
	err := q.QueryRowContext(ctx, `SELECT rules, version FROM userapi_push_rules WHERE localpart = $1`, localpart).
		Scan(&rules, &version)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("select push rules of %s: %w", localpart, err)
	}
	return []byte(rules), version, nil
}

// CompareAndSwap stores rules if the row is still at version (0: absent).
// It reports false when someone else changed the rules meanwhile.
func (t PushRulesTable) CompareAndSwap(ctx context.Context, q sqlutil.Querier, localpart string, version int64, rules []byte) (bool, error) {
	res, err := q.ExecContext(ctx, `INSERT INTO userapi_push_rules (localpart, rules, version) VALUES ($1, $2, 1)
		ON CONFLICT (localpart) DO UPDATE SET rules = excluded.rules, version = userapi_push_rules.version + 1
		WHERE userapi_push_rules.version = $3`, localpart, string(rules), version)
	if err != nil {
		return false, fmt.Errorf("store push rules of %s: %w", localpart, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("store push rules of %s: rows affected: %w", localpart, err)
	}
	// Counted after the write: when q is a transaction the caller's commit
	// is still to come, and a cache may refill from the old rules until it
	// rechecks (consumers.rulesRecheck).
	if n == 1 && t.changes != nil {
		t.changes.Add(1)
	}
	return n == 1, nil
}

// SelectVersions returns the rules version of each listed user that has
// stored rules (users without a row are at version 0).
func (t PushRulesTable) SelectVersions(ctx context.Context, q sqlutil.Querier, d sqlutil.Dialect, localparts []string) (map[string]int64, error) {
	rows, err := q.QueryContext(ctx, `SELECT localpart, version FROM userapi_push_rules WHERE `+d.In("localpart", 1), d.List(localparts))
	if err != nil {
		return nil, fmt.Errorf("select push rule versions of %d users: %w", len(localparts), err)
	}
	defer rows.Close()
	out := make(map[string]int64, len(localparts))
	for rows.Next() {
		var l string
		var v int64
		if err := rows.Scan(&l, &v); err != nil {
			return nil, fmt.Errorf("select push rule versions: %w", err)
		}
		out[l] = v
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("select push rule versions: %w", err)
	}
	return out, nil
}
