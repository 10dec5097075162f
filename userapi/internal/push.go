package internal

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/axon-hs/axon/internal/apierr"
	"github.com/axon-hs/axon/matrix/pushrules"
	"github.com/axon-hs/axon/userapi/api"
	"github.com/axon-hs/axon/userapi/storage"
)

// pushCASRetries bounds the compare-and-swap loop of rule edits; each retry
// means another edit of the same user's rules committed meanwhile.
const pushCASRetries = 16

// LoadPushRules returns a local user's stored rules (none: empty).
func LoadPushRules(ctx context.Context, st *storage.Storage, localpart string) (pushrules.UserRules, int64, error) {
	raw, version, err := st.Push.Rules.Select(ctx, st.DB.Reader(), localpart)
	if err != nil {
		return pushrules.UserRules{}, 0, err
	}
	var u pushrules.UserRules
	if raw != nil {
		if err := json.Unmarshal(raw, &u); err != nil {
			return pushrules.UserRules{}, 0, fmt.Errorf("decode push rules of %s: %w", localpart, err)
		}
	}
	return u, version, nil
}

func (u *UserAPI) QueryPushRules(ctx context.Context, req api.QueryPushRulesRequest) (api.QueryPushRulesResponse, error) {
	local, ok := u.localpart(req.UserID)
	if !ok {
		return api.QueryPushRulesResponse{}, apierr.InvalidParam("not a local user: %s", req.UserID)
	}
	rules, _, err := LoadPushRules(ctx, u.st, local)
	if err != nil {
		return api.QueryPushRulesResponse{}, err
	}
	return api.QueryPushRulesResponse{Global: rules.Merge(req.UserID)}, nil
}

// editPushRules applies edit to the user's rules with compare and swap.
func (u *UserAPI) editPushRules(ctx context.Context, userID string, edit func(*pushrules.UserRules) error) error {
	local, ok := u.localpart(userID)
	if !ok {
		return apierr.InvalidParam("not a local user: %s", userID)
	}
	for range pushCASRetries {
		rules, version, err := LoadPushRules(ctx, u.st, local)
		if err != nil {
			return err
		}
		if err := edit(&rules); err != nil {
			return pushRuleError(err)
		}
		raw, err := json.Marshal(rules)
		if err != nil {
			return fmt.Errorf("encode push rules of %s: %w", local, err)
		}
		ok, err := u.st.Push.Rules.CompareAndSwap(ctx, u.st.DB, local, version, raw)
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
	}
	return fmt.Errorf("edit push rules of %s: %d concurrent edits won", local, pushCASRetries)
}

// pushRuleError maps the pushrules errors to Matrix errors.
func pushRuleError(err error) error {
	switch {
	case errors.Is(err, pushrules.ErrNotFound):
		return apierr.NotFound("%s", err.Error())
	case errors.Is(err, pushrules.ErrAnchor):
		// The spec's example answer for a missing before/after.
		return apierr.WithStatus(http.StatusBadRequest, apierr.CodeUnknown, "%s", err.Error())
	case errors.Is(err, pushrules.ErrInvalid):
		return apierr.InvalidParam("%s", err.Error())
	}
	return err
}

func (u *UserAPI) PutPushRule(ctx context.Context, req api.PutPushRuleRequest) (api.PutPushRuleResponse, error) {
	return api.PutPushRuleResponse{}, u.editPushRules(ctx, req.UserID, func(r *pushrules.UserRules) error {
		return r.Put(req.Kind, req.Rule, req.Before, req.After)
	})
}

func (u *UserAPI) DeletePushRule(ctx context.Context, req api.DeletePushRuleRequest) (api.DeletePushRuleResponse, error) {
	return api.DeletePushRuleResponse{}, u.editPushRules(ctx, req.UserID, func(r *pushrules.UserRules) error {
		return r.Delete(req.Kind, req.RuleID)
	})
}

func (u *UserAPI) SetPushRuleEnabled(ctx context.Context, req api.SetPushRuleEnabledRequest) (api.SetPushRuleEnabledResponse, error) {
	return api.SetPushRuleEnabledResponse{}, u.editPushRules(ctx, req.UserID, func(r *pushrules.UserRules) error {
		return r.SetEnabled(req.UserID, req.Kind, req.RuleID, req.Enabled)
	})
}

func (u *UserAPI) SetPushRuleActions(ctx context.Context, req api.SetPushRuleActionsRequest) (api.SetPushRuleActionsResponse, error) {
	return api.SetPushRuleActionsResponse{}, u.editPushRules(ctx, req.UserID, func(r *pushrules.UserRules) error {
		return r.SetActions(req.UserID, req.Kind, req.RuleID, req.Actions)
	})
}

func (u *UserAPI) QueryPushers(ctx context.Context, req api.QueryPushersRequest) (api.QueryPushersResponse, error) {
	local, ok := u.localpart(req.UserID)
	if !ok {
		return api.QueryPushersResponse{}, apierr.InvalidParam("not a local user: %s", req.UserID)
	}
	rows, err := u.st.Push.Pushers.Select(ctx, u.st.DB.Reader(), []string{local})
	if err != nil {
		return api.QueryPushersResponse{}, err
	}
	res := api.QueryPushersResponse{Pushers: []api.Pusher{}}
	for _, p := range rows {
		res.Pushers = append(res.Pushers, api.Pusher{
			PushKey: p.PushKey, Kind: p.Kind, AppID: p.AppID, AppDisplayName: p.AppDisplayName,
			DeviceDisplayName: p.DeviceDisplayName, ProfileTag: p.ProfileTag, Lang: p.Lang, Data: json.RawMessage(p.Data),
		})
	}
	return res, nil
}

func (u *UserAPI) SetPusher(ctx context.Context, req api.SetPusherRequest) (api.SetPusherResponse, error) {
	local, ok := u.localpart(req.UserID)
	if !ok {
		return api.SetPusherResponse{}, apierr.InvalidParam("not a local user: %s", req.UserID)
	}
	p := req.Pusher
	// Caches of pushers reload after the change commits.
	defer u.st.Push.Pushers.Changed()
	if req.Delete {
		return api.SetPusherResponse{}, u.st.Push.Pushers.Delete(ctx, u.st.DB, local, p.AppID, p.PushKey)
	}
	data := p.Data
	if len(data) == 0 {
		data = json.RawMessage("{}")
	}
	err := u.st.DB.InTx(ctx, func(tx *sql.Tx) error {
		if !req.Append {
			if err := u.st.Push.Pushers.DeleteOthers(ctx, tx, local, p.AppID, p.PushKey); err != nil {
				return err
			}
		}
		return u.st.Push.Pushers.Upsert(ctx, tx, storage.PusherRow{
			Localpart: local, AppID: p.AppID, PushKey: p.PushKey, Kind: p.Kind, AppDisplayName: p.AppDisplayName,
			DeviceDisplayName: p.DeviceDisplayName, ProfileTag: p.ProfileTag, Lang: p.Lang, Data: string(data),
			DeviceID: req.DeviceID, CreatedMS: u.nowMS(),
		})
	})
	return api.SetPusherResponse{}, err
}

// maxNotificationsPage bounds one /notifications page.
const maxNotificationsPage = 100

func (u *UserAPI) QueryNotifications(ctx context.Context, req api.QueryNotificationsRequest) (api.QueryNotificationsResponse, error) {
	local, ok := u.localpart(req.UserID)
	if !ok {
		return api.QueryNotificationsResponse{}, apierr.InvalidParam("not a local user: %s", req.UserID)
	}
	var before int64
	if req.From != "" {
		n, err := strconv.ParseInt(req.From, 10, 64)
		if err != nil || n <= 0 {
			return api.QueryNotificationsResponse{}, apierr.InvalidParam("malformed from token")
		}
		before = n
	}
	limit := req.Limit
	if limit <= 0 || limit > maxNotificationsPage {
		limit = maxNotificationsPage
	}
	rows, err := u.st.Push.Notifs.Select(ctx, u.st.DB.Reader(), local, before, limit, req.OnlyHighlight)
	if err != nil {
		return api.QueryNotificationsResponse{}, err
	}
	res := api.QueryNotificationsResponse{Notifications: []api.Notification{}}
	for _, r := range rows {
		var actions []pushrules.Action
		if err := json.Unmarshal([]byte(r.Actions), &actions); err != nil {
			return api.QueryNotificationsResponse{}, fmt.Errorf("decode actions of notification %d: %w", r.ID, err)
		}
		res.Notifications = append(res.Notifications, api.Notification{
			Actions: actions, Event: json.RawMessage(r.Event), Read: r.Read, RoomID: r.RoomID, TS: r.TS,
		})
	}
	if len(rows) == limit {
		res.NextToken = strconv.FormatInt(rows[len(rows)-1].ID, 10)
	}
	return res, nil
}
