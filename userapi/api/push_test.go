package api

import (
	"encoding/json"
	"strings"
	"testing"
)

// The main timeline's counts are left out of a message without threads
// (they are the total), and messages written before that still read right.
func TestUserCountsMain(t *testing.T) {
	noThreads := UserCounts{UserID: "@a:x", Total: Counts{NotificationCount: 3}}
	b, err := json.Marshal(noThreads)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), `"main"`) {
		t.Errorf("counts without threads carry main: %s", b)
	}
	var back UserCounts
	if err := json.Unmarshal(b, &back); err != nil || back.MainCounts() != (Counts{NotificationCount: 3}) {
		t.Errorf("MainCounts of %s = %+v, %v; want the total", b, back.MainCounts(), err)
	}
	withThread := UserCounts{UserID: "@a:x", Total: Counts{NotificationCount: 3, HighlightCount: 1},
		Main: Counts{NotificationCount: 1}, Threads: map[string]Counts{"$t": {NotificationCount: 2, HighlightCount: 1}}}
	if withThread.MainCounts() != (Counts{NotificationCount: 1}) {
		t.Errorf("MainCounts with a thread = %+v", withThread.MainCounts())
	}
	// Only threads unread: main is zero and must not read as the total.
	onlyThread := UserCounts{Total: Counts{NotificationCount: 2}, Threads: map[string]Counts{"$t": {NotificationCount: 2}}}
	b, _ = json.Marshal(onlyThread)
	back = UserCounts{}
	if err := json.Unmarshal(b, &back); err != nil || back.MainCounts() != (Counts{}) {
		t.Errorf("MainCounts of %s = %+v, %v; want zero", b, back.MainCounts(), err)
	}
	old := `{"user_id":"@a:x","total":{"notification_count":4,"highlight_count":0},"main":{"notification_count":4,"highlight_count":0}}`
	back = UserCounts{}
	if err := json.Unmarshal([]byte(old), &back); err != nil || back.MainCounts() != (Counts{NotificationCount: 4}) {
		t.Errorf("MainCounts of an older message = %+v, %v", back.MainCounts(), err)
	}
}
