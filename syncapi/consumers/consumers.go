// Package consumers applies the log topics the syncapi consumes to its
// storage, one file per topic, and wakes the /sync requests waiting for
// what was stored. Every handler is idempotent: a message delivered twice
// changes nothing the second time.
package consumers
