package logbridge

import (
	"path/filepath"
	"testing"

	"github.com/pion/logging"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

func TestPionLevels(t *testing.T) {
	tests := []struct {
		name  string
		log   func(logging.LeveledLogger)
		level zapcore.Level
		msg   string
	}{
		{"Trace", func(l logging.LeveledLogger) { l.Trace("t") }, zapcore.DebugLevel, "t"},
		{"Tracef", func(l logging.LeveledLogger) { l.Tracef("t %d", 1) }, zapcore.DebugLevel, "t 1"},
		{"Debug", func(l logging.LeveledLogger) { l.Debug("d") }, zapcore.DebugLevel, "d"},
		{"Debugf", func(l logging.LeveledLogger) { l.Debugf("d %s", "x") }, zapcore.DebugLevel, "d x"},
		{"Info", func(l logging.LeveledLogger) { l.Info("i") }, zapcore.DebugLevel, "i"},
		{"Infof", func(l logging.LeveledLogger) { l.Infof("i %v", true) }, zapcore.DebugLevel, "i true"},
		{"Warn", func(l logging.LeveledLogger) { l.Warn("w") }, zapcore.WarnLevel, "w"},
		{"Warnf", func(l logging.LeveledLogger) { l.Warnf("w %q", "q") }, zapcore.WarnLevel, `w "q"`},
		{"Error", func(l logging.LeveledLogger) { l.Error("e") }, zapcore.ErrorLevel, "e"},
		{"Errorf", func(l logging.LeveledLogger) { l.Errorf("e %x", 255) }, zapcore.ErrorLevel, "e ff"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			core, logs := observer.New(zapcore.DebugLevel)
			l := Pion(zap.New(core, zap.AddCaller())).NewLogger("ice")
			tt.log(l)
			all := logs.All()
			if len(all) != 1 {
				t.Fatalf("got %d entries, want 1", len(all))
			}
			e := all[0]
			if e.Level != tt.level || e.Message != tt.msg || e.LoggerName != "pion.ice" {
				t.Errorf("got (%v, %q, %q), want (%v, %q, %q)",
					e.Level, e.Message, e.LoggerName, tt.level, tt.msg, "pion.ice")
			}
			// The caller must be the code that called pion's logger (here the
			// test), not the adapter.
			if f := filepath.Base(e.Caller.File); f != "pion_test.go" {
				t.Errorf("caller file %q, want pion_test.go", f)
			}
		})
	}
}

func TestPionRespectsLevel(t *testing.T) {
	core, logs := observer.New(zapcore.InfoLevel)
	l := Pion(zap.New(core)).NewLogger("sctp")
	l.Trace("dropped")
	l.Tracef("dropped %d", 1)
	l.Debugf("dropped %d", 2)
	l.Info("dropped")
	l.Warn("kept")
	if got := logs.Len(); got != 1 {
		t.Fatalf("got %d entries, want 1", got)
	}
}

func TestPionNilLogger(t *testing.T) {
	Pion(nil).NewLogger("dtls").Errorf("nothing listens %d", 1)
}
