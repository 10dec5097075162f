package main

import (
	"os"
	"slices"
	"testing"
	"time"
)

func TestParseStat(t *testing.T) {
	tests := []struct {
		name    string
		line    string
		want    time.Duration
		wantErr bool
	}{
		{"plain", "1234 (axon) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 12 0 100 0 0",
			325 * clockTick, false},
		{"name with spaces and parentheses", "1234 (a (b) c) R 1 1234 1234 0 -1 4194560 100 0 0 0 7 3 0 0 20 0 12 0 100",
			10 * clockTick, false},
		{"truncated", "1234 (axon) S 1 1234", 0, true},
		{"no name", "1234 axon S", 0, true},
		{"not a number", "1 (x) S 1 1 1 0 -1 0 0 0 0 0 u s 0 0", 0, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseStat(tc.line)
			if (err != nil) != tc.wantErr || got != tc.want {
				t.Errorf("parseStat(%q) = %v, %v; want %v, error %v", tc.line, got, err, tc.want, tc.wantErr)
			}
		})
	}
}

func TestParseStatus(t *testing.T) {
	tests := []struct {
		name    string
		text    string
		want    Memory
		wantErr bool
	}{
		{"both", "Name:\taxon\nVmPeak:\t  900 kB\nVmHWM:\t  2048 kB\nVmRSS:\t  1024 kB\nThreads: 9\n", Memory{RSS: 1 << 20, HWM: 2 << 20}, false},
		{"missing HWM", "VmRSS:\t 1024 kB\n", Memory{RSS: 1 << 20}, true},
		{"bad unit", "VmRSS:\t 1024 MB\nVmHWM:\t 1 kB\n", Memory{}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseStatus(tc.text)
			if (err != nil) != tc.wantErr || (!tc.wantErr && got != tc.want) {
				t.Errorf("parseStatus = %+v, %v; want %+v, error %v", got, err, tc.want, tc.wantErr)
			}
		})
	}
}

func TestListeningInodes(t *testing.T) {
	const table = `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F48 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 111 1 0000000000000000 100 0 0 10 0
   1: 0100007F:1F48 0100007F:C350 01 00000000:00000000 00:00000000 00000000  1000        0 222 1 0000000000000000 20 4 30 10 -1
   2: 00000000:1F49 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 333 1 0000000000000000 100 0 0 10 0
`
	tests := []struct {
		port uint16
		want []string
	}{
		{8008, []string{"111"}}, // the established connection (222) is not a listener
		{8009, []string{"333"}},
		{8010, nil},
	}
	for _, tc := range tests {
		if got := listeningInodes(table, tc.port); !slices.Equal(got, tc.want) {
			t.Errorf("listeningInodes(%d) = %v, want %v", tc.port, got, tc.want)
		}
	}
}

func TestOwnProcess(t *testing.T) {
	if _, err := cpuTime(os.Getpid()); err != nil {
		t.Errorf("cpuTime(self): %v", err)
	}
	m, err := memory(os.Getpid())
	if err != nil || m.RSS <= 0 || m.HWM < m.RSS {
		t.Errorf("memory(self) = %+v, %v; want RSS > 0 and HWM ≥ RSS", m, err)
	}
}

func TestStatName(t *testing.T) {
	for line, want := range map[string]string{
		"1 (postgres) S 1":  "postgres",
		"1 (a (b) c) R 1":   "a (b) c",
		"1 postgres S 1":    "",
		"1 ) weird ( S 1 1": "",
	} {
		if got := statName(line); got != want {
			t.Errorf("statName(%q) = %q, want %q", line, got, want)
		}
	}
}
