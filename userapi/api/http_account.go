package api

import (
	"context"

	"github.com/axon-hs/axon/internal/rpc"
)

var (
	changePassword     = rpc.NewMethod[ChangePasswordRequest, ChangePasswordResponse]("userapi.ChangePassword")
	deactivateAccount  = rpc.NewMethod[DeactivateAccountRequest, DeactivateAccountResponse]("userapi.DeactivateAccount")
	queryDevices       = rpc.NewMethod[QueryDevicesRequest, QueryDevicesResponse]("userapi.QueryDevices")
	updateDevice       = rpc.NewMethod[UpdateDeviceRequest, UpdateDeviceResponse]("userapi.UpdateDevice")
	setProfile         = rpc.NewMethod[SetProfileRequest, SetProfileResponse]("userapi.SetProfile")
	refreshAccessToken = rpc.NewMethod[RefreshAccessTokenRequest, RefreshAccessTokenResponse]("userapi.RefreshAccessToken")
	putAccountData     = rpc.NewMethod[PutAccountDataRequest, PutAccountDataResponse]("userapi.PutAccountData")
	queryAccountData   = rpc.NewMethod[QueryAccountDataRequest, QueryAccountDataResponse]("userapi.QueryAccountData")
	modifyRoomTag      = rpc.NewMethod[ModifyRoomTagRequest, ModifyRoomTagResponse]("userapi.ModifyRoomTag")
	createFilter       = rpc.NewMethod[CreateFilterRequest, CreateFilterResponse]("userapi.CreateFilter")
	queryFilter        = rpc.NewMethod[QueryFilterRequest, QueryFilterResponse]("userapi.QueryFilter")
	queryAccountTypes  = rpc.NewMethod[QueryAccountTypesRequest, QueryAccountTypesResponse]("userapi.QueryAccountTypes")
	upgradeGuest       = rpc.NewMethod[UpgradeGuestRequest, UpgradeGuestResponse]("userapi.UpgradeGuest")
)

func (c Client) ChangePassword(ctx context.Context, r ChangePasswordRequest) (ChangePasswordResponse, error) {
	return changePassword.Call(ctx, c.C, r)
}
func (c Client) DeactivateAccount(ctx context.Context, r DeactivateAccountRequest) (DeactivateAccountResponse, error) {
	return deactivateAccount.Call(ctx, c.C, r)
}
func (c Client) QueryDevices(ctx context.Context, r QueryDevicesRequest) (QueryDevicesResponse, error) {
	return queryDevices.Call(ctx, c.C, r)
}
func (c Client) UpdateDevice(ctx context.Context, r UpdateDeviceRequest) (UpdateDeviceResponse, error) {
	return updateDevice.Call(ctx, c.C, r)
}
func (c Client) SetProfile(ctx context.Context, r SetProfileRequest) (SetProfileResponse, error) {
	return setProfile.Call(ctx, c.C, r)
}
func (c Client) RefreshAccessToken(ctx context.Context, r RefreshAccessTokenRequest) (RefreshAccessTokenResponse, error) {
	return refreshAccessToken.Call(ctx, c.C, r)
}
func (c Client) PutAccountData(ctx context.Context, r PutAccountDataRequest) (PutAccountDataResponse, error) {
	return putAccountData.Call(ctx, c.C, r)
}
func (c Client) QueryAccountData(ctx context.Context, r QueryAccountDataRequest) (QueryAccountDataResponse, error) {
	return queryAccountData.Call(ctx, c.C, r)
}
func (c Client) ModifyRoomTag(ctx context.Context, r ModifyRoomTagRequest) (ModifyRoomTagResponse, error) {
	return modifyRoomTag.Call(ctx, c.C, r)
}
func (c Client) CreateFilter(ctx context.Context, r CreateFilterRequest) (CreateFilterResponse, error) {
	return createFilter.Call(ctx, c.C, r)
}
func (c Client) QueryFilter(ctx context.Context, r QueryFilterRequest) (QueryFilterResponse, error) {
	return queryFilter.Call(ctx, c.C, r)
}
func (c Client) QueryAccountTypes(ctx context.Context, r QueryAccountTypesRequest) (QueryAccountTypesResponse, error) {
	return queryAccountTypes.Call(ctx, c.C, r)
}
func (c Client) UpgradeGuest(ctx context.Context, r UpgradeGuestRequest) (UpgradeGuestResponse, error) {
	return upgradeGuest.Call(ctx, c.C, r)
}

// serveAccount serves the AccountAPI and AccountDataAPI methods.
func serveAccount(s *rpc.Server, impl API) {
	changePassword.Handle(s, impl.ChangePassword)
	deactivateAccount.Handle(s, impl.DeactivateAccount)
	queryDevices.Handle(s, impl.QueryDevices)
	updateDevice.Handle(s, impl.UpdateDevice)
	setProfile.Handle(s, impl.SetProfile)
	refreshAccessToken.Handle(s, impl.RefreshAccessToken)
	putAccountData.Handle(s, impl.PutAccountData)
	queryAccountData.Handle(s, impl.QueryAccountData)
	modifyRoomTag.Handle(s, impl.ModifyRoomTag)
	createFilter.Handle(s, impl.CreateFilter)
	queryFilter.Handle(s, impl.QueryFilter)
	queryAccountTypes.Handle(s, impl.QueryAccountTypes)
	upgradeGuest.Handle(s, impl.UpgradeGuest)
}
