package routing

import (
	"strings"
	"testing"

	"github.com/axon-hs/axon/internal/apierr"
)

func TestParseSetPusher(t *testing.T) {
	const ok = `{"kind":"http","app_id":"a","pushkey":"k","app_display_name":"A","device_display_name":"D","lang":"en","data":{"url":"https://p.example/_matrix/push/v1/notify"}}`
	for _, tc := range []struct{ name, body, code string }{
		{"ok", ok, ""},
		{"delete", `{"kind":null,"app_id":"a","pushkey":"k"}`, ""},
		{"not json", `{"kind"`, apierr.CodeNotJSON},
		{"wrong type", `{"kind":1,"app_id":"a","pushkey":"k"}`, apierr.CodeBadJSON},
		{"no kind", `{"app_id":"a","pushkey":"k"}`, apierr.CodeMissingParam},
		{"no data", `{"kind":"http","app_id":"a","pushkey":"k","app_display_name":"A","device_display_name":"D","lang":"en"}`, apierr.CodeMissingParam},
		{"no url", `{"kind":"http","app_id":"a","pushkey":"k","app_display_name":"A","device_display_name":"D","lang":"en","data":{}}`, apierr.CodeMissingParam},
		{"long app id", `{"kind":null,"app_id":"` + strings.Repeat("a", 65) + `","pushkey":"k"}`, apierr.CodeInvalidParam},
		{"ftp url", `{"kind":"http","app_id":"a","pushkey":"k","app_display_name":"A","device_display_name":"D","lang":"en","data":{"url":"ftp://p/_matrix/push/v1/notify"}}`, apierr.CodeInvalidParam},
		{"bad format", `{"kind":"http","app_id":"a","pushkey":"k","app_display_name":"A","device_display_name":"D","lang":"en","data":{"url":"https://p/_matrix/push/v1/notify","format":"full"}}`, apierr.CodeInvalidParam},
		{"email", `{"kind":"email","app_id":"m.email","pushkey":"a@b","app_display_name":"A","device_display_name":"D","lang":"en","data":{}}`, apierr.CodeInvalidParam},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseSetPusher([]byte(tc.body))
			if tc.code == "" {
				if err != nil {
					t.Fatalf("parseSetPusher = %v, want ok", err)
				}
				return
			}
			if !apierr.HasCode(err, tc.code) {
				t.Fatalf("parseSetPusher = %v, want %s", err, tc.code)
			}
		})
	}
}

func FuzzParseSetPusher(f *testing.F) {
	f.Add(`{"kind":"http","app_id":"a","pushkey":"k","app_display_name":"A","device_display_name":"D","lang":"en","data":{"url":"https://p/_matrix/push/v1/notify"}}`)
	f.Add(`{"kind":null,"app_id":"a","pushkey":"k"}`)
	f.Fuzz(func(t *testing.T, body string) {
		req, err := parseSetPusher([]byte(body))
		if err != nil {
			if _, ok := apierr.As(err); !ok {
				t.Fatalf("parseSetPusher(%q) = %v, not a Matrix error", body, err)
			}
			return
		}
		if req.Pusher.AppID == "" || req.Pusher.PushKey == "" {
			t.Fatalf("parseSetPusher(%q) accepted empty ids", body)
		}
	})
}
