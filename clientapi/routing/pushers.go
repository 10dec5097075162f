package routing

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"

	"github.com/axon-hs/axon/internal/apierr"
	"github.com/axon-hs/axon/internal/httputil"
	userapi "github.com/axon-hs/axon/userapi/api"
)

// pushNotifyPath is the only path an HTTP pusher's URL may have.
const pushNotifyPath = "/_matrix/push/v1/notify"

func (rt *Routes) getPushers(w http.ResponseWriter, r *http.Request, dev userapi.Device) error {
	res, err := rt.users.QueryPushers(r.Context(), userapi.QueryPushersRequest{UserID: dev.UserID})
	if err != nil {
		return err
	}
	return httputil.JSON(w, res)
}

// setPusherBody is POST /pushers/set. Kind is a pointer because null
// deletes the pusher.
type setPusherBody struct {
	PushKey           *string         `json:"pushkey"`
	Kind              *string         `json:"kind"`
	AppID             *string         `json:"app_id"`
	AppDisplayName    *string         `json:"app_display_name"`
	DeviceDisplayName *string         `json:"device_display_name"`
	ProfileTag        string          `json:"profile_tag"`
	Lang              *string         `json:"lang"`
	Data              json.RawMessage `json:"data"`
	Append            bool            `json:"append"`
}

// parseSetPusher validates a POST /pushers/set body.
func parseSetPusher(data []byte) (userapi.SetPusherRequest, error) {
	var b setPusherBody
	if err := httputil.Unmarshal(data, &b); err != nil {
		return userapi.SetPusherRequest{}, err
	}
	var kindPresent bool
	{
		var raw map[string]json.RawMessage
		_ = json.Unmarshal(data, &raw)
		_, kindPresent = raw["kind"]
	}
	var missing []string
	if b.PushKey == nil {
		missing = append(missing, "pushkey")
	}
	if !kindPresent {
		missing = append(missing, "kind")
	}
	if b.AppID == nil {
		missing = append(missing, "app_id")
	}
	if len(missing) > 0 {
		return userapi.SetPusherRequest{}, apierr.New(apierr.CodeMissingParam, "missing parameters: %s", strings.Join(missing, ", "))
	}
	switch {
	case len(*b.AppID) == 0 || len(*b.AppID) > 64:
		return userapi.SetPusherRequest{}, apierr.InvalidParam("app_id must be 1 to 64 characters")
	case len(*b.PushKey) == 0 || len(*b.PushKey) > 512:
		return userapi.SetPusherRequest{}, apierr.InvalidParam("pushkey must be 1 to 512 bytes")
	}
	req := userapi.SetPusherRequest{Append: b.Append, Pusher: userapi.Pusher{PushKey: *b.PushKey, AppID: *b.AppID}}
	if b.Kind == nil {
		req.Delete = true
		return req, nil
	}
	if b.AppDisplayName == nil {
		missing = append(missing, "app_display_name")
	}
	if b.DeviceDisplayName == nil {
		missing = append(missing, "device_display_name")
	}
	if b.Lang == nil {
		missing = append(missing, "lang")
	}
	if b.Data == nil || string(b.Data) == "null" {
		missing = append(missing, "data")
	}
	if len(missing) > 0 {
		return userapi.SetPusherRequest{}, apierr.New(apierr.CodeMissingParam, "missing parameters: %s", strings.Join(missing, ", "))
	}
	var d struct {
		URL    *string `json:"url"`
		Format *string `json:"format"`
	}
	if err := json.Unmarshal(b.Data, &d); err != nil {
		return userapi.SetPusherRequest{}, apierr.BadJSON("data must be an object with string url and format")
	}
	switch *b.Kind {
	case "http":
		if d.URL == nil {
			return userapi.SetPusherRequest{}, apierr.New(apierr.CodeMissingParam, "data.url is required for http pushers")
		}
		u, err := url.Parse(*d.URL)
		// NOTSPEC: the spec wants https; plain http is accepted too, for push
		// gateways on a private network (delivery still refuses private
		// addresses unless the server is configured to allow them).
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.Path != pushNotifyPath {
			return userapi.SetPusherRequest{}, apierr.InvalidParam("data.url must be an https URL with the path %s", pushNotifyPath)
		}
		if d.Format != nil && *d.Format != "event_id_only" {
			return userapi.SetPusherRequest{}, apierr.InvalidParam("the only data.format is event_id_only")
		}
	case "email":
		// No email sending is configured on this server.
		return userapi.SetPusherRequest{}, apierr.InvalidParam("email pushers are not supported: this server sends no email")
	default:
		return userapi.SetPusherRequest{}, apierr.InvalidParam("unknown pusher kind %q", *b.Kind)
	}
	req.Pusher.Kind = *b.Kind
	req.Pusher.AppDisplayName = *b.AppDisplayName
	req.Pusher.DeviceDisplayName = *b.DeviceDisplayName
	req.Pusher.ProfileTag = b.ProfileTag
	req.Pusher.Lang = *b.Lang
	req.Pusher.Data = b.Data
	return req, nil
}

func (rt *Routes) setPusher(w http.ResponseWriter, r *http.Request, dev userapi.Device) error {
	data, err := readBody(r)
	if err != nil {
		return err
	}
	req, err := parseSetPusher(data)
	if err != nil {
		return err
	}
	req.UserID, req.DeviceID = dev.UserID, dev.DeviceID
	if _, err := rt.users.SetPusher(r.Context(), req); err != nil {
		return err
	}
	return httputil.JSON(w, struct{}{})
}

// readBody reads a request body with DecodeJSON's size error.
func readBody(r *http.Request) ([]byte, error) {
	var raw json.RawMessage
	if err := httputil.DecodeJSON(r, &raw); err != nil {
		return nil, err
	}
	return raw, nil
}
