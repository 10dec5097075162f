package storage

import (
	"context"
	"fmt"

	"github.com/axon-hs/axon/internal/sqlutil"
)

func reportsSchema(d sqlutil.Dialect) string {
	return `CREATE TABLE roomserver_reports (
	report_nid  ` + d.ID() + `,
	room_id     TEXT NOT NULL,
	-- Empty for a report about the room itself.
	event_id    TEXT NOT NULL,
	reporter_id TEXT NOT NULL,
	reason      TEXT NOT NULL,
	-- The deprecated score of event reports; 0 when not given.
	score       BIGINT NOT NULL DEFAULT 0,
	received_ts BIGINT NOT NULL
)`
}

// Report is a reports row.
type Report struct {
	RoomID, EventID, ReporterID, Reason string
	Score, ReceivedTS                   int64
}

// ReportsTable is roomserver_reports: reports of events and rooms for the
// server's administrators.
type ReportsTable struct{ d sqlutil.Dialect }

// Insert stores a report and returns its id.
func (t ReportsTable) Insert(ctx context.Context, q sqlutil.Querier, r Report) (int64, error) {
	var nid int64
	err := q.QueryRowContext(ctx, `INSERT INTO roomserver_reports (room_id, event_id, reporter_id, reason, score, received_ts)
		VALUES ($1, $2, $3, $4, $5, $6) RETURNING report_nid`, r.RoomID, r.EventID, r.ReporterID, r.Reason, r.Score, r.ReceivedTS).Scan(&nid)
	if err != nil {
		return 0, fmt.Errorf("insert report on %s by %s: %w", r.RoomID, r.ReporterID, err)
	}
	return nid, nil
}

// All lists reports, oldest first.
func (t ReportsTable) All(ctx context.Context, q sqlutil.Querier) ([]Report, error) {
	rows, err := q.QueryContext(ctx, `SELECT room_id, event_id, reporter_id, reason, score, received_ts FROM roomserver_reports ORDER BY report_nid`)
	if err != nil {
		return nil, fmt.Errorf("select reports: %w", err)
	}
	defer rows.Close()
	var out []Report
	for rows.Next() {
		var r Report
		if err := rows.Scan(&r.RoomID, &r.EventID, &r.ReporterID, &r.Reason, &r.Score, &r.ReceivedTS); err != nil {
			return nil, fmt.Errorf("scan report: %w", err)
		}
		out = append(out, r)
	}
	return out, rows.Err()
}
