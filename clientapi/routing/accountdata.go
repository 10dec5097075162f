package routing

import (
	"encoding/json"
	"net/http"

	"github.com/axon-hs/axon/internal/apierr"
	"github.com/axon-hs/axon/internal/httputil"
	"github.com/axon-hs/axon/matrix"
	userapi "github.com/axon-hs/axon/userapi/api"
)

func (rt *Routes) registerAccountData(mux *http.ServeMux) {
	mux.HandleFunc("PUT "+v3+"/user/{userId}/account_data/{type}", rt.authed(rt.putAccountData))
	mux.HandleFunc("GET "+v3+"/user/{userId}/account_data/{type}", rt.authed(rt.getAccountData))
	mux.HandleFunc("PUT "+v3+"/user/{userId}/rooms/{roomId}/account_data/{type}", rt.authed(rt.putAccountData))
	mux.HandleFunc("GET "+v3+"/user/{userId}/rooms/{roomId}/account_data/{type}", rt.authed(rt.getAccountData))
	mux.HandleFunc("GET "+v3+"/user/{userId}/rooms/{roomId}/tags", rt.authed(rt.getTags))
	mux.HandleFunc("PUT "+v3+"/user/{userId}/rooms/{roomId}/tags/{tag}", rt.authed(rt.putTag))
	mux.HandleFunc("DELETE "+v3+"/user/{userId}/rooms/{roomId}/tags/{tag}", rt.authed(rt.deleteTag))
}

// serverManagedTypes are account data types the server maintains itself
// (read markers, push rules): clients change them through their own APIs.
var serverManagedTypes = map[string]bool{"m.fully_read": true, "m.push_rules": true}

// ownUserPath checks that {userId} is the requester: no one reads or
// writes another user's account data.
func ownUserPath(r *http.Request, dev userapi.Device) error {
	if r.PathValue("userId") != dev.UserID {
		return apierr.Forbidden("cannot access another user's account data")
	}
	return nil
}

// roomPath returns the {roomId} path value, validated; "" on the global routes.
func roomPath(r *http.Request) (string, error) {
	raw := r.PathValue("roomId")
	if raw == "" {
		return "", nil
	}
	id, err := matrix.ParseRoomID(raw)
	if err != nil {
		return "", apierr.InvalidParam("invalid room id: %v", err)
	}
	return string(id), nil
}

// decodeObject decodes a request body that must be a JSON object.
func decodeObject(r *http.Request) (json.RawMessage, error) {
	var obj map[string]json.RawMessage
	if err := httputil.DecodeJSON(r, &obj); err != nil {
		return nil, err
	}
	if obj == nil {
		return nil, apierr.BadJSON("request body must be a JSON object")
	}
	raw, err := json.Marshal(obj)
	if err != nil {
		return nil, apierr.BadJSON("request body: %v", err)
	}
	return raw, nil
}

func (rt *Routes) putAccountData(w http.ResponseWriter, r *http.Request, dev userapi.Device) error {
	content, err := decodeObject(r)
	if err != nil {
		return err
	}
	if err := ownUserPath(r, dev); err != nil {
		return err
	}
	room, err := roomPath(r)
	if err != nil {
		return err
	}
	typ := r.PathValue("type")
	if serverManagedTypes[typ] {
		return apierr.WithStatus(http.StatusMethodNotAllowed, apierr.CodeBadJSON, "%s is managed by the server", typ)
	}
	if len(typ) > 255 {
		return apierr.InvalidParam("account data type longer than 255 bytes")
	}
	if _, err := rt.users.PutAccountData(r.Context(), userapi.PutAccountDataRequest{
		UserID: dev.UserID, RoomID: room, Type: typ, Content: content}); err != nil {
		return err
	}
	return httputil.JSON(w, struct{}{})
}

func (rt *Routes) getAccountData(w http.ResponseWriter, r *http.Request, dev userapi.Device) error {
	if err := ownUserPath(r, dev); err != nil {
		return err
	}
	room, err := roomPath(r)
	if err != nil {
		return err
	}
	res, err := rt.users.QueryAccountData(r.Context(), userapi.QueryAccountDataRequest{
		UserID: dev.UserID, RoomID: room, Type: r.PathValue("type")})
	if err != nil {
		return err
	}
	if len(res.Data) != 1 {
		return apierr.NotFound("no account data of that type")
	}
	w.Header().Set("Content-Type", "application/json")
	_, err = w.Write(res.Data[0].Content)
	return err
}

func (rt *Routes) getTags(w http.ResponseWriter, r *http.Request, dev userapi.Device) error {
	if err := ownUserPath(r, dev); err != nil {
		return err
	}
	room, err := roomPath(r)
	if err != nil {
		return err
	}
	res, err := rt.users.QueryAccountData(r.Context(), userapi.QueryAccountDataRequest{UserID: dev.UserID, RoomID: room, Type: "m.tag"})
	if e, ok := apierr.As(err); ok && e.Code == apierr.CodeNotFound {
		return httputil.JSON(w, map[string]any{"tags": map[string]any{}})
	}
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json")
	_, err = w.Write(res.Data[0].Content)
	return err
}

func (rt *Routes) putTag(w http.ResponseWriter, r *http.Request, dev userapi.Device) error {
	content, err := decodeObject(r)
	if err != nil {
		return err
	}
	var tag struct {
		Order *float64 `json:"order"`
	}
	if err := json.Unmarshal(content, &tag); err != nil {
		return apierr.BadJSON("order must be a number")
	}
	return rt.modifyTag(w, r, dev, content)
}

func (rt *Routes) deleteTag(w http.ResponseWriter, r *http.Request, dev userapi.Device) error {
	return rt.modifyTag(w, r, dev, nil)
}

func (rt *Routes) modifyTag(w http.ResponseWriter, r *http.Request, dev userapi.Device, content json.RawMessage) error {
	if err := ownUserPath(r, dev); err != nil {
		return err
	}
	room, err := roomPath(r)
	if err != nil {
		return err
	}
	tag := r.PathValue("tag")
	if tag == "" || len(tag) > 255 {
		return apierr.InvalidParam("invalid tag")
	}
	if _, err := rt.users.ModifyRoomTag(r.Context(), userapi.ModifyRoomTagRequest{
		UserID: dev.UserID, RoomID: room, Tag: tag, Content: content}); err != nil {
		return err
	}
	return httputil.JSON(w, struct{}{})
}
