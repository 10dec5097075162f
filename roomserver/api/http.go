package api

import (
	"context"

	"github.com/axon-hs/axon/internal/rpc"
)

var (
	inputRoomEvents           = rpc.NewMethod[InputRoomEventsRequest, InputRoomEventsResponse]("roomserver.InputRoomEvents")
	queryLatestEventsAndState = rpc.NewMethod[QueryLatestEventsAndStateRequest, QueryLatestEventsAndStateResponse]("roomserver.QueryLatestEventsAndState")
	queryCurrentState         = rpc.NewMethod[QueryCurrentStateRequest, QueryCurrentStateResponse]("roomserver.QueryCurrentState")
)

// Client is the API over HTTP (polylith).
type Client struct{ C *rpc.Client }

func (c Client) InputRoomEvents(ctx context.Context, r InputRoomEventsRequest) (InputRoomEventsResponse, error) {
	return inputRoomEvents.Call(ctx, c.C, r)
}
func (c Client) QueryLatestEventsAndState(ctx context.Context, r QueryLatestEventsAndStateRequest) (QueryLatestEventsAndStateResponse, error) {
	return queryLatestEventsAndState.Call(ctx, c.C, r)
}
func (c Client) QueryCurrentState(ctx context.Context, r QueryCurrentStateRequest) (QueryCurrentStateResponse, error) {
	return queryCurrentState.Call(ctx, c.C, r)
}

// Serve serves impl's methods (polylith).
func Serve(s *rpc.Server, impl API) {
	inputRoomEvents.Handle(s, impl.InputRoomEvents)
	queryLatestEventsAndState.Handle(s, impl.QueryLatestEventsAndState)
	queryCurrentState.Handle(s, impl.QueryCurrentState)
}
