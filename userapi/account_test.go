package userapi_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/crypto/bcrypt"

	"github.com/axon-hs/axon/internal/apierr"
	"github.com/axon-hs/axon/internal/eventlog"
	"github.com/axon-hs/axon/internal/rpc"
	"github.com/axon-hs/axon/internal/sqlutil"
	"github.com/axon-hs/axon/internal/sqlutil/storagetest"
	"github.com/axon-hs/axon/userapi"
	"github.com/axon-hs/axon/userapi/api"
)

// recordingLog is an eventlog.Log that keeps what is published.
type recordingLog struct {
	mu   sync.Mutex
	msgs []api.AccountDataMessage
	keys []string
}

func (l *recordingLog) Publish(_ context.Context, topic, key string, data []byte) (uint64, error) {
	var m api.AccountDataMessage
	if topic != api.AccountDataTopic.Name || json.Unmarshal(data, &m) != nil {
		return 0, nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.msgs, l.keys = append(l.msgs, m), append(l.keys, key)
	return uint64(len(l.msgs)), nil
}
func (l *recordingLog) Subscribe(context.Context, string, string, eventlog.ConsumeOptions, func(context.Context, eventlog.RawMsg) error) (eventlog.Subscription, error) {
	panic("not used")
}
func (l *recordingLog) Close() error { return nil }

func (l *recordingLog) last() (api.AccountDataMessage, string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.msgs) == 0 {
		return api.AccountDataMessage{}, ""
	}
	return l.msgs[len(l.msgs)-1], l.keys[len(l.keys)-1]
}

// eachTransportLog is eachTransport with a recording log.
func eachTransportLog(t *testing.T, f func(t *testing.T, a api.API, l *recordingLog)) {
	storagetest.Each(t, func(t *testing.T, db *sqlutil.DB) {
		l := &recordingLog{}
		c, err := userapi.New(t.Context(), userapi.Deps{
			DB: db, ServerName: server, BcryptCost: bcrypt.MinCost, Registry: prometheus.NewRegistry(), EventLog: l,
		})
		if err != nil {
			t.Fatalf("userapi.New: %v", err)
		}
		t.Run("direct", func(t *testing.T) { f(t, c.API(), l) })
		t.Run("http", func(t *testing.T) {
			mux := http.NewServeMux()
			api.Serve(rpc.NewServer(mux, nil), c.API())
			srv := httptest.NewServer(mux)
			t.Cleanup(srv.Close)
			f(t, api.Client{C: rpc.NewClient(srv.URL, nil)}, l)
		})
	})
}

func newUser(t *testing.T, a api.API, prefix, password string) string {
	t.Helper()
	res, err := a.CreateAccount(t.Context(), api.CreateAccountRequest{Localpart: prefix + "_" + transportName(t), Password: password})
	if err != nil {
		t.Fatalf("CreateAccount: %v", err)
	}
	return res.UserID
}

func TestPasswordAndDeactivation(t *testing.T) {
	eachTransport(t, func(t *testing.T, a api.API) {
		ctx := t.Context()
		user := newUser(t, a, "pw", "old")
		local := "pw_" + transportName(t)
		keep, _ := a.CreateDevice(ctx, api.CreateDeviceRequest{UserID: user, DeviceID: "KEEP"})
		other, _ := a.CreateDevice(ctx, api.CreateDeviceRequest{UserID: user, DeviceID: "OTHER"})

		if _, err := a.ChangePassword(ctx, api.ChangePasswordRequest{UserID: user, NewPassword: "new"}); err != nil {
			t.Fatalf("ChangePassword: %v", err)
		}
		if _, err := a.CheckPassword(ctx, api.CheckPasswordRequest{Localpart: local, Password: "old"}); err == nil {
			t.Fatal("old password still works")
		}
		if _, err := a.CheckPassword(ctx, api.CheckPasswordRequest{Localpart: local, Password: "new"}); err != nil {
			t.Fatalf("new password: %v", err)
		}
		if _, err := a.QueryAccessToken(ctx, api.QueryAccessTokenRequest{AccessToken: other.AccessToken}); err != nil {
			t.Fatalf("device logged out without logout_devices: %v", err)
		}
		if _, err := a.ChangePassword(ctx, api.ChangePasswordRequest{UserID: user, NewPassword: "newer", LogoutDevices: true, KeepDeviceID: "KEEP"}); err != nil {
			t.Fatalf("ChangePassword(logout): %v", err)
		}
		if _, err := a.QueryAccessToken(ctx, api.QueryAccessTokenRequest{AccessToken: keep.AccessToken}); err != nil {
			t.Fatalf("kept device logged out: %v", err)
		}
		_, err := a.QueryAccessToken(ctx, api.QueryAccessTokenRequest{AccessToken: other.AccessToken})
		wantCode(t, "other device after logout_devices", err, apierr.CodeUnknownToken)

		for _, tc := range []struct {
			name string
			req  api.ChangePasswordRequest
			code string
		}{
			{"empty", api.ChangePasswordRequest{UserID: user}, apierr.CodeInvalidParam},
			{"unknown user", api.ChangePasswordRequest{UserID: "@nobody:" + server, NewPassword: "x"}, apierr.CodeNotFound},
			{"remote user", api.ChangePasswordRequest{UserID: "@a:elsewhere", NewPassword: "x"}, apierr.CodeNotFound},
		} {
			_, err := a.ChangePassword(ctx, tc.req)
			wantCode(t, "ChangePassword("+tc.name+")", err, tc.code)
		}

		if _, err := a.DeactivateAccount(ctx, api.DeactivateAccountRequest{UserID: user}); err != nil {
			t.Fatalf("DeactivateAccount: %v", err)
		}
		_, err = a.QueryAccessToken(ctx, api.QueryAccessTokenRequest{AccessToken: keep.AccessToken})
		wantCode(t, "token after deactivation", err, apierr.CodeUnknownToken)
		_, err = a.CheckPassword(ctx, api.CheckPasswordRequest{Localpart: local, Password: "newer"})
		wantCode(t, "login after deactivation", err, apierr.CodeForbidden)
		_, err = a.ChangePassword(ctx, api.ChangePasswordRequest{UserID: user, NewPassword: "x"})
		wantCode(t, "ChangePassword after deactivation", err, apierr.CodeNotFound)
		if av, _ := a.AccountAvailable(ctx, api.AccountAvailableRequest{Localpart: local}); av.Available {
			t.Fatal("deactivated localpart became available")
		}
	})
}

func TestDeviceList(t *testing.T) {
	eachTransport(t, func(t *testing.T, a api.API) {
		ctx := t.Context()
		user := newUser(t, a, "dl", "pw")
		for _, id := range []string{"BBB", "AAA"} {
			if _, err := a.CreateDevice(ctx, api.CreateDeviceRequest{UserID: user, DeviceID: id, DisplayName: "dev " + id, IP: "10.0.0.9"}); err != nil {
				t.Fatal(err)
			}
		}
		res, err := a.QueryDevices(ctx, api.QueryDevicesRequest{UserID: user})
		if err != nil || len(res.Devices) != 2 || res.Devices[0].DeviceID != "AAA" || res.Devices[1].DisplayName != "dev BBB" ||
			res.Devices[0].LastSeenIP != "10.0.0.9" || res.Devices[0].LastSeenTS == 0 {
			t.Fatalf("QueryDevices = %+v, %v", res, err)
		}
		if _, err := a.UpdateDevice(ctx, api.UpdateDeviceRequest{UserID: user, DeviceID: "AAA", DisplayName: "renamed"}); err != nil {
			t.Fatalf("UpdateDevice: %v", err)
		}
		one, err := a.QueryDevices(ctx, api.QueryDevicesRequest{UserID: user, DeviceID: "AAA"})
		if err != nil || len(one.Devices) != 1 || one.Devices[0].DisplayName != "renamed" {
			t.Fatalf("QueryDevices(AAA) = %+v, %v", one, err)
		}
		_, err = a.QueryDevices(ctx, api.QueryDevicesRequest{UserID: user, DeviceID: "NOPE"})
		wantCode(t, "QueryDevices(NOPE)", err, apierr.CodeNotFound)
		_, err = a.UpdateDevice(ctx, api.UpdateDeviceRequest{UserID: user, DeviceID: "NOPE", DisplayName: "x"})
		wantCode(t, "UpdateDevice(NOPE)", err, apierr.CodeNotFound)
		// Another user's device is not found either.
		other := newUser(t, a, "dl2", "pw")
		_, err = a.UpdateDevice(ctx, api.UpdateDeviceRequest{UserID: other, DeviceID: "AAA", DisplayName: "x"})
		wantCode(t, "UpdateDevice(other's)", err, apierr.CodeNotFound)
	})
}

func TestSetProfile(t *testing.T) {
	eachTransport(t, func(t *testing.T, a api.API) {
		ctx := t.Context()
		user := newUser(t, a, "prof", "pw")
		name, avatar, empty := "Alice", "mxc://example.org/abc", ""
		for i, tc := range []struct {
			req         api.SetProfileRequest
			wantName    string
			wantAvatar  string
			wantChanged bool
		}{
			{api.SetProfileRequest{DisplayName: &name}, "Alice", "", true},
			{api.SetProfileRequest{DisplayName: &name}, "Alice", "", false},
			{api.SetProfileRequest{AvatarURL: &avatar}, "Alice", avatar, true},
			{api.SetProfileRequest{DisplayName: &empty}, "", avatar, true},
		} {
			tc.req.UserID = user
			res, err := a.SetProfile(ctx, tc.req)
			if err != nil || res.Profile.DisplayName != tc.wantName || res.Profile.AvatarURL != tc.wantAvatar || res.Changed != tc.wantChanged {
				t.Fatalf("#%d SetProfile = %+v, %v", i, res, err)
			}
			p, err := a.QueryProfile(ctx, api.QueryProfileRequest{UserID: user})
			if err != nil || p != res.Profile {
				t.Fatalf("#%d QueryProfile = %+v, %v; want %+v", i, p, err, res.Profile)
			}
		}
		_, err := a.SetProfile(ctx, api.SetProfileRequest{UserID: "@nobody:" + server, DisplayName: &name})
		wantCode(t, "SetProfile(unknown)", err, apierr.CodeNotFound)
	})
}

func TestRefreshTokens(t *testing.T) {
	eachTransport(t, func(t *testing.T, a api.API) {
		ctx := t.Context()
		user := newUser(t, a, "ref", "pw")
		d, err := a.CreateDevice(ctx, api.CreateDeviceRequest{UserID: user, RefreshToken: true})
		if err != nil || d.RefreshToken == "" || d.ExpiresInMS <= 0 {
			t.Fatalf("CreateDevice(refresh) = %+v, %v", d, err)
		}
		if _, err := a.QueryAccessToken(ctx, api.QueryAccessTokenRequest{AccessToken: d.AccessToken}); err != nil {
			t.Fatalf("fresh refreshable token: %v", err)
		}
		r, err := a.RefreshAccessToken(ctx, api.RefreshAccessTokenRequest{RefreshToken: d.RefreshToken})
		if err != nil || r.AccessToken == d.AccessToken || r.RefreshToken == d.RefreshToken || r.ExpiresInMS <= 0 {
			t.Fatalf("RefreshAccessToken = %+v, %v", r, err)
		}
		if q, err := a.QueryAccessToken(ctx, api.QueryAccessTokenRequest{AccessToken: r.AccessToken}); err != nil || q.Device.DeviceID != d.DeviceID {
			t.Fatalf("refreshed token = %+v, %v", q, err)
		}
		_, err = a.QueryAccessToken(ctx, api.QueryAccessTokenRequest{AccessToken: d.AccessToken})
		wantCode(t, "old access token", err, apierr.CodeUnknownToken)
		for _, tok := range []string{d.RefreshToken, "axr_nonsense", "", d.AccessToken} {
			_, err = a.RefreshAccessToken(ctx, api.RefreshAccessTokenRequest{RefreshToken: tok})
			wantCode(t, "RefreshAccessToken(used/unknown)", err, apierr.CodeUnknownToken)
		}
		// A device without refresh token answers no expiry.
		plain, err := a.CreateDevice(ctx, api.CreateDeviceRequest{UserID: user})
		if err != nil || plain.RefreshToken != "" || plain.ExpiresInMS != 0 {
			t.Fatalf("CreateDevice(plain) = %+v, %v", plain, err)
		}
	})
}

func TestAccountData(t *testing.T) {
	eachTransportLog(t, func(t *testing.T, a api.API, l *recordingLog) {
		ctx := t.Context()
		user := newUser(t, a, "ad", "pw")
		put := func(room, typ, content string) int64 {
			t.Helper()
			r, err := a.PutAccountData(ctx, api.PutAccountDataRequest{UserID: user, RoomID: room, Type: typ, Content: json.RawMessage(content)})
			if err != nil {
				t.Fatalf("PutAccountData(%s, %s): %v", room, typ, err)
			}
			m, key := l.last()
			if key != user || m.UserID != user || m.RoomID != room || m.Type != typ || m.Version != r.Version {
				t.Fatalf("published %+v under %q; want %s/%s version %d", m, key, room, typ, r.Version)
			}
			return r.Version
		}
		if v := put("", "m.direct", `{"@b:x": ["!r:x"]}`); v != 1 {
			t.Fatalf("first version = %d", v)
		}
		if v := put("", "m.direct", `{"@c:x": []}`); v != 2 {
			t.Fatalf("second version = %d", v)
		}
		put("!room:x", "org.example.x", `{"a": 1}`)
		got, err := a.QueryAccountData(ctx, api.QueryAccountDataRequest{UserID: user, Type: "m.direct"})
		if err != nil || len(got.Data) != 1 || string(got.Data[0].Content) != `{"@c:x":[]}` || got.Data[0].Version != 2 {
			t.Fatalf("QueryAccountData(m.direct) = %+v, %v", got, err)
		}
		_, err = a.QueryAccountData(ctx, api.QueryAccountDataRequest{UserID: user, Type: "org.example.x"})
		wantCode(t, "room type queried as global", err, apierr.CodeNotFound)
		all, err := a.QueryAccountData(ctx, api.QueryAccountDataRequest{UserID: user})
		if err != nil || len(all.Data) != 2 || all.Data[0].RoomID != "" || all.Data[1].RoomID != "!room:x" {
			t.Fatalf("QueryAccountData(all) = %+v, %v", all, err)
		}
		for _, c := range []string{`[]`, `"x"`, `null`} {
			_, err := a.PutAccountData(ctx, api.PutAccountDataRequest{UserID: user, Type: "t", Content: json.RawMessage(c)})
			wantCode(t, "PutAccountData("+c+")", err, apierr.CodeBadJSON)
		}

		// Tags: concurrent changes of different tags all stay.
		var wg sync.WaitGroup
		tags := []string{"m.favourite", "u.work", "u.home", "m.lowpriority"}
		for _, tag := range tags {
			wg.Go(func() {
				if _, err := a.ModifyRoomTag(ctx, api.ModifyRoomTagRequest{UserID: user, RoomID: "!room:x", Tag: tag, Content: json.RawMessage(`{"order": 0.5}`)}); err != nil {
					t.Errorf("ModifyRoomTag(%s): %v", tag, err)
				}
			})
		}
		wg.Wait()
		if _, err := a.ModifyRoomTag(ctx, api.ModifyRoomTagRequest{UserID: user, RoomID: "!room:x", Tag: "u.home"}); err != nil {
			t.Fatalf("remove tag: %v", err)
		}
		m, _ := l.last()
		if m.Type != "m.tag" || m.Version != 5 {
			t.Fatalf("last tag message %+v, want m.tag version 5", m)
		}
		tg, err := a.QueryAccountData(ctx, api.QueryAccountDataRequest{UserID: user, RoomID: "!room:x", Type: "m.tag"})
		if err != nil {
			t.Fatal(err)
		}
		var content struct {
			Tags map[string]map[string]float64 `json:"tags"`
		}
		if err := json.Unmarshal(tg.Data[0].Content, &content); err != nil {
			t.Fatal(err)
		}
		var names []string
		for k, v := range content.Tags {
			if v["order"] != 0.5 {
				t.Fatalf("tag %s content %v", k, v)
			}
			names = append(names, k)
		}
		slices.Sort(names)
		if want := []string{"m.favourite", "m.lowpriority", "u.work"}; !slices.Equal(names, want) {
			t.Fatalf("tags = %v, want %v", names, want)
		}
	})
}

func TestFilters(t *testing.T) {
	eachTransport(t, func(t *testing.T, a api.API) {
		ctx := t.Context()
		user := newUser(t, a, "fl", "pw")
		other := newUser(t, a, "fl2", "pw")
		f1, err := a.CreateFilter(ctx, api.CreateFilterRequest{UserID: user, Filter: json.RawMessage(`{"room": {"timeline": {"limit": 10}}}`)})
		if err != nil || f1.FilterID != "1" {
			t.Fatalf("CreateFilter = %+v, %v", f1, err)
		}
		again, err := a.CreateFilter(ctx, api.CreateFilterRequest{UserID: user, Filter: json.RawMessage(`{"room":{"timeline":{"limit":10}}}`)})
		if err != nil || again.FilterID != f1.FilterID {
			t.Fatalf("CreateFilter(same) = %+v, %v; want id %s", again, err, f1.FilterID)
		}
		// Concurrent distinct uploads get distinct ids.
		ids := make([]string, 8)
		var wg sync.WaitGroup
		for i := range ids {
			wg.Go(func() {
				r, err := a.CreateFilter(ctx, api.CreateFilterRequest{UserID: user, Filter: json.RawMessage(`{"presence": {"limit": ` + string(rune('0'+i)) + `}}`)})
				if err != nil {
					t.Errorf("CreateFilter #%d: %v", i, err)
				}
				ids[i] = r.FilterID
			})
		}
		wg.Wait()
		slices.Sort(ids)
		if len(slices.Compact(ids)) != 8 {
			t.Fatalf("concurrent filter ids %v not distinct", ids)
		}
		got, err := a.QueryFilter(ctx, api.QueryFilterRequest{UserID: user, FilterID: f1.FilterID})
		if err != nil || string(got.Filter) != `{"room":{"timeline":{"limit":10}}}` {
			t.Fatalf("QueryFilter = %s, %v", got.Filter, err)
		}
		for _, tc := range []struct{ user, id string }{{other, "1"}, {user, "999"}, {user, "abc"}, {user, "-1"}, {user, ""}} {
			_, err := a.QueryFilter(ctx, api.QueryFilterRequest{UserID: tc.user, FilterID: tc.id})
			wantCode(t, "QueryFilter("+tc.id+")", err, apierr.CodeNotFound)
		}
		_, err = a.CreateFilter(ctx, api.CreateFilterRequest{UserID: user, Filter: json.RawMessage(`[1]`)})
		wantCode(t, "CreateFilter(array)", err, apierr.CodeBadJSON)
	})
}
