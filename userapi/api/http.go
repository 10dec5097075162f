package api

import (
	"context"

	"github.com/axon-hs/axon/internal/rpc"
)

var (
	createAccount            = rpc.NewMethod[CreateAccountRequest, CreateAccountResponse]("userapi.CreateAccount")
	accountAvailable         = rpc.NewMethod[AccountAvailableRequest, AccountAvailableResponse]("userapi.AccountAvailable")
	checkPassword            = rpc.NewMethod[CheckPasswordRequest, CheckPasswordResponse]("userapi.CheckPassword")
	createDevice             = rpc.NewMethod[CreateDeviceRequest, CreateDeviceResponse]("userapi.CreateDevice")
	queryAccessToken         = rpc.NewMethod[QueryAccessTokenRequest, QueryAccessTokenResponse]("userapi.QueryAccessToken")
	deleteDevices            = rpc.NewMethod[DeleteDevicesRequest, DeleteDevicesResponse]("userapi.DeleteDevices")
	queryProfile             = rpc.NewMethod[QueryProfileRequest, QueryProfileResponse]("userapi.QueryProfile")
	startUIA                 = rpc.NewMethod[StartUIARequest, StartUIAResponse]("userapi.StartUIA")
	completeUIAStage         = rpc.NewMethod[CompleteUIAStageRequest, CompleteUIAStageResponse]("userapi.CompleteUIAStage")
	newRegistrationNonce     = rpc.NewMethod[NewRegistrationNonceRequest, NewRegistrationNonceResponse]("userapi.NewRegistrationNonce")
	consumeRegistrationNonce = rpc.NewMethod[ConsumeRegistrationNonceRequest, ConsumeRegistrationNonceResponse]("userapi.ConsumeRegistrationNonce")
)

// Client is the API over HTTP (polylith).
type Client struct{ C *rpc.Client }

func (c Client) CreateAccount(ctx context.Context, r CreateAccountRequest) (CreateAccountResponse, error) {
	return createAccount.Call(ctx, c.C, r)
}
func (c Client) AccountAvailable(ctx context.Context, r AccountAvailableRequest) (AccountAvailableResponse, error) {
	return accountAvailable.Call(ctx, c.C, r)
}
func (c Client) CheckPassword(ctx context.Context, r CheckPasswordRequest) (CheckPasswordResponse, error) {
	return checkPassword.Call(ctx, c.C, r)
}
func (c Client) CreateDevice(ctx context.Context, r CreateDeviceRequest) (CreateDeviceResponse, error) {
	return createDevice.Call(ctx, c.C, r)
}
func (c Client) QueryAccessToken(ctx context.Context, r QueryAccessTokenRequest) (QueryAccessTokenResponse, error) {
	return queryAccessToken.Call(ctx, c.C, r)
}
func (c Client) DeleteDevices(ctx context.Context, r DeleteDevicesRequest) (DeleteDevicesResponse, error) {
	return deleteDevices.Call(ctx, c.C, r)
}
func (c Client) QueryProfile(ctx context.Context, r QueryProfileRequest) (QueryProfileResponse, error) {
	return queryProfile.Call(ctx, c.C, r)
}
func (c Client) StartUIA(ctx context.Context, r StartUIARequest) (StartUIAResponse, error) {
	return startUIA.Call(ctx, c.C, r)
}
func (c Client) CompleteUIAStage(ctx context.Context, r CompleteUIAStageRequest) (CompleteUIAStageResponse, error) {
	return completeUIAStage.Call(ctx, c.C, r)
}
func (c Client) NewRegistrationNonce(ctx context.Context, r NewRegistrationNonceRequest) (NewRegistrationNonceResponse, error) {
	return newRegistrationNonce.Call(ctx, c.C, r)
}
func (c Client) ConsumeRegistrationNonce(ctx context.Context, r ConsumeRegistrationNonceRequest) (ConsumeRegistrationNonceResponse, error) {
	return consumeRegistrationNonce.Call(ctx, c.C, r)
}

// Serve serves impl's methods (polylith).
func Serve(s *rpc.Server, impl API) {
	createAccount.Handle(s, impl.CreateAccount)
	accountAvailable.Handle(s, impl.AccountAvailable)
	checkPassword.Handle(s, impl.CheckPassword)
	createDevice.Handle(s, impl.CreateDevice)
	queryAccessToken.Handle(s, impl.QueryAccessToken)
	deleteDevices.Handle(s, impl.DeleteDevices)
	queryProfile.Handle(s, impl.QueryProfile)
	startUIA.Handle(s, impl.StartUIA)
	completeUIAStage.Handle(s, impl.CompleteUIAStage)
	newRegistrationNonce.Handle(s, impl.NewRegistrationNonce)
	consumeRegistrationNonce.Handle(s, impl.ConsumeRegistrationNonce)
	servePush(s, impl)
	serveAccount(s, impl)
	serveTokens(s, impl)
}
