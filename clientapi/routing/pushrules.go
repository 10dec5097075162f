package routing

import (
	"net/http"
	"strconv"

	"github.com/axon-hs/axon/internal/apierr"
	"github.com/axon-hs/axon/internal/httputil"
	"github.com/axon-hs/axon/matrix/pushrules"
	userapi "github.com/axon-hs/axon/userapi/api"
)

// registerPush adds the push rule, pusher and notification endpoints
// (client-server-api/modules/push.md).
func (rt *Routes) registerPush(mux *http.ServeMux) {
	const pr = v3 + "/pushrules"
	mux.HandleFunc("GET "+pr+"/{$}", rt.authed(rt.getPushRules))
	mux.HandleFunc("GET "+pr+"/global/{$}", rt.authed(rt.getPushRulesGlobal))
	mux.HandleFunc("GET "+pr+"/{scope}/{kind}/{ruleId}", rt.authed(rt.getPushRule))
	mux.HandleFunc("PUT "+pr+"/{scope}/{kind}/{ruleId}", rt.authed(rt.putPushRule))
	mux.HandleFunc("DELETE "+pr+"/{scope}/{kind}/{ruleId}", rt.authed(rt.deletePushRule))
	mux.HandleFunc("GET "+pr+"/{scope}/{kind}/{ruleId}/{attr}", rt.authed(rt.getPushRuleAttr))
	mux.HandleFunc("PUT "+pr+"/{scope}/{kind}/{ruleId}/{attr}", rt.authed(rt.putPushRuleAttr))
	mux.HandleFunc("GET "+v3+"/pushers", rt.authed(rt.getPushers))
	mux.HandleFunc("POST "+v3+"/pushers/set", rt.authed(rt.setPusher))
	mux.HandleFunc("GET "+v3+"/notifications", rt.authed(rt.getNotifications))
}

func (rt *Routes) getPushRules(w http.ResponseWriter, r *http.Request, dev userapi.Device) error {
	res, err := rt.users.QueryPushRules(r.Context(), userapi.QueryPushRulesRequest{UserID: dev.UserID})
	if err != nil {
		return err
	}
	return httputil.JSON(w, res)
}

func (rt *Routes) getPushRulesGlobal(w http.ResponseWriter, r *http.Request, dev userapi.Device) error {
	res, err := rt.users.QueryPushRules(r.Context(), userapi.QueryPushRulesRequest{UserID: dev.UserID})
	if err != nil {
		return err
	}
	return httputil.JSON(w, res.Global)
}

// pushRulePath reads {scope}/{kind}/{ruleId}: only the global scope exists.
func pushRulePath(r *http.Request) (kind, ruleID string, err error) {
	if s := r.PathValue("scope"); s != "global" {
		return "", "", apierr.InvalidParam("unknown push rule scope %q: only global exists", s)
	}
	kind, ruleID = r.PathValue("kind"), r.PathValue("ruleId")
	if !pushrules.ValidKind(kind) {
		return "", "", apierr.InvalidParam("unknown push rule kind %q", kind)
	}
	if ruleID == "" {
		return "", "", apierr.InvalidParam("empty rule id")
	}
	return kind, ruleID, nil
}

func (rt *Routes) findPushRule(r *http.Request, dev userapi.Device) (pushrules.Rule, error) {
	kind, id, err := pushRulePath(r)
	if err != nil {
		return pushrules.Rule{}, err
	}
	res, err := rt.users.QueryPushRules(r.Context(), userapi.QueryPushRulesRequest{UserID: dev.UserID})
	if err != nil {
		return pushrules.Rule{}, err
	}
	rule, err := res.Global.Find(kind, id)
	if err != nil {
		return pushrules.Rule{}, apierr.NotFound("no push rule %s/%s", kind, id)
	}
	return rule, nil
}

func (rt *Routes) getPushRule(w http.ResponseWriter, r *http.Request, dev userapi.Device) error {
	rule, err := rt.findPushRule(r, dev)
	if err != nil {
		return err
	}
	return httputil.JSON(w, rule)
}

func (rt *Routes) putPushRule(w http.ResponseWriter, r *http.Request, dev userapi.Device) error {
	kind, id, err := pushRulePath(r)
	if err != nil {
		return err
	}
	var body struct {
		Actions    *[]pushrules.Action   `json:"actions"`
		Conditions []pushrules.Condition `json:"conditions"`
		Pattern    *string               `json:"pattern"`
	}
	if err := httputil.DecodeJSON(r, &body); err != nil {
		return err
	}
	if body.Actions == nil {
		return apierr.BadJSON("actions is required")
	}
	if kind == pushrules.KindContent && body.Pattern == nil {
		return apierr.New(apierr.CodeMissingParam, "a content rule needs a pattern")
	}
	q := r.URL.Query()
	_, err = rt.users.PutPushRule(r.Context(), userapi.PutPushRuleRequest{
		UserID: dev.UserID, Kind: kind, Before: q.Get("before"), After: q.Get("after"),
		Rule: pushrules.Rule{RuleID: id, Actions: *body.Actions, Conditions: body.Conditions, Pattern: body.Pattern},
	})
	if err != nil {
		return err
	}
	return httputil.JSON(w, struct{}{})
}

func (rt *Routes) deletePushRule(w http.ResponseWriter, r *http.Request, dev userapi.Device) error {
	kind, id, err := pushRulePath(r)
	if err != nil {
		return err
	}
	if _, err := rt.users.DeletePushRule(r.Context(), userapi.DeletePushRuleRequest{UserID: dev.UserID, Kind: kind, RuleID: id}); err != nil {
		return err
	}
	return httputil.JSON(w, struct{}{})
}

func (rt *Routes) getPushRuleAttr(w http.ResponseWriter, r *http.Request, dev userapi.Device) error {
	attr := r.PathValue("attr")
	if attr != "enabled" && attr != "actions" {
		return unrecognized("unknown push rule attribute %q", attr)
	}
	rule, err := rt.findPushRule(r, dev)
	if err != nil {
		return err
	}
	if attr == "enabled" {
		return httputil.JSON(w, map[string]bool{"enabled": rule.Enabled})
	}
	return httputil.JSON(w, map[string][]pushrules.Action{"actions": rule.Actions})
}

func (rt *Routes) putPushRuleAttr(w http.ResponseWriter, r *http.Request, dev userapi.Device) error {
	attr := r.PathValue("attr")
	if attr != "enabled" && attr != "actions" {
		return unrecognized("unknown push rule attribute %q", attr)
	}
	kind, id, err := pushRulePath(r)
	if err != nil {
		return err
	}
	var body struct {
		Enabled *bool               `json:"enabled"`
		Actions *[]pushrules.Action `json:"actions"`
	}
	if err := httputil.DecodeJSON(r, &body); err != nil {
		return err
	}
	if attr == "enabled" {
		if body.Enabled == nil {
			return apierr.BadJSON("enabled is required")
		}
		_, err = rt.users.SetPushRuleEnabled(r.Context(), userapi.SetPushRuleEnabledRequest{
			UserID: dev.UserID, Kind: kind, RuleID: id, Enabled: *body.Enabled})
	} else {
		if body.Actions == nil {
			return apierr.BadJSON("actions is required")
		}
		_, err = rt.users.SetPushRuleActions(r.Context(), userapi.SetPushRuleActionsRequest{
			UserID: dev.UserID, Kind: kind, RuleID: id, Actions: *body.Actions})
	}
	if err != nil {
		return err
	}
	return httputil.JSON(w, struct{}{})
}

func (rt *Routes) getNotifications(w http.ResponseWriter, r *http.Request, dev userapi.Device) error {
	q := r.URL.Query()
	req := userapi.QueryNotificationsRequest{UserID: dev.UserID, From: q.Get("from")}
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 0 {
			return apierr.InvalidParam("limit must be a non-negative integer")
		}
		req.Limit = n
	}
	switch q.Get("only") {
	case "":
	case "highlight":
		req.OnlyHighlight = true
	default:
		return apierr.InvalidParam("only supports \"highlight\"")
	}
	res, err := rt.users.QueryNotifications(r.Context(), req)
	if err != nil {
		return err
	}
	return httputil.JSON(w, res)
}
