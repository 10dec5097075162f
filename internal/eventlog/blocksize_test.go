package eventlog

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestEmbeddedBlockSize: a stream's file blocks are 4 MB, not the 8 MB the
// server picks for a stream without limits (each busy stream keeps a buffer
// of its block size in memory), and the per-subject limit that brings them
// drops nothing: every message of one key is still there.
func TestEmbeddedBlockSize(t *testing.T) {
	dir := t.TempDir()
	b := &backend{name: "embedded", dataDir: dir}
	l := b.open(t)
	const n, size = 320, 16 << 10 // 5 MB: more than a 4 MB block, less than 8
	data := bytes.Repeat([]byte("x"), size)
	for range n {
		if _, err := l.Publish(t.Context(), "blocks", "one-key", data); err != nil {
			t.Fatalf("Publish: %v", err)
		}
	}
	js := l.(*jsLog).js
	s, err := js.Stream(t.Context(), l.(*jsLog).names.stream("blocks"))
	if err != nil {
		t.Fatalf("Stream: %v", err)
	}
	info, err := s.Info(t.Context())
	if err != nil {
		t.Fatalf("Info: %v", err)
	}
	if info.State.Msgs != n {
		t.Errorf("stream holds %d messages, want %d", info.State.Msgs, n)
	}
	blks, err := filepath.Glob(filepath.Join(dir, "jetstream", "*", "streams", info.Config.Name, "msgs", "*.blk"))
	if err != nil {
		t.Fatal(err)
	}
	if len(blks) < 2 {
		t.Fatalf("%d block files (%s) for 5 MB of messages, want 4 MB blocks", len(blks), strings.Join(blks, ", "))
	}
	for _, f := range blks {
		if fi, err := os.Stat(f); err == nil && fi.Size() > 4<<20+size {
			t.Errorf("block %s is %d bytes, want at most 4 MB", f, fi.Size())
		}
	}
}
