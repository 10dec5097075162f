package routing

import (
	"testing"

	"github.com/axon-hs/axon/internal/apierr"
	"github.com/axon-hs/axon/internal/httputil"
)

// FuzzRoomRequestBodies decodes arbitrary bodies into the rooms area's
// request types: every failure must be a Matrix error (M_NOT_JSON or
// M_BAD_JSON), never a panic or a server fault.
func FuzzRoomRequestBodies(f *testing.F) {
	for _, s := range []string{`{}`, `{"user_id":"@a:b","reason":"x"}`, `{"limit":2,"filter":{"generic_search_term":"x","room_types":[null,"m.space"]}}`,
		`{"new_version":"12","additional_creators":["@a:b"]}`, `{"reason":5}`, `[`, `null`, `{"filter":[]}`, `{"room_id":"!a:b"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		targets := []any{&targetBody{}, &reasonBody{}, &publicRoomsRequest{}, &reportBody{}}
		for _, v := range targets {
			err := httputil.Unmarshal(data, v)
			if err == nil {
				continue
			}
			if !apierr.HasCode(err, apierr.CodeNotJSON) && !apierr.HasCode(err, apierr.CodeBadJSON) {
				t.Fatalf("Unmarshal(%q) into %T = %v, want M_NOT_JSON or M_BAD_JSON", data, v, err)
			}
		}
	})
}
