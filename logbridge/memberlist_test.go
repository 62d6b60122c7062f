package logbridge

import (
	"strings"
	"testing"

	"github.com/hashicorp/memberlist"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

func TestMemberlistLevels(t *testing.T) {
	tests := []struct {
		line  string
		level zapcore.Level
		msg   string
	}{
		{"[DEBUG] memberlist: Stream connection from=127.0.0.1:5000\n", zapcore.DebugLevel, "Stream connection from=127.0.0.1:5000"},
		{"[INFO] memberlist: Suspect node-a has failed, no acks received\n", zapcore.InfoLevel, "Suspect node-a has failed, no acks received"},
		{"[WARN] memberlist: Binding to public address without encryption!\n", zapcore.WarnLevel, "Binding to public address without encryption!"},
		{"[ERR] memberlist: Failed to send ping: boom\n", zapcore.ErrorLevel, "Failed to send ping: boom"},
		{"[ERROR] memberlist: Failed to decode ping request\n", zapcore.ErrorLevel, "Failed to decode ping request"},
		{"[ERR] Failed to shutdown transport: closed\n", zapcore.ErrorLevel, "Failed to shutdown transport: closed"},
		{"Err: Could not set the deadline: x\n", zapcore.ErrorLevel, "Could not set the deadline: x"},
		{"no prefix at all\n", zapcore.InfoLevel, "no prefix at all"},
		{"[WARN] memberlist: no trailing newline", zapcore.WarnLevel, "no trailing newline"},
		{"[TRACE] memberlist: unknown level\n", zapcore.InfoLevel, "[TRACE] memberlist: unknown level"},
		{"\n", zapcore.InfoLevel, ""},
	}
	for _, tt := range tests {
		t.Run(strings.TrimSpace(tt.line), func(t *testing.T) {
			core, logs := observer.New(zapcore.DebugLevel)
			std := Memberlist(zap.New(core))
			std.Print(tt.line)
			all := logs.All()
			if len(all) != 1 {
				t.Fatalf("got %d entries, want 1", len(all))
			}
			e := all[0]
			if e.Level != tt.level || e.Message != tt.msg || e.LoggerName != "memberlist" {
				t.Errorf("got (%v, %q, %q), want (%v, %q, %q)",
					e.Level, e.Message, e.LoggerName, tt.level, tt.msg, "memberlist")
			}
		})
	}
}

func TestMemberlistRespectsLevel(t *testing.T) {
	core, logs := observer.New(zapcore.WarnLevel)
	std := Memberlist(zap.New(core))
	std.Printf("[DEBUG] memberlist: dropped")
	std.Printf("[INFO] memberlist: dropped")
	std.Printf("[WARN] memberlist: kept")
	if got := logs.Len(); got != 1 {
		t.Fatalf("got %d entries, want 1", got)
	}
}

func TestMemberlistNilLogger(t *testing.T) {
	// Must not panic, and must accept writes.
	Memberlist(nil).Printf("[ERR] memberlist: nothing listens")
}

// TestMemberlistReal hands the bridge to a real memberlist and checks that the
// lines it writes at start-up arrive parsed. It keeps the bridge honest about
// the prefixes the pinned memberlist version actually writes.
func TestMemberlistReal(t *testing.T) {
	core, logs := observer.New(zapcore.DebugLevel)
	conf := memberlist.DefaultLocalConfig()
	conf.Name = "bridge-test"
	conf.BindAddr = "127.0.0.1"
	conf.BindPort = 0
	conf.Logger = Memberlist(zap.New(core))
	m, err := memberlist.Create(conf)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Shutdown(); err != nil {
		t.Fatal(err)
	}
	got := logs.FilterLoggerName("memberlist").FilterMessageSnippet("Using dynamic bind port").All()
	if len(got) != 1 {
		t.Fatalf("want one dynamic bind port line, got %d of %d entries: %v", len(got), logs.Len(), logs.All())
	}
	if got[0].Level != zapcore.DebugLevel || strings.Contains(got[0].Message, "memberlist:") {
		t.Errorf("entry not parsed: %v %q", got[0].Level, got[0].Message)
	}
}

// TestMemberlistQuiet: after quiet, lines are dropped (memberlist may log
// from a probe still in flight after its Shutdown returned).
func TestMemberlistQuiet(t *testing.T) {
	core, logs := observer.New(zapcore.DebugLevel)
	std, quiet := MemberlistQuietable(zap.New(core))
	std.Printf("[WARN] memberlist: before")
	quiet()
	std.Printf("[ERR] memberlist: after")
	if got := logs.Len(); got != 1 || logs.All()[0].Message != "before" {
		t.Fatalf("logged %v, want only the line before quiet", logs.All())
	}
}
