package api

// PushAPI is the part of the userapi about push: push rules, pushers and
// the notifications push evaluation records. Its methods follow the same
// Name(ctx, NameRequest) (NameResponse, error) shape.
type PushAPI interface{}
