package userapi_test

import (
	"testing"

	"github.com/axon-hs/axon/internal/apierr"
	"github.com/axon-hs/axon/matrix/pushrules"
	"github.com/axon-hs/axon/userapi/api"
)

// TestPushRules edits rules through both transports: errors keep their
// Matrix codes over the wire.
func TestPushRules(t *testing.T) {
	eachTransport(t, func(t *testing.T, a api.API) {
		ctx := t.Context()
		user := "@push_" + transportName(t) + ":" + server
		pat := "cake"
		if _, err := a.PutPushRule(ctx, api.PutPushRuleRequest{UserID: user, Kind: pushrules.KindContent,
			Rule: pushrules.Rule{RuleID: "cake", Pattern: &pat, Actions: []pushrules.Action{pushrules.Notify}}}); err != nil {
			t.Fatalf("PutPushRule = %v", err)
		}
		res, err := a.QueryPushRules(ctx, api.QueryPushRulesRequest{UserID: user})
		if err != nil {
			t.Fatalf("QueryPushRules = %v", err)
		}
		if r, err := res.Global.Find(pushrules.KindContent, "cake"); err != nil || !r.Enabled || *r.Pattern != "cake" {
			t.Fatalf("content rule cake = %+v, %v", r, err)
		}
		if _, err := a.SetPushRuleEnabled(ctx, api.SetPushRuleEnabledRequest{UserID: user, Kind: pushrules.KindOverride,
			RuleID: ".m.rule.master", Enabled: true}); err != nil {
			t.Fatalf("SetPushRuleEnabled(master) = %v", err)
		}
		res, _ = a.QueryPushRules(ctx, api.QueryPushRulesRequest{UserID: user})
		if !res.Global.Override[0].Enabled {
			t.Errorf("master not enabled after SetPushRuleEnabled")
		}
		_, err = a.DeletePushRule(ctx, api.DeletePushRuleRequest{UserID: user, Kind: pushrules.KindContent, RuleID: "nope"})
		wantCode(t, "DeletePushRule(missing)", err, apierr.CodeNotFound)
		_, err = a.PutPushRule(ctx, api.PutPushRuleRequest{UserID: user, Kind: pushrules.KindOverride, Before: "nope",
			Rule: pushrules.Rule{RuleID: "x", Actions: []pushrules.Action{}}})
		wantCode(t, "PutPushRule(before missing)", err, apierr.CodeUnknown)
		_, err = a.QueryNotifications(ctx, api.QueryNotificationsRequest{UserID: user, From: "x"})
		wantCode(t, "QueryNotifications(bad from)", err, apierr.CodeInvalidParam)
		n, err := a.QueryNotifications(ctx, api.QueryNotificationsRequest{UserID: user})
		if err != nil || len(n.Notifications) != 0 {
			t.Errorf("QueryNotifications = %+v, %v", n, err)
		}

		p := api.Pusher{PushKey: "k", Kind: "http", AppID: "app", AppDisplayName: "A", DeviceDisplayName: "D", Lang: "en",
			Data: []byte(`{"url":"https://push.example/_matrix/push/v1/notify"}`)}
		other := "@push2_" + transportName(t) + ":" + server
		for _, u := range []string{other, user} {
			if _, err := a.SetPusher(ctx, api.SetPusherRequest{UserID: u, Pusher: p}); err != nil {
				t.Fatalf("SetPusher(%s) = %v", u, err)
			}
		}
		// Without append, the same (app_id, pushkey) left the other user.
		if ps, err := a.QueryPushers(ctx, api.QueryPushersRequest{UserID: other}); err != nil || len(ps.Pushers) != 0 {
			t.Errorf("other's pushers = %+v, %v; want none", ps, err)
		}
		if ps, err := a.QueryPushers(ctx, api.QueryPushersRequest{UserID: user}); err != nil || len(ps.Pushers) != 1 {
			t.Errorf("QueryPushers = %+v, %v", ps, err)
		}
		if _, err := a.SetPusher(ctx, api.SetPusherRequest{UserID: user, Pusher: p, Delete: true}); err != nil {
			t.Fatalf("SetPusher(delete) = %v", err)
		}
		if ps, _ := a.QueryPushers(ctx, api.QueryPushersRequest{UserID: user}); len(ps.Pushers) != 0 {
			t.Errorf("pushers after delete = %+v", ps)
		}
	})
}
