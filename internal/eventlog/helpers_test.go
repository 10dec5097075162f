package eventlog

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// backend is a place to open Logs: an embedded server on a data dir, or the
// external server of AXON_TEST_NATS_URL under a prefix of its own. Opening
// twice gives a second process's view of the same data.
type backend struct {
	name    string
	url     string
	dataDir string
	prefix  string
}

// embedded reports whether a Log of b can be "crashed" together with its
// server and brought back on the same store.
func (b *backend) embedded() bool { return b.url == "" }

// open opens a Log on b; it is closed when the test ends.
func (b *backend) open(t testing.TB) Log {
	t.Helper()
	l, err := OpenJetStream(t.Context(), JetStreamConfig{URL: b.url, DataDir: b.dataDir, Prefix: b.prefix}, testLogger(t))
	if err != nil {
		t.Fatalf("OpenJetStream(%s) = %v", b.name, err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Errorf("Close() = %v", err)
		}
	})
	return l
}

// eachBackend runs f on the embedded server and, when AXON_TEST_NATS_URL is
// set, on that external server.
func eachBackend(t *testing.T, f func(t *testing.T, b *backend)) {
	t.Run("embedded", func(t *testing.T) {
		t.Parallel()
		f(t, &backend{name: "embedded", dataDir: t.TempDir()})
	})
	if url := os.Getenv("AXON_TEST_NATS_URL"); url != "" {
		t.Run("external", func(t *testing.T) {
			t.Parallel()
			b := &backend{name: "external", url: url, prefix: "test" + randomHex(t)}
			t.Cleanup(func() { deleteStreams(t, b) })
			f(t, b)
		})
	}
}

// deleteStreams removes the streams a test made on the shared server.
func deleteStreams(t testing.TB, b *backend) {
	// t.Context() is already cancelled when cleanups run.
	ctx := context.WithoutCancel(t.Context())
	l, err := OpenJetStream(ctx, JetStreamConfig{URL: b.url}, nil)
	if err != nil {
		t.Logf("cleanup: %v", err)
		return
	}
	defer l.Close()
	js := l.(*jsLog).js
	names := js.StreamNames(ctx)
	var mine []string
	for n := range names.Name() {
		if strings.HasPrefix(n, b.prefix+"_") {
			mine = append(mine, n)
		}
	}
	for _, n := range mine {
		if err := js.DeleteStream(ctx, n); err != nil {
			t.Logf("cleanup: delete stream %s: %v", n, err)
		}
	}
}

func randomHex(t testing.TB) string {
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b[:])
}

// testLogger logs warnings and errors to the test log.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

// waitFor polls f until it returns nil or the deadline passes.
func waitFor(t testing.TB, d time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %v", d, err)
		}
		<-tick.C
	}
}

// recorder collects handled messages.
type recorder[T any] struct {
	mu   sync.Mutex
	msgs []Msg[T]
}

func (r *recorder[T]) add(m Msg[T]) {
	r.mu.Lock()
	r.msgs = append(r.msgs, m)
	r.mu.Unlock()
}

func (r *recorder[T]) snapshot() []Msg[T] {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Msg[T](nil), r.msgs...)
}

func (r *recorder[T]) len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.msgs)
}

// waitLen waits until at least n messages were recorded.
func (r *recorder[T]) waitLen(t testing.TB, n int) {
	t.Helper()
	waitFor(t, 20*time.Second, func() error {
		if got := r.len(); got < n {
			return fmt.Errorf("handled %d messages, want %d", got, n)
		}
		return nil
	})
}

// seqs are the distinct sequences recorded.
func (r *recorder[T]) seqs() map[uint64]int {
	got := map[uint64]int{}
	for _, m := range r.snapshot() {
		got[m.Seq]++
	}
	return got
}

// event is the payload of the tests.
type event struct {
	Key string `json:"key"`
	N   int    `json:"n"`
}

var testTopic = Topic[event]{Name: "test.events", Key: "key"}

// publishN publishes n events for each key, key by key, and returns their
// sequences in publish order.
func publishN(t testing.TB, l Log, topic Topic[event], keys []string, n int) []uint64 {
	t.Helper()
	var seqs []uint64
	for i := range n {
		for _, k := range keys {
			seq, err := Publish(t.Context(), l, topic, k, event{Key: k, N: i})
			if err != nil {
				t.Fatalf("Publish(%q, %d) = %v", k, i, err)
			}
			seqs = append(seqs, seq)
		}
	}
	return seqs
}
