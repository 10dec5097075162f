package internal

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/axon-hs/axon/internal/apierr"
	"github.com/axon-hs/axon/internal/eventlog"
	"github.com/axon-hs/axon/internal/sqlutil"
	"github.com/axon-hs/axon/userapi/api"
)

// tagType is the account data type that holds a room's tags.
const tagType = "m.tag"

// filterRetries bounds the retries of CreateFilter when concurrent uploads
// of one user picked the same next id.
const filterRetries = 8

// isObject reports whether raw is a JSON object.
func isObject(raw json.RawMessage) bool {
	var m map[string]json.RawMessage
	return json.Unmarshal(raw, &m) == nil && m != nil
}

// publish announces a committed account data change. A failure is returned
// so that the client retries the (idempotent) request: the change is then
// stored and published again with a higher version.
func (u *UserAPI) publish(ctx context.Context, m api.AccountDataMessage) error {
	if u.evlog == nil {
		return nil
	}
	if _, err := eventlog.Publish(ctx, u.evlog, api.AccountDataTopic, m.UserID, m); err != nil {
		return fmt.Errorf("publish account data %s of %s: %w", m.Type, m.UserID, err)
	}
	return nil
}

// PutAccountData implements api.API.
func (u *UserAPI) PutAccountData(ctx context.Context, req api.PutAccountDataRequest) (api.PutAccountDataResponse, error) {
	local, err := u.ownLocalpart(req.UserID)
	if err != nil {
		return api.PutAccountDataResponse{}, err
	}
	if req.Type == "" {
		return api.PutAccountDataResponse{}, apierr.InvalidParam("empty account data type")
	}
	if !isObject(req.Content) {
		return api.PutAccountDataResponse{}, apierr.BadJSON("account data content must be a JSON object")
	}
	// Compact so that what is published and stored is one canonical text.
	var buf bytes.Buffer
	if err := json.Compact(&buf, req.Content); err != nil {
		return api.PutAccountDataResponse{}, apierr.BadJSON("invalid JSON: %v", err)
	}
	v, err := u.st.AccountData.Upsert(ctx, u.st.DB, local, req.RoomID, req.Type, buf.String())
	if err != nil {
		return api.PutAccountDataResponse{}, err
	}
	err = u.publish(ctx, api.AccountDataMessage{UserID: req.UserID, RoomID: req.RoomID, Type: req.Type, Content: buf.Bytes(), Version: v})
	if err != nil {
		return api.PutAccountDataResponse{}, err
	}
	return api.PutAccountDataResponse{Version: v}, nil
}

// QueryAccountData implements api.API.
func (u *UserAPI) QueryAccountData(ctx context.Context, req api.QueryAccountDataRequest) (api.QueryAccountDataResponse, error) {
	local, err := u.ownLocalpart(req.UserID)
	if err != nil {
		return api.QueryAccountDataResponse{}, err
	}
	if req.Type != "" {
		a, err := u.st.AccountData.Select(ctx, u.st.DB.Reader(), local, req.RoomID, req.Type)
		if err != nil {
			return api.QueryAccountDataResponse{}, passErr(err, "no account data of that type", "query account data")
		}
		return api.QueryAccountDataResponse{Data: []api.AccountData{{
			RoomID: a.RoomID, Type: a.Type, Content: json.RawMessage(a.Content), Version: a.Version}}}, nil
	}
	all, err := u.st.AccountData.SelectAll(ctx, u.st.DB.Reader(), local)
	if err != nil {
		return api.QueryAccountDataResponse{}, err
	}
	out := make([]api.AccountData, 0, len(all))
	for _, a := range all {
		out = append(out, api.AccountData{RoomID: a.RoomID, Type: a.Type, Content: json.RawMessage(a.Content), Version: a.Version})
	}
	return api.QueryAccountDataResponse{Data: out}, nil
}

// tagsContent is the content of m.tag.
type tagsContent struct {
	Tags map[string]json.RawMessage `json:"tags"`
}

// ModifyRoomTag implements api.API: read m.tag, change it, and write it back
// only if nobody else wrote it meanwhile (compare-and-swap on the version),
// so two concurrent tag changes both stay.
func (u *UserAPI) ModifyRoomTag(ctx context.Context, req api.ModifyRoomTagRequest) (api.ModifyRoomTagResponse, error) {
	local, err := u.ownLocalpart(req.UserID)
	if err != nil {
		return api.ModifyRoomTagResponse{}, err
	}
	if req.RoomID == "" || req.Tag == "" {
		return api.ModifyRoomTagResponse{}, apierr.InvalidParam("room id and tag are required")
	}
	if req.Content != nil && !isObject(req.Content) {
		return api.ModifyRoomTagResponse{}, apierr.BadJSON("tag content must be a JSON object")
	}
	var content []byte
	var version int64
	for attempt := 0; ; attempt++ {
		if attempt == casRetries {
			return api.ModifyRoomTagResponse{}, fmt.Errorf("modify tags of %s in %s: %d concurrent changes", req.UserID, req.RoomID, casRetries)
		}
		tags := tagsContent{Tags: map[string]json.RawMessage{}}
		cur, err := u.st.AccountData.Select(ctx, u.st.DB, local, req.RoomID, tagType)
		switch {
		case err == nil:
			// Stored content was validated on the way in; a broken one is
			// replaced rather than blocking every tag change forever.
			_ = json.Unmarshal([]byte(cur.Content), &tags)
			if tags.Tags == nil {
				tags.Tags = map[string]json.RawMessage{}
			}
		case !isNotFound(err):
			return api.ModifyRoomTagResponse{}, err
		}
		if req.Content == nil {
			delete(tags.Tags, req.Tag)
		} else {
			var buf bytes.Buffer
			if err := json.Compact(&buf, req.Content); err != nil {
				return api.ModifyRoomTagResponse{}, apierr.BadJSON("invalid JSON: %v", err)
			}
			tags.Tags[req.Tag] = buf.Bytes()
		}
		content, err = json.Marshal(tags)
		if err != nil {
			return api.ModifyRoomTagResponse{}, fmt.Errorf("encode tags: %w", err)
		}
		v, ok, err := u.st.AccountData.UpsertIfVersion(ctx, u.st.DB, local, req.RoomID, tagType, string(content), cur.Version)
		if err != nil {
			return api.ModifyRoomTagResponse{}, err
		}
		if ok {
			version = v
			break
		}
	}
	err = u.publish(ctx, api.AccountDataMessage{UserID: req.UserID, RoomID: req.RoomID, Type: tagType, Content: content, Version: version})
	if err != nil {
		return api.ModifyRoomTagResponse{}, err
	}
	return api.ModifyRoomTagResponse{Version: version}, nil
}

// CreateFilter implements api.API.
func (u *UserAPI) CreateFilter(ctx context.Context, req api.CreateFilterRequest) (api.CreateFilterResponse, error) {
	local, err := u.ownLocalpart(req.UserID)
	if err != nil {
		return api.CreateFilterResponse{}, err
	}
	if !isObject(req.Filter) {
		return api.CreateFilterResponse{}, apierr.BadJSON("filter must be a JSON object")
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, req.Filter); err != nil {
		return api.CreateFilterResponse{}, apierr.BadJSON("invalid JSON: %v", err)
	}
	for range filterRetries {
		var id int64
		err = u.st.DB.InTx(ctx, func(tx *sql.Tx) error {
			id, err = u.st.Filters.Insert(ctx, tx, local, buf.String())
			return err
		})
		if err == nil {
			return api.CreateFilterResponse{FilterID: strconv.FormatInt(id, 10)}, nil
		}
		if !sqlutil.IsUniqueViolation(err) {
			return api.CreateFilterResponse{}, err
		}
	}
	return api.CreateFilterResponse{}, fmt.Errorf("create filter of %s: %d concurrent id collisions: %w", req.UserID, filterRetries, err)
}

// QueryFilter implements api.API.
func (u *UserAPI) QueryFilter(ctx context.Context, req api.QueryFilterRequest) (api.QueryFilterResponse, error) {
	local, err := u.ownLocalpart(req.UserID)
	if err != nil {
		return api.QueryFilterResponse{}, err
	}
	id, err := strconv.ParseInt(req.FilterID, 10, 64)
	if err != nil || id <= 0 {
		return api.QueryFilterResponse{}, apierr.NotFound("no such filter")
	}
	f, err := u.st.Filters.Select(ctx, u.st.DB.Reader(), local, id)
	if err != nil {
		return api.QueryFilterResponse{}, passErr(err, "no such filter", "query filter")
	}
	return api.QueryFilterResponse{Filter: json.RawMessage(f)}, nil
}
