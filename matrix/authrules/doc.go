// Package authrules implements the authorisation rules of Matrix room
// versions 1 to 12 (rooms/v1.md … rooms/v12.md and the fragments they
// include; server-server API "Checks performed on receipt of a PDU").
//
// The rules are one function, Check, whose behaviour is driven by the
// capability flags of event.RoomVersion, so every version shares one
// implementation and differs only where the spec says it does. Every
// rejection is a *NotAllowedError that names the rule as the version's own
// page numbers it ("4.3.5.2" in room version 10 is "5.3.5.2" in room
// version 12), so a log line can be checked against the spec directly.
//
// Check never panics: malformed content (a membership that is not a string,
// a power level that is not an integer in the version's accepted forms, a
// third-party invite without signatures) is a rejection by the rule that
// consults it.
//
// Deviations from the text of the spec are marked NOTSPEC in the code.
package authrules
