package storage

// The full-text index of /search. Unlike every other table it is written in
// two dialects: SQLite's FTS5 (compiled into modernc.org/sqlite) and
// PostgreSQL's tsvector with a GIN index. Both index words as they are
// (FTS5's unicode61 tokenizer, PostgreSQL's 'simple' configuration: lower
// case, no stemming, no stop words), so one query finds the same events on
// both engines, and every term is matched as a word prefix.

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"unicode"

	"github.com/axon-hs/axon/internal/sqlutil"
	"github.com/axon-hs/axon/syncapi/internal/streams"
)

func searchSchema(d sqlutil.Dialect) string {
	if d.Engine == sqlutil.Postgres {
		return `CREATE TABLE syncapi_search (
	-- The event's PDU position (syncapi_output_room_events.position).
	position BIGINT PRIMARY KEY,
	-- The event's room and type, so that a search reads this table alone.
	room_id  TEXT NOT NULL,
	type     TEXT NOT NULL,
	vec      tsvector NOT NULL
)`
	}
	// rowid is the event's PDU position; room_id and type as in PostgreSQL.
	return `CREATE VIRTUAL TABLE syncapi_search USING fts5(text, room_id UNINDEXED, type UNINDEXED, tokenize = 'unicode61')`
}

func searchIndexes(d sqlutil.Dialect) string {
	if d.Engine == sqlutil.Postgres {
		return `CREATE INDEX syncapi_search_vec ON syncapi_search USING GIN (vec)`
	}
	return `SELECT 1` // FTS5 is its own index
}

// searchConfig is PostgreSQL's text search configuration of the index
// and the queries.
const searchConfig = `'simple'`

// SearchKeys maps the keys /search accepts to the event type carrying them.
var SearchKeys = map[string]string{
	"content.body":  "m.room.message",
	"content.name":  "m.room.name",
	"content.topic": "m.room.topic",
}

// SearchTable is syncapi_search: the searchable text of m.room.message
// bodies, room names and topics, by position.
type SearchTable struct{ d sqlutil.Dialect }

// Insert indexes text for the event e; indexing a position twice keeps the
// first.
func (t SearchTable) Insert(ctx context.Context, q sqlutil.Querier, e Event, text string) error {
	return t.InsertMany(ctx, q, []SearchRow{{Event: e, Text: text}})
}

// SearchRow is one event's searchable text.
type SearchRow struct {
	Event Event
	Text  string
}

// InsertMany indexes several events, a statement per insertManyRows of
// them; as with Insert, a position indexed before keeps its text.
func (t SearchTable) InsertMany(ctx context.Context, q sqlutil.Querier, rows []SearchRow) error {
	for len(rows) > 0 {
		n := min(len(rows), insertManyRows)
		var b strings.Builder
		args := make([]any, 0, n*4)
		if t.d.Engine == sqlutil.Postgres {
			b.WriteString(`INSERT INTO syncapi_search (position, vec, room_id, type) VALUES `)
			sqlutil.AppendRows(&b, "(?, to_tsvector("+searchConfig+", ?), ?, ?)", n, 1)
			for _, r := range rows[:n] {
				args = append(args, r.Event.Position, r.Text, r.Event.RoomID, r.Event.Type)
			}
			b.WriteString(` ON CONFLICT (position) DO NOTHING`)
		} else {
			// FTS5 has no ON CONFLICT: only the rows whose position is not
			// indexed yet are taken from the VALUES list.
			b.WriteString(`INSERT INTO syncapi_search (rowid, text, room_id, type) SELECT v.column1, v.column2, v.column3, v.column4 FROM (VALUES `)
			sqlutil.AppendRows(&b, "(?, ?, ?, ?)", n, 1)
			for _, r := range rows[:n] {
				args = append(args, int64(r.Event.Position), r.Text, r.Event.RoomID, r.Event.Type)
			}
			b.WriteString(`) AS v WHERE NOT EXISTS (SELECT 1 FROM syncapi_search WHERE rowid = v.column1)`)
		}
		if _, err := q.ExecContext(ctx, b.String(), args...); err != nil {
			return fmt.Errorf("index %d events: %w", n, err)
		}
		rows = rows[n:]
	}
	return nil
}

// Delete drops an event from the index (it was redacted).
func (t SearchTable) Delete(ctx context.Context, q sqlutil.Querier, eventID string) error {
	col, _, _ := t.parts()
	_, err := q.ExecContext(ctx, `DELETE FROM syncapi_search WHERE `+col+` IN
		(SELECT position FROM syncapi_output_room_events WHERE event_id = $1)`, eventID)
	if err != nil {
		return fmt.Errorf("unindex %s: %w", eventID, err)
	}
	return nil
}

// SearchTerms splits a search term into the words to match: runs of letters
// and digits, lower-cased. Everything else separates words, so no input
// can reach the engines' query syntax.
func SearchTerms(s string) []string {
	var out []string
	seen := map[string]bool{}
	for _, w := range strings.FieldsFunc(s, func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) }) {
		w = strings.ToLower(w)
		if !seen[w] {
			seen[w] = true
			out = append(out, w)
		}
	}
	return out
}

// match is the engine's query for terms: every word, as a prefix.
func (t SearchTable) match(terms []string) string {
	parts := make([]string, len(terms))
	for i, w := range terms {
		if t.d.Engine == sqlutil.Postgres {
			parts[i] = "'" + w + "':*"
		} else {
			parts[i] = `"` + w + `"*`
		}
	}
	if t.d.Engine == sqlutil.Postgres {
		return strings.Join(parts, " & ")
	}
	return strings.Join(parts, " AND ")
}

// SearchQuery is one page of a search.
type SearchQuery struct {
	Terms []string
	Rooms []string
	// Left bounds the matches of the rooms the user left: none after the
	// position given (no need to read what history visibility would drop).
	Left  map[string]streams.Position
	Types []string // event types of the keys searched
	UpTo  streams.Position
	// ByRank orders by relevance (then recency) and pages by Offset;
	// otherwise the newest come first and Before (when > 0) keeps
	// positions below it.
	ByRank bool
	Offset int
	Before streams.Position
	Limit  int
}

// SearchHit is one matching event.
type SearchHit struct {
	Event Event
	Rank  float64
}

// Search returns one page of the events matching sq. The page is read from
// the index alone (matches with their room, type and rank), then its events
// by position: there is no join a planner could start from all the events
// of the rooms (which PostgreSQL did on a table without statistics, reading
// the matches once per event).
func (t SearchTable) Search(ctx context.Context, q sqlutil.Querier, sq SearchQuery) ([]SearchHit, error) {
	if len(sq.Terms) == 0 || len(sq.Rooms) == 0 || len(sq.Types) == 0 {
		return nil, nil
	}
	pos, rank, matchCond := t.parts()
	args := []any{t.match(sq.Terms), t.d.List(sq.Rooms), t.d.List(sq.Types), sq.UpTo, leftJSON(sq.Left)}
	query := `SELECT ` + pos + `, ` + rank + ` FROM syncapi_search WHERE ` + matchCond + ` AND ` + t.filters(pos)
	if !sq.ByRank && sq.Before > 0 {
		args = append(args, sq.Before)
		query += fmt.Sprintf(` AND %s < $%d`, pos, len(args))
	}
	if sq.ByRank {
		query += ` ORDER BY 2 DESC, 1 DESC`
	} else {
		query += ` ORDER BY 1 DESC`
	}
	args = append(args, sq.Limit)
	query += fmt.Sprintf(` LIMIT $%d`, len(args))
	if sq.ByRank {
		args = append(args, sq.Offset)
		query += fmt.Sprintf(` OFFSET $%d`, len(args))
	}
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("search: %w", err)
	}
	var positions []streams.Position
	ranks := map[streams.Position]float64{}
	for rows.Next() {
		var p streams.Position
		var r float64
		if err := rows.Scan(&p, &r); err != nil {
			rows.Close()
			return nil, fmt.Errorf("scan search result: %w", err)
		}
		positions = append(positions, p)
		ranks[p] = r
	}
	err = rows.Err()
	rows.Close()
	if err != nil {
		return nil, fmt.Errorf("read search results: %w", err)
	}
	if len(positions) == 0 {
		return nil, nil
	}
	erows, err := q.QueryContext(ctx, `SELECT `+eventColumns+` FROM syncapi_output_room_events WHERE `+t.d.In("position", 1),
		t.d.List(positions))
	if err != nil {
		return nil, fmt.Errorf("select search results: %w", err)
	}
	evs, err := scanEvents(erows)
	if err != nil {
		return nil, fmt.Errorf("search results: %w", err)
	}
	byPos := make(map[streams.Position]Event, len(evs))
	for _, e := range evs {
		byPos[e.Position] = e
	}
	out := make([]SearchHit, 0, len(positions))
	for _, p := range positions {
		if e, ok := byPos[p]; ok {
			out = append(out, SearchHit{Event: e, Rank: ranks[p]})
		}
	}
	return out, nil
}

// Count returns how many events match (all pages).
func (t SearchTable) Count(ctx context.Context, q sqlutil.Querier, sq SearchQuery) (int, error) {
	if len(sq.Terms) == 0 || len(sq.Rooms) == 0 || len(sq.Types) == 0 {
		return 0, nil
	}
	pos, _, matchCond := t.parts()
	var n int
	err := q.QueryRowContext(ctx, `SELECT COUNT(*) FROM syncapi_search WHERE `+matchCond+` AND `+t.filters(pos),
		t.match(sq.Terms), t.d.List(sq.Rooms), t.d.List(sq.Types), sq.UpTo, leftJSON(sq.Left)).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count search results: %w", err)
	}
	return n, nil
}

// filters are the room ($2), type ($3), position ($4) and left rooms
// ($5, a JSON object of room id → last position) conditions.
func (t SearchTable) filters(pos string) string {
	// Qualified: json_each has a rowid of its own.
	left := `NOT EXISTS (SELECT 1 FROM json_each($5) l WHERE l.key = syncapi_search.room_id AND syncapi_search.` + pos + ` > l.value)`
	if t.d.Engine == sqlutil.Postgres {
		left = `NOT EXISTS (SELECT 1 FROM jsonb_each_text($5::jsonb) l WHERE l.key = syncapi_search.room_id
			AND syncapi_search.` + pos + ` > l.value::bigint)`
	}
	return t.d.In("room_id", 2) + ` AND ` + t.d.In("type", 3) + ` AND ` + pos + ` <= $4 AND ` + left
}

// leftJSON encodes SearchQuery.Left for filters.
func leftJSON(left map[string]streams.Position) string {
	b, err := json.Marshal(left)
	if err != nil || left == nil {
		return "{}"
	}
	return string(b)
}

// parts are the position column, the rank expression (higher is better)
// and the match condition on the query text in $1.
func (t SearchTable) parts() (pos, rank, match string) {
	if t.d.Engine == sqlutil.Postgres {
		return `position`, `ts_rank(vec, to_tsquery(` + searchConfig + `, $1))`, `vec @@ to_tsquery(` + searchConfig + `, $1)`
	}
	// FTS5 wants the table's own name in MATCH and bm25, which is lower for
	// better matches.
	return `rowid`, `-bm25(syncapi_search)`, `syncapi_search MATCH $1`
}
