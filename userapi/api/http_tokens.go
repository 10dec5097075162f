package api

import (
	"context"

	"github.com/axon-hs/axon/internal/rpc"
)

var (
	queryRegistrationToken = rpc.NewMethod[QueryRegistrationTokenRequest, QueryRegistrationTokenResponse]("userapi.QueryRegistrationToken")
	useRegistrationToken   = rpc.NewMethod[UseRegistrationTokenRequest, UseRegistrationTokenResponse]("userapi.UseRegistrationToken")
	createLoginToken       = rpc.NewMethod[CreateLoginTokenRequest, CreateLoginTokenResponse]("userapi.CreateLoginToken")
	consumeLoginToken      = rpc.NewMethod[ConsumeLoginTokenRequest, ConsumeLoginTokenResponse]("userapi.ConsumeLoginToken")
)

func (c Client) QueryRegistrationToken(ctx context.Context, r QueryRegistrationTokenRequest) (QueryRegistrationTokenResponse, error) {
	return queryRegistrationToken.Call(ctx, c.C, r)
}
func (c Client) UseRegistrationToken(ctx context.Context, r UseRegistrationTokenRequest) (UseRegistrationTokenResponse, error) {
	return useRegistrationToken.Call(ctx, c.C, r)
}
func (c Client) CreateLoginToken(ctx context.Context, r CreateLoginTokenRequest) (CreateLoginTokenResponse, error) {
	return createLoginToken.Call(ctx, c.C, r)
}
func (c Client) ConsumeLoginToken(ctx context.Context, r ConsumeLoginTokenRequest) (ConsumeLoginTokenResponse, error) {
	return consumeLoginToken.Call(ctx, c.C, r)
}

func serveTokens(s *rpc.Server, impl API) {
	queryRegistrationToken.Handle(s, impl.QueryRegistrationToken)
	useRegistrationToken.Handle(s, impl.UseRegistrationToken)
	createLoginToken.Handle(s, impl.CreateLoginToken)
	consumeLoginToken.Handle(s, impl.ConsumeLoginToken)
}
