package api

import (
	"context"

	"github.com/axon-hs/axon/internal/rpc"
)

var queryMembersAt = rpc.NewMethod[QueryMembersAtRequest, QueryMembersAtResponse]("syncapi.QueryMembersAt")

// Client is the API over HTTP (polylith).
type Client struct{ C *rpc.Client }

func (c Client) QueryMembersAt(ctx context.Context, r QueryMembersAtRequest) (QueryMembersAtResponse, error) {
	return queryMembersAt.Call(ctx, c.C, r)
}

// Serve registers every method of a on s.
func Serve(s *rpc.Server, a API) {
	queryMembersAt.Handle(s, a.QueryMembersAt)
}
