package api

import (
	"context"

	"github.com/axon-hs/axon/internal/rpc"
)

var (
	queryPushRules     = rpc.NewMethod[QueryPushRulesRequest, QueryPushRulesResponse]("userapi.QueryPushRules")
	putPushRule        = rpc.NewMethod[PutPushRuleRequest, PutPushRuleResponse]("userapi.PutPushRule")
	deletePushRule     = rpc.NewMethod[DeletePushRuleRequest, DeletePushRuleResponse]("userapi.DeletePushRule")
	setPushRuleEnabled = rpc.NewMethod[SetPushRuleEnabledRequest, SetPushRuleEnabledResponse]("userapi.SetPushRuleEnabled")
	setPushRuleActions = rpc.NewMethod[SetPushRuleActionsRequest, SetPushRuleActionsResponse]("userapi.SetPushRuleActions")
	queryPushers       = rpc.NewMethod[QueryPushersRequest, QueryPushersResponse]("userapi.QueryPushers")
	setPusher          = rpc.NewMethod[SetPusherRequest, SetPusherResponse]("userapi.SetPusher")
	queryNotifications = rpc.NewMethod[QueryNotificationsRequest, QueryNotificationsResponse]("userapi.QueryNotifications")
)

func (c Client) QueryPushRules(ctx context.Context, r QueryPushRulesRequest) (QueryPushRulesResponse, error) {
	return queryPushRules.Call(ctx, c.C, r)
}
func (c Client) PutPushRule(ctx context.Context, r PutPushRuleRequest) (PutPushRuleResponse, error) {
	return putPushRule.Call(ctx, c.C, r)
}
func (c Client) DeletePushRule(ctx context.Context, r DeletePushRuleRequest) (DeletePushRuleResponse, error) {
	return deletePushRule.Call(ctx, c.C, r)
}
func (c Client) SetPushRuleEnabled(ctx context.Context, r SetPushRuleEnabledRequest) (SetPushRuleEnabledResponse, error) {
	return setPushRuleEnabled.Call(ctx, c.C, r)
}
func (c Client) SetPushRuleActions(ctx context.Context, r SetPushRuleActionsRequest) (SetPushRuleActionsResponse, error) {
	return setPushRuleActions.Call(ctx, c.C, r)
}
func (c Client) QueryPushers(ctx context.Context, r QueryPushersRequest) (QueryPushersResponse, error) {
	return queryPushers.Call(ctx, c.C, r)
}
func (c Client) SetPusher(ctx context.Context, r SetPusherRequest) (SetPusherResponse, error) {
	return setPusher.Call(ctx, c.C, r)
}
func (c Client) QueryNotifications(ctx context.Context, r QueryNotificationsRequest) (QueryNotificationsResponse, error) {
	return queryNotifications.Call(ctx, c.C, r)
}

// servePush serves the PushAPI methods (one line per method).
func servePush(s *rpc.Server, impl PushAPI) {
	queryPushRules.Handle(s, impl.QueryPushRules)
	putPushRule.Handle(s, impl.PutPushRule)
	deletePushRule.Handle(s, impl.DeletePushRule)
	setPushRuleEnabled.Handle(s, impl.SetPushRuleEnabled)
	setPushRuleActions.Handle(s, impl.SetPushRuleActions)
	queryPushers.Handle(s, impl.QueryPushers)
	setPusher.Handle(s, impl.SetPusher)
	queryNotifications.Handle(s, impl.QueryNotifications)
}
