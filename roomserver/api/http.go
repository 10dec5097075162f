package api

import (
	"context"

	"github.com/axon-hs/axon/internal/rpc"
)

var (
	inputRoomEvents           = rpc.NewMethod[InputRoomEventsRequest, InputRoomEventsResponse]("roomserver.InputRoomEvents")
	queryLatestEventsAndState = rpc.NewMethod[QueryLatestEventsAndStateRequest, QueryLatestEventsAndStateResponse]("roomserver.QueryLatestEventsAndState")
	queryCurrentState         = rpc.NewMethod[QueryCurrentStateRequest, QueryCurrentStateResponse]("roomserver.QueryCurrentState")
	queryMembership           = rpc.NewMethod[QueryMembershipRequest, QueryMembershipResponse]("roomserver.QueryMembership")
	queryRoomsForUser         = rpc.NewMethod[QueryRoomsForUserRequest, QueryRoomsForUserResponse]("roomserver.QueryRoomsForUser")
	queryStateForUser         = rpc.NewMethod[QueryStateForUserRequest, QueryStateForUserResponse]("roomserver.QueryStateForUser")
	queryEvents               = rpc.NewMethod[QueryEventsRequest, QueryEventsResponse]("roomserver.QueryEvents")
	queryTransaction          = rpc.NewMethod[QueryTransactionRequest, QueryTransactionResponse]("roomserver.QueryTransaction")
	performForget             = rpc.NewMethod[PerformForgetRequest, PerformForgetResponse]("roomserver.PerformForget")
	setRoomAlias              = rpc.NewMethod[SetRoomAliasRequest, SetRoomAliasResponse]("roomserver.SetRoomAlias")
	getRoomAlias              = rpc.NewMethod[GetRoomAliasRequest, GetRoomAliasResponse]("roomserver.GetRoomAlias")
	removeRoomAlias           = rpc.NewMethod[RemoveRoomAliasRequest, RemoveRoomAliasResponse]("roomserver.RemoveRoomAlias")
	queryAliasesForRoom       = rpc.NewMethod[QueryAliasesForRoomRequest, QueryAliasesForRoomResponse]("roomserver.QueryAliasesForRoom")
	setRoomVisibility         = rpc.NewMethod[SetRoomVisibilityRequest, SetRoomVisibilityResponse]("roomserver.SetRoomVisibility")
	queryRoomVisibility       = rpc.NewMethod[QueryRoomVisibilityRequest, QueryRoomVisibilityResponse]("roomserver.QueryRoomVisibility")
	queryPublicRooms          = rpc.NewMethod[QueryPublicRoomsRequest, QueryPublicRoomsResponse]("roomserver.QueryPublicRooms")
	performReport             = rpc.NewMethod[PerformReportRequest, PerformReportResponse]("roomserver.PerformReport")
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
func (c Client) QueryMembership(ctx context.Context, r QueryMembershipRequest) (QueryMembershipResponse, error) {
	return queryMembership.Call(ctx, c.C, r)
}
func (c Client) QueryRoomsForUser(ctx context.Context, r QueryRoomsForUserRequest) (QueryRoomsForUserResponse, error) {
	return queryRoomsForUser.Call(ctx, c.C, r)
}
func (c Client) QueryStateForUser(ctx context.Context, r QueryStateForUserRequest) (QueryStateForUserResponse, error) {
	return queryStateForUser.Call(ctx, c.C, r)
}
func (c Client) QueryEvents(ctx context.Context, r QueryEventsRequest) (QueryEventsResponse, error) {
	return queryEvents.Call(ctx, c.C, r)
}
func (c Client) QueryTransaction(ctx context.Context, r QueryTransactionRequest) (QueryTransactionResponse, error) {
	return queryTransaction.Call(ctx, c.C, r)
}
func (c Client) PerformForget(ctx context.Context, r PerformForgetRequest) (PerformForgetResponse, error) {
	return performForget.Call(ctx, c.C, r)
}
func (c Client) SetRoomAlias(ctx context.Context, r SetRoomAliasRequest) (SetRoomAliasResponse, error) {
	return setRoomAlias.Call(ctx, c.C, r)
}
func (c Client) GetRoomAlias(ctx context.Context, r GetRoomAliasRequest) (GetRoomAliasResponse, error) {
	return getRoomAlias.Call(ctx, c.C, r)
}
func (c Client) RemoveRoomAlias(ctx context.Context, r RemoveRoomAliasRequest) (RemoveRoomAliasResponse, error) {
	return removeRoomAlias.Call(ctx, c.C, r)
}
func (c Client) QueryAliasesForRoom(ctx context.Context, r QueryAliasesForRoomRequest) (QueryAliasesForRoomResponse, error) {
	return queryAliasesForRoom.Call(ctx, c.C, r)
}
func (c Client) SetRoomVisibility(ctx context.Context, r SetRoomVisibilityRequest) (SetRoomVisibilityResponse, error) {
	return setRoomVisibility.Call(ctx, c.C, r)
}
func (c Client) QueryRoomVisibility(ctx context.Context, r QueryRoomVisibilityRequest) (QueryRoomVisibilityResponse, error) {
	return queryRoomVisibility.Call(ctx, c.C, r)
}
func (c Client) QueryPublicRooms(ctx context.Context, r QueryPublicRoomsRequest) (QueryPublicRoomsResponse, error) {
	return queryPublicRooms.Call(ctx, c.C, r)
}
func (c Client) PerformReport(ctx context.Context, r PerformReportRequest) (PerformReportResponse, error) {
	return performReport.Call(ctx, c.C, r)
}

// Serve serves impl's methods (polylith).
func Serve(s *rpc.Server, impl API) {
	inputRoomEvents.Handle(s, impl.InputRoomEvents)
	queryLatestEventsAndState.Handle(s, impl.QueryLatestEventsAndState)
	queryCurrentState.Handle(s, impl.QueryCurrentState)
	queryMembership.Handle(s, impl.QueryMembership)
	queryRoomsForUser.Handle(s, impl.QueryRoomsForUser)
	queryStateForUser.Handle(s, impl.QueryStateForUser)
	queryEvents.Handle(s, impl.QueryEvents)
	queryTransaction.Handle(s, impl.QueryTransaction)
	performForget.Handle(s, impl.PerformForget)
	setRoomAlias.Handle(s, impl.SetRoomAlias)
	getRoomAlias.Handle(s, impl.GetRoomAlias)
	removeRoomAlias.Handle(s, impl.RemoveRoomAlias)
	queryAliasesForRoom.Handle(s, impl.QueryAliasesForRoom)
	setRoomVisibility.Handle(s, impl.SetRoomVisibility)
	queryRoomVisibility.Handle(s, impl.QueryRoomVisibility)
	queryPublicRooms.Handle(s, impl.QueryPublicRooms)
	performReport.Handle(s, impl.PerformReport)
}
