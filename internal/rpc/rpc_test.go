package rpc_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"reflect"
	"testing"

	"github.com/axon-hs/axon/internal/apierr"
	"github.com/axon-hs/axon/internal/rpc"
)

type echoReq struct {
	Text string `json:"text"`
	Fail string `json:"fail"`
}
type echoResp struct {
	Text string `json:"text"`
}

var echo = rpc.NewMethod[echoReq, echoResp]("test.Echo")

func TestRoundTripAndErrors(t *testing.T) {
	mux := http.NewServeMux()
	s := rpc.NewServer(mux, nil)
	echo.Handle(s, func(_ context.Context, r echoReq) (echoResp, error) {
		switch r.Fail {
		case "matrix":
			return echoResp{}, apierr.Forbidden("no %s", r.Text)
		case "plain":
			return echoResp{}, errors.New("disk on fire")
		}
		return echoResp{Text: r.Text + "!"}, nil
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	c := rpc.NewClient(srv.URL, nil)

	got, err := echo.Call(t.Context(), c, echoReq{Text: "hi"})
	if err != nil || got.Text != "hi!" {
		t.Fatalf("Call = %+v, %v; want hi!", got, err)
	}
	_, err = echo.Call(t.Context(), c, echoReq{Text: "entry", Fail: "matrix"})
	if e, ok := apierr.As(err); !ok || e.Code != apierr.CodeForbidden || e.Msg != "no entry" || e.HTTPStatus() != 403 {
		t.Fatalf("matrix error = %#v, want M_FORBIDDEN survives the wire", err)
	}
	_, err = echo.Call(t.Context(), c, echoReq{Fail: "plain"})
	if err == nil || apierr.HasCode(err, apierr.CodeForbidden) {
		t.Fatalf("plain error = %v, want a non-Matrix error", err)
	}
	if names := s.Names(); len(names) != 1 || names[0] != "test.Echo" {
		t.Fatalf("Names = %v", names)
	}
	res, err := http.Post(srv.URL+rpc.PathPrefix+"test.Echo", "application/json", nil)
	if err != nil || res.StatusCode != http.StatusBadRequest {
		t.Fatalf("empty body: %v %v, want 400", res.StatusCode, err)
	}
}

type twoMethods interface {
	Echo(context.Context, echoReq) (echoResp, error)
	Other(context.Context, echoReq) (echoResp, error)
}

func TestUnserved(t *testing.T) {
	s := rpc.NewServer(http.NewServeMux(), nil)
	echo.Handle(s, func(context.Context, echoReq) (echoResp, error) { return echoResp{}, nil })
	got := rpc.Unserved(reflect.TypeFor[twoMethods](), "test", s)
	if len(got) != 1 || got[0] != "test.Other" {
		t.Fatalf("Unserved = %v, want [test.Other]", got)
	}
}
