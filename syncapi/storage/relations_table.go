package storage

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/axon-hs/axon/internal/sqlutil"
	"github.com/axon-hs/axon/syncapi/internal/streams"
)

func relationsSchema(sqlutil.Dialect) string {
	return `CREATE TABLE syncapi_relations (
	-- The child: the event whose content.m.relates_to names a parent.
	event_id   TEXT PRIMARY KEY,
	room_id    TEXT NOT NULL,
	-- The parent (m.relates_to.event_id); it may be unknown to the syncapi.
	relates_to TEXT NOT NULL,
	rel_type   TEXT NOT NULL,
	-- The child's type, sender, origin_server_ts and PDU position, so that
	-- aggregations and pages read this table alone.
	type       TEXT NOT NULL,
	sender     TEXT NOT NULL,
	ts         BIGINT NOT NULL,
	position   BIGINT NOT NULL
)`
}

// Children of a parent by type in position order (pages, aggregations).
func relationsParentIndex(sqlutil.Dialect) string {
	return `CREATE INDEX syncapi_relations_parent ON syncapi_relations (relates_to, rel_type, position)`
}

// A room's threads by their latest reply.
func relationsRoomIndex(sqlutil.Dialect) string {
	return `CREATE INDEX syncapi_relations_room ON syncapi_relations (room_id, rel_type, position)`
}

// Relation is one child → parent relationship.
type Relation struct {
	EventID   string
	RoomID    string
	RelatesTo string
	RelType   string
	Type      string
	Sender    string
	TS        int64
	Position  streams.Position
}

// The relation types the server aggregates.
const (
	RelReplace   = "m.replace"
	RelThread    = "m.thread"
	RelReference = "m.reference"
)

// RelationsTable is syncapi_relations: every event with a
// content.m.relates_to that has a rel_type and an event_id.
type RelationsTable struct{ d sqlutil.Dialect }

// Insert records a relation; recording it twice is a no-op.
func (t RelationsTable) Insert(ctx context.Context, q sqlutil.Querier, r Relation) error {
	_, err := q.ExecContext(ctx, `INSERT INTO syncapi_relations (event_id, room_id, relates_to, rel_type, type, sender, ts, position)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (event_id) DO NOTHING`,
		r.EventID, r.RoomID, r.RelatesTo, r.RelType, r.Type, r.Sender, r.TS, r.Position)
	if err != nil {
		return fmt.Errorf("insert relation %s → %s: %w", r.EventID, r.RelatesTo, err)
	}
	return nil
}

// Delete forgets the relation of a child (it was redacted: the relationship
// is broken).
func (t RelationsTable) Delete(ctx context.Context, q sqlutil.Querier, eventID string) error {
	if _, err := q.ExecContext(ctx, `DELETE FROM syncapi_relations WHERE event_id = $1`, eventID); err != nil {
		return fmt.Errorf("delete relation of %s: %w", eventID, err)
	}
	return nil
}

// ChildrenQuery selects the children of a parent, one page.
type ChildrenQuery struct {
	RoomID  string
	Parent  string
	RelType string // "" for any
	Type    string // "" for any
	// Backwards pages newest first from position From down (From included);
	// forwards pages oldest first from after From. To bounds the other end
	// (excluded when backwards: positions <= To are not returned; included
	// forwards). Zero means unbounded.
	Backwards bool
	From, To  streams.Position
	Limit     int
	// Depth > 1 also returns children of children, up to that many levels
	// (the relation type filters only the returned events, not the path).
	Depth int
}

// Children returns one page of a parent's children in the room as full
// events, in the page's order.
func (t RelationsTable) Children(ctx context.Context, q sqlutil.Querier, c ChildrenQuery) ([]Event, error) {
	depth := max(c.Depth, 1)
	var conds []string
	args := []any{c.Parent, c.RoomID, depth}
	add := func(cond string, v any) {
		args = append(args, v)
		conds = append(conds, fmt.Sprintf(cond, len(args)))
	}
	if c.RelType != "" {
		add("t.rel_type = $%d", c.RelType)
	}
	if c.Type != "" {
		add("t.type = $%d", c.Type)
	}
	order := "ASC"
	if c.Backwards {
		order = "DESC"
		if c.From > 0 {
			add("t.position <= $%d", c.From)
		}
		if c.To > 0 {
			add("t.position > $%d", c.To)
		}
	} else {
		if c.From > 0 {
			add("t.position > $%d", c.From)
		}
		if c.To > 0 {
			add("t.position <= $%d", c.To)
		}
	}
	where := ""
	if len(conds) > 0 {
		where = " AND " + strings.Join(conds, " AND ")
	}
	args = append(args, c.Limit)
	// UNION (not ALL) and the depth bound keep a cycle of relations finite.
	query := `WITH RECURSIVE tree (event_id, rel_type, type, position, depth) AS (
		SELECT event_id, rel_type, type, position, 1 FROM syncapi_relations WHERE relates_to = $1 AND room_id = $2
		UNION
		SELECT r.event_id, r.rel_type, r.type, r.position, tree.depth + 1 FROM syncapi_relations r
		JOIN tree ON r.relates_to = tree.event_id WHERE r.room_id = $2 AND tree.depth < $3
	)
	SELECT ` + eventColumns + ` FROM syncapi_output_room_events WHERE event_id IN (
		SELECT t.event_id FROM tree t WHERE t.event_id <> $1` + where + `)
	ORDER BY position ` + order + fmt.Sprintf(` LIMIT $%d`, len(args))
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("select children of %s: %w", c.Parent, err)
	}
	evs, err := scanEvents(rows)
	if err != nil {
		return nil, fmt.Errorf("children of %s: %w", c.Parent, err)
	}
	return evs, nil
}

// RelTypes returns which relation types each of the parents has children
// of up to upTo: the one read aggregations need when nothing relates to the
// events being served, which is most of the time.
func (t RelationsTable) RelTypes(ctx context.Context, q sqlutil.Querier, parents []string, upTo streams.Position) (map[string][]string, error) {
	if len(parents) == 0 {
		return nil, nil
	}
	rows, err := q.QueryContext(ctx, `SELECT DISTINCT relates_to, rel_type FROM syncapi_relations
		WHERE `+t.d.In("relates_to", 1)+` AND position <= $2`, t.d.List(parents), upTo)
	if err != nil {
		return nil, fmt.Errorf("select relation types of %d events: %w", len(parents), err)
	}
	defer rows.Close()
	out := map[string][]string{}
	for rows.Next() {
		var p, rt string
		if err := rows.Scan(&p, &rt); err != nil {
			return nil, fmt.Errorf("scan relation type: %w", err)
		}
		out[p] = append(out[p], rt)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read relation types: %w", err)
	}
	return out, nil
}

// EditCandidate is a possible m.replace of a parent: an edit by the
// parent's sender, of the parent's type, of a parent that is not a state
// event nor an edit itself (the spec's validity rules the table can check).
type EditCandidate struct {
	Parent  string
	EventID string
	TS      int64
}

// Edits returns the valid edit candidates of the parents up to position
// upTo; the caller picks the latest of each (origin_server_ts, then the
// largest event id by bytes, which SQL collations do not agree on).
func (t RelationsTable) Edits(ctx context.Context, q sqlutil.Querier, parents []string, upTo streams.Position) ([]EditCandidate, error) {
	if len(parents) == 0 {
		return nil, nil
	}
	rows, err := q.QueryContext(ctx, `SELECT r.relates_to, r.event_id, r.ts FROM syncapi_relations r
		JOIN syncapi_output_room_events p ON p.event_id = r.relates_to
		WHERE `+t.d.In("r.relates_to", 1)+` AND r.rel_type = 'm.replace' AND r.position <= $2
		AND p.room_id = r.room_id AND p.sender = r.sender AND p.type = r.type AND p.state_key IS NULL
		AND NOT EXISTS (SELECT 1 FROM syncapi_relations pr WHERE pr.event_id = p.event_id AND pr.rel_type = 'm.replace')`,
		t.d.List(parents), upTo)
	if err != nil {
		return nil, fmt.Errorf("select edits of %d events: %w", len(parents), err)
	}
	defer rows.Close()
	var out []EditCandidate
	for rows.Next() {
		var c EditCandidate
		if err := rows.Scan(&c.Parent, &c.EventID, &c.TS); err != nil {
			return nil, fmt.Errorf("scan edit: %w", err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read edits: %w", err)
	}
	return out, nil
}

// ThreadSummary is what the m.thread aggregation of a root needs.
type ThreadSummary struct {
	Root        string
	Count       int
	Latest      string // the event id of the latest reply
	LatestPos   streams.Position
	Participant bool // userID sent a reply
}

// Threads summarises the threads rooted at roots up to position upTo.
// Replies from the ignored senders are left out.
func (t RelationsTable) Threads(ctx context.Context, q sqlutil.Querier, roots []string, userID string, ignored []string, upTo streams.Position) ([]ThreadSummary, error) {
	if len(roots) == 0 {
		return nil, nil
	}
	if ignored == nil {
		ignored = []string{} // a NULL array would match nothing on PostgreSQL
	}
	rows, err := q.QueryContext(ctx, `SELECT r.relates_to, COUNT(*), MAX(r.position),
		MAX(CASE WHEN r.sender = $2 THEN 1 ELSE 0 END),
		(SELECT l.event_id FROM syncapi_relations l WHERE l.relates_to = r.relates_to AND l.rel_type = 'm.thread'
			AND l.position <= $3 AND NOT (`+t.d.In("l.sender", 4)+`) ORDER BY l.position DESC LIMIT 1)
		FROM syncapi_relations r WHERE `+t.d.In("r.relates_to", 1)+` AND r.rel_type = 'm.thread' AND r.position <= $3
		AND NOT (`+t.d.In("r.sender", 4)+`) GROUP BY r.relates_to`, t.d.List(roots), userID, upTo, t.d.List(ignored))
	if err != nil {
		return nil, fmt.Errorf("select threads of %d events: %w", len(roots), err)
	}
	return scanThreads(rows)
}

func scanThreads(rows *sql.Rows) ([]ThreadSummary, error) {
	defer rows.Close()
	var out []ThreadSummary
	for rows.Next() {
		var s ThreadSummary
		var mine int
		if err := rows.Scan(&s.Root, &s.Count, &s.LatestPos, &mine, &s.Latest); err != nil {
			return nil, fmt.Errorf("scan thread: %w", err)
		}
		s.Participant = mine == 1
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read threads: %w", err)
	}
	return out, nil
}

// References returns the children of the parents by m.reference up to
// upTo, parent → child ids in position order.
func (t RelationsTable) References(ctx context.Context, q sqlutil.Querier, parents []string, upTo streams.Position) (map[string][]string, error) {
	if len(parents) == 0 {
		return nil, nil
	}
	rows, err := q.QueryContext(ctx, `SELECT relates_to, event_id FROM syncapi_relations
		WHERE `+t.d.In("relates_to", 1)+` AND rel_type = 'm.reference' AND position <= $2 ORDER BY position`,
		t.d.List(parents), upTo)
	if err != nil {
		return nil, fmt.Errorf("select references of %d events: %w", len(parents), err)
	}
	defer rows.Close()
	out := map[string][]string{}
	for rows.Next() {
		var p, c string
		if err := rows.Scan(&p, &c); err != nil {
			return nil, fmt.Errorf("scan reference: %w", err)
		}
		out[p] = append(out[p], c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read references: %w", err)
	}
	return out, nil
}

// RoomThreadsQuery selects a page of a room's threads.
type RoomThreadsQuery struct {
	RoomID string
	UserID string
	// Participated keeps the threads whose root or a reply userID sent.
	Participated bool
	// Before keeps threads whose latest reply is at or below it (0: all).
	Before streams.Position
	UpTo   streams.Position
	Limit  int
}

// RoomThreads returns a page of a room's threads, latest reply first. A
// thread counts only if its root is stored in the room.
func (t RelationsTable) RoomThreads(ctx context.Context, q sqlutil.Querier, rq RoomThreadsQuery) ([]ThreadSummary, error) {
	before := rq.Before
	if before <= 0 || before > rq.UpTo {
		before = rq.UpTo
	}
	query := `SELECT r.relates_to, COUNT(*), MAX(r.position), MAX(CASE WHEN r.sender = $2 THEN 1 ELSE 0 END),
		(SELECT l.event_id FROM syncapi_relations l WHERE l.relates_to = r.relates_to AND l.rel_type = 'm.thread'
			AND l.position <= $3 ORDER BY l.position DESC LIMIT 1)
		FROM syncapi_relations r JOIN syncapi_output_room_events p ON p.event_id = r.relates_to AND p.room_id = r.room_id
		WHERE r.room_id = $1 AND r.rel_type = 'm.thread' AND r.position <= $3
		GROUP BY r.relates_to, p.sender HAVING MAX(r.position) <= $4`
	if rq.Participated {
		query += ` AND (p.sender = $2 OR MAX(CASE WHEN r.sender = $2 THEN 1 ELSE 0 END) = 1)`
	}
	rows, err := q.QueryContext(ctx, query+` ORDER BY MAX(r.position) DESC LIMIT $5`,
		rq.RoomID, rq.UserID, rq.UpTo, before, rq.Limit)
	if err != nil {
		return nil, fmt.Errorf("select threads of room %s: %w", rq.RoomID, err)
	}
	return scanThreads(rows)
}

// indexedFields are what IndexEvent reads of a PDU.
type indexedFields struct {
	OriginServerTS int64 `json:"origin_server_ts"`
	Content        struct {
		RelatesTo *struct {
			RelType any `json:"rel_type"`
			EventID any `json:"event_id"`
		} `json:"m.relates_to"`
		NewContent map[string]any `json:"m.new_content"`
		Body       any            `json:"body"`
		Name       any            `json:"name"`
		Topic      any            `json:"topic"`
		MTopic     *struct {
			Text []struct {
				Mimetype any `json:"mimetype"`
				Body     any `json:"body"`
			} `json:"m.text"`
		} `json:"m.topic"`
	} `json:"content"`
}

// IndexEvent records what a newly stored event adds to the relations and
// the search index: its relation (content.m.relates_to with a rel_type and
// an event_id) and its searchable text. Events whose content does not have
// the expected shape add nothing; an m.replace without m.new_content, or
// from a state event, is not a valid replacement and is ignored, as the
// spec asks. Indexing an event twice is a no-op.
func (s *Storage) IndexEvent(ctx context.Context, q sqlutil.Querier, e Event) error {
	var f indexedFields
	if json.Unmarshal(e.JSON, &f) != nil {
		return nil
	}
	if rt := f.Content.RelatesTo; rt != nil {
		relType, _ := rt.RelType.(string)
		parent, _ := rt.EventID.(string)
		valid := relType != "" && parent != "" && parent != e.EventID
		if relType == RelReplace && (f.Content.NewContent == nil || e.StateKey != nil) {
			valid = false
		}
		if valid {
			// Parent and child must share the room; a parent not stored (yet) is
			// given the benefit of the doubt, and the reads that serve children
			// check the room again.
			var parentRoom string
			err := q.QueryRowContext(ctx, `SELECT room_id FROM syncapi_output_room_events WHERE event_id = $1`, parent).Scan(&parentRoom)
			if err != nil && !errors.Is(err, sql.ErrNoRows) {
				return fmt.Errorf("look up parent %s of %s: %w", parent, e.EventID, err)
			}
			valid = parentRoom == "" || parentRoom == e.RoomID
		}
		if valid {
			err := s.Relations.Insert(ctx, q, Relation{EventID: e.EventID, RoomID: e.RoomID, RelatesTo: parent,
				RelType: relType, Type: e.Type, Sender: e.Sender, TS: f.OriginServerTS, Position: e.Position})
			if err != nil {
				return err
			}
		}
	}
	text := searchText(e.Type, &f)
	if text == "" {
		return nil
	}
	return s.Search.Insert(ctx, q, e, text)
}

// PlainText returns the searchable text of an event that relates to no
// other (content.m.relates_to absent): indexing it is only adding that
// text, which IndexPlain does for many events at once.
func PlainText(e Event) (text string, plain bool) {
	var f indexedFields
	if json.Unmarshal(e.JSON, &f) != nil {
		return "", true // indexes nothing, as in IndexEvent
	}
	if f.Content.RelatesTo != nil {
		return "", false
	}
	return searchText(e.Type, &f), true
}

// IndexPlain indexes events PlainText found plain: the rows with text.
func (s *Storage) IndexPlain(ctx context.Context, q sqlutil.Querier, rows []SearchRow) error {
	withText := rows[:0:0]
	for _, r := range rows {
		if r.Text != "" {
			withText = append(withText, r)
		}
	}
	return s.Search.InsertMany(ctx, q, withText)
}

// searchText is the text /search finds an event by: a message's body, a
// room's name or topic ("" for the rest).
func searchText(typ string, f *indexedFields) string {
	var text []string
	add := func(v any) {
		if s, ok := v.(string); ok && s != "" {
			text = append(text, s)
		}
	}
	switch typ {
	case "m.room.message":
		add(f.Content.Body)
	case "m.room.name":
		add(f.Content.Name)
	case "m.room.topic":
		add(f.Content.Topic)
		if f.Content.MTopic != nil {
			for _, t := range f.Content.MTopic.Text {
				if m, _ := t.Mimetype.(string); m == "" || m == "text/plain" {
					add(t.Body)
				}
			}
		}
	}
	return strings.Join(text, "\n")
}

// UnindexEvent forgets a redacted event: its relation (the relationship
// is broken) and its text.
func (s *Storage) UnindexEvent(ctx context.Context, q sqlutil.Querier, eventID string) error {
	if err := s.Relations.Delete(ctx, q, eventID); err != nil {
		return err
	}
	return s.Search.Delete(ctx, q, eventID)
}

// indexStoredEvents is the data part of migration 4: the relations and the
// text of the events stored before it.
func indexStoredEvents(ctx context.Context, tx *sql.Tx, d sqlutil.Dialect) error {
	s := &Storage{Relations: RelationsTable{d}, Search: SearchTable{d}}
	var after streams.Position
	for {
		rows, err := tx.QueryContext(ctx, `SELECT `+eventColumns+` FROM syncapi_output_room_events
			WHERE position > $1 ORDER BY position LIMIT 1000`, after)
		if err != nil {
			return fmt.Errorf("read events to index: %w", err)
		}
		evs, err := scanEvents(rows)
		if err != nil {
			return fmt.Errorf("read events to index: %w", err)
		}
		if len(evs) == 0 {
			return nil
		}
		for _, e := range evs {
			if err := s.IndexEvent(ctx, tx, e); err != nil {
				return err
			}
		}
		after = evs[len(evs)-1].Position
	}
}
